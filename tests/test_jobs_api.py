"""The jobs REST API against a real in-process Jupyter server and real processes."""

from __future__ import annotations

import asyncio
import json
import sys

import psutil
from tornado.httpclient import HTTPClientError

from tests.helpers import api, job_log, submit, wait_job


async def test_command_job_runs_to_success(jp_fetch):
    job = await submit(jp_fetch, {"command": ["sh", "-c", "echo hello; echo oops >&2"]})
    assert job["status"] == "queued"
    assert job["id"].startswith("job-")
    job = await wait_job(jp_fetch, job["id"])
    assert job["status"] == "succeeded"
    assert job["reason_code"] == "succeeded"
    assert job["exit_code"] == 0
    assert job["attempt_count"] == 1
    assert job["attempts"][0]["status"] == "succeeded"
    assert job["started_at"] and job["finished_at"]
    assert await job_log(jp_fetch, job["id"]) == "hello\noops\n"


async def test_create_answers_201_with_location(jp_fetch, jp_base_url):
    response = await jp_fetch(
        "aicloud", "api", "v1", "jobs", method="POST", body=json.dumps({"command": ["true"]})
    )
    assert response.code == 201
    job = json.loads(response.body)
    assert response.headers["Location"] == f"{jp_base_url}aicloud/api/v1/jobs/{job['id']}"


async def test_script_module_and_source_entrypoints(jp_fetch, jp_root_dir):
    (jp_root_dir / "work").mkdir()
    (jp_root_dir / "work" / "train.py").write_text("import sys; print('args', sys.argv[1:])\n")
    script = await submit(jp_fetch, {"script": "train.py", "args": ["--lr", "0.1"], "cwd": "work"})
    module = await submit(jp_fetch, {"module": "platform", "args": []})
    source = await submit(jp_fetch, {"source": "import os\nprint(os.environ['AICLOUD_JOB_ID'])"})
    assert (await wait_job(jp_fetch, script["id"]))["status"] == "succeeded"
    assert await job_log(jp_fetch, script["id"]) == "args ['--lr', '0.1']\n"
    assert (await wait_job(jp_fetch, module["id"]))["status"] == "succeeded"
    assert (await wait_job(jp_fetch, source["id"]))["status"] == "succeeded"
    assert await job_log(jp_fetch, source["id"]) == source["id"] + "\n"


async def test_job_environment(jp_fetch):
    code = (
        "import os, json; print(json.dumps({k: os.environ.get(k) for k in "
        "['AICLOUD_JOB_ID', 'AICLOUD_ATTEMPT', 'AICLOUD_URL', 'AICLOUD_RUN_DIR', 'MY_VAR',"
        " 'PYTHONUNBUFFERED']}))"
    )
    job = await submit(jp_fetch, {"command": [sys.executable, "-c", code], "env": {"MY_VAR": "x"}})
    await wait_job(jp_fetch, job["id"])
    env = json.loads(await job_log(jp_fetch, job["id"]))
    assert env["AICLOUD_JOB_ID"] == job["id"]
    assert env["AICLOUD_ATTEMPT"] == "1"
    assert env["AICLOUD_URL"].startswith("http://")
    assert env["AICLOUD_RUN_DIR"].endswith(job["id"])
    assert env["MY_VAR"] == "x"
    assert env["PYTHONUNBUFFERED"] == "1"


async def test_secret_env_values_never_shown(jp_fetch):
    job = await submit(
        jp_fetch, {"command": ["true"], "env": {"API_TOKEN": "s3cret", "HF_HOME": "/tmp"}}
    )
    assert job["spec"]["env"] == {"API_TOKEN": "***", "HF_HOME": "/tmp"}
    _, page = await api(jp_fetch, "GET", "jobs")
    assert "s3cret" not in json.dumps(page)


async def test_failure_is_a_user_error_with_exit_code(jp_fetch):
    job = await submit(jp_fetch, {"command": ["sh", "-c", "exit 3"]})
    job = await wait_job(jp_fetch, job["id"])
    assert job["status"] == "failed"
    assert job["reason_code"] == "user_error"
    assert job["reason"] == "exited with code 3"
    assert job["exit_code"] == 3


async def test_missing_command_is_a_user_error(jp_fetch):
    job = await submit(jp_fetch, {"command": ["no-such-command-xyz"]})
    job = await wait_job(jp_fetch, job["id"])
    assert job["status"] == "failed"
    assert job["reason_code"] == "user_error"
    assert "no-such-command-xyz" in job["reason"]


async def test_retries_with_interval(jp_fetch, jp_root_dir):
    # Fails twice, then succeeds: three attempts, at least 300 ms apart.
    counter = jp_root_dir / "count"
    script = (
        f"n=$(cat {counter} 2>/dev/null || echo 0); n=$((n+1)); echo $n > {counter};"
        ' echo "try $n"; [ $n -ge 3 ]'
    )
    job = await submit(
        jp_fetch,
        {"command": ["sh", "-c", script], "max_retries": 3, "min_retry_interval_millis": 300},
    )
    job = await wait_job(jp_fetch, job["id"])
    assert job["status"] == "succeeded"
    assert [a["status"] for a in job["attempts"]] == ["failed", "failed", "succeeded"]
    starts = [a["started_at"] for a in job["attempts"]]
    from datetime import datetime

    times = [datetime.fromisoformat(s.replace("Z", "+00:00")) for s in starts]
    assert all((b - a).total_seconds() >= 0.3 for a, b in zip(times, times[1:], strict=False))
    log = await job_log(jp_fetch, job["id"])
    assert "try 1\n" in log and "[aicloud] attempt 2\ntry 2\n" in log and "try 3\n" in log


async def test_retries_exhausted(jp_fetch):
    job = await submit(jp_fetch, {"command": ["false"], "max_retries": 2})
    job = await wait_job(jp_fetch, job["id"])
    assert job["status"] == "failed"
    assert job["attempt_count"] == 3
    assert job["reason"] == "attempt 3 exited with code 1"


async def test_timeout_is_enforced_and_not_retried_by_default(jp_fetch):
    job = await submit(
        jp_fetch, {"command": ["sleep", "30"], "timeout_seconds": 1, "max_retries": 1}
    )
    job = await wait_job(jp_fetch, job["id"], timeout=20)
    assert job["status"] == "failed"
    assert job["reason_code"] == "timeout"
    assert job["attempt_count"] == 1
    assert "timed out after 1 s" in await job_log(jp_fetch, job["id"])


async def test_timeout_retried_with_retry_on_timeout(jp_fetch):
    job = await submit(
        jp_fetch,
        {
            "command": ["sleep", "30"],
            "timeout_seconds": 1,
            "max_retries": 1,
            "retry_on_timeout": True,
        },
    )
    job = await wait_job(jp_fetch, job["id"], timeout=20)
    assert job["status"] == "failed"
    assert job["reason_code"] == "timeout"
    assert job["attempt_count"] == 2


async def test_idempotency_token_conflict(jp_fetch):
    first = await submit(jp_fetch, {"command": ["true"], "idempotency_token": "nightly-42"})
    status, error = await api(
        jp_fetch, "POST", "jobs", body={"command": ["true"], "idempotency_token": "nightly-42"}
    )
    assert status == 409
    assert first["id"] in error["message"] and "idempotency_token" in error["message"]
    _, page = await api(jp_fetch, "GET", "jobs")
    assert page["total"] == 1


async def test_cancel_running_job_leaves_no_process(jp_fetch):
    job = await submit(jp_fetch, {"command": ["sh", "-c", "sleep 60 & sleep 60; wait"]})
    await wait_job(jp_fetch, job["id"], statuses={"running"})
    children = {p.pid for p in psutil.Process().children(recursive=True)}
    assert children
    status, cancelled = await api(jp_fetch, "POST", "jobs", job["id"], "cancel")
    assert status == 200
    assert cancelled["status"] == "cancelled"
    assert cancelled["reason_code"] == "cancelled"
    assert cancelled["attempts"][-1]["status"] == "cancelled"
    alive = [
        pid
        for pid in children
        if psutil.pid_exists(pid) and psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    ]
    assert alive == []
    status, error = await api(jp_fetch, "POST", "jobs", job["id"], "cancel")
    assert status == 409 and "already cancelled" in error["message"]


async def test_cancel_kills_a_job_that_ignores_sigterm(jp_fetch):
    job = await submit(jp_fetch, {"command": ["sh", "-c", "trap '' TERM; sleep 60"]})
    await wait_job(jp_fetch, job["id"], statuses={"running"})
    status, cancelled = await api(jp_fetch, "POST", "jobs", job["id"], "cancel")
    assert status == 200 and cancelled["status"] == "cancelled"
    leftovers = [
        p
        for p in psutil.process_iter(["cmdline"])
        if p.info["cmdline"] and "trap '' TERM; sleep 60" in " ".join(p.info["cmdline"])
    ]
    assert leftovers == []


async def test_cancel_queued_retry(jp_fetch):
    job = await submit(
        jp_fetch, {"command": ["false"], "max_retries": 5, "min_retry_interval_millis": 60_000}
    )
    for _ in range(200):
        _, job = await api(jp_fetch, "GET", "jobs", job["id"])
        if job["attempt_count"] == 1 and job["status"] == "queued":
            break
        await asyncio.sleep(0.05)
    assert job["retry_at"] is not None and job["reason_code"] == "user_error"
    status, cancelled = await api(jp_fetch, "POST", "jobs", job["id"], "cancel")
    assert status == 200 and cancelled["status"] == "cancelled"
    assert cancelled["attempt_count"] == 1 and cancelled["retry_at"] is None


async def test_delete(jp_fetch):
    running = await submit(jp_fetch, {"command": ["sleep", "30"]})
    await wait_job(jp_fetch, running["id"], statuses={"running"})
    status, error = await api(jp_fetch, "DELETE", "jobs", running["id"])
    assert status == 409 and "cancel it before deleting" in error["message"]
    await api(jp_fetch, "POST", "jobs", running["id"], "cancel")
    status, _ = await api(jp_fetch, "DELETE", "jobs", running["id"])
    assert status == 204
    status, error = await api(jp_fetch, "GET", "jobs", running["id"])
    assert status == 404 and running["id"] in error["message"]


async def test_list_filters_and_pages(jp_fetch):
    ids = []
    for i in range(5):
        job = await submit(
            jp_fetch, {"command": ["true"], "tags": ["even" if i % 2 == 0 else "odd"]}
        )
        ids.append(job["id"])
    failing = await submit(jp_fetch, {"command": ["false"], "tags": ["odd"]})
    for job_id in [*ids, failing["id"]]:
        await wait_job(jp_fetch, job_id)
    _, page = await api(jp_fetch, "GET", "jobs", limit="4")
    assert page["total"] == 6 and len(page["jobs"]) == 4 and page["next_offset"] == 4
    assert [j["id"] for j in page["jobs"]] == [failing["id"], *reversed(ids[2:])]
    _, page2 = await api(jp_fetch, "GET", "jobs", limit="4", offset="4")
    assert [j["id"] for j in page2["jobs"]] == list(reversed(ids[:2]))
    assert page2["next_offset"] is None
    _, even = await api(jp_fetch, "GET", "jobs", tag="even")
    assert sorted(j["id"] for j in even["jobs"]) == sorted(ids[0::2])
    _, failed = await api(jp_fetch, "GET", "jobs", status="failed")
    assert [j["id"] for j in failed["jobs"]] == [failing["id"]]
    _, commands = await api(jp_fetch, "GET", "jobs", kind="command")
    assert commands["total"] == 6
    _, trains = await api(jp_fetch, "GET", "jobs", kind="train")
    assert trains["total"] == 0


async def test_logs_offset_and_follow(jp_fetch):
    job = await submit(
        jp_fetch,
        {"command": ["sh", "-c", "for i in 1 2 3 4 5; do echo line $i; sleep 0.2; done"]},
    )
    response = await jp_fetch(
        "aicloud",
        "api",
        "v1",
        "jobs",
        job["id"],
        "logs",
        params={"follow": "true"},
        request_timeout=30,
    )
    assert response.body.decode() == "".join(f"line {i}\n" for i in range(1, 6))
    response = await jp_fetch(
        "aicloud", "api", "v1", "jobs", job["id"], "logs", params={"offset": "7", "limit": "7"}
    )
    assert response.body.decode() == "line 2\n"
    assert response.headers["X-Aicloud-Next-Offset"] == "14"
    assert response.headers["Content-Type"].startswith("text/plain")


async def test_follow_streams_before_the_job_ends(jp_fetch):
    job = await submit(jp_fetch, {"command": ["sh", "-c", "echo first; sleep 2; echo second"]})
    chunks: list[tuple[float, bytes]] = []
    import time

    def on_chunk(chunk: bytes) -> None:
        chunks.append((time.monotonic(), chunk))

    start = time.monotonic()
    await jp_fetch(
        "aicloud",
        "api",
        "v1",
        "jobs",
        job["id"],
        "logs",
        params={"follow": "1"},
        streaming_callback=on_chunk,
        request_timeout=30,
    )
    text = b"".join(c for _, c in chunks).decode()
    assert text == "first\nsecond\n"
    first_at = next(t for t, c in chunks if b"first" in c)
    assert first_at - start < 1.5  # it arrived while the job was still sleeping


async def test_resources_and_status(jp_fetch):
    status, resources = await api(jp_fetch, "GET", "resources")
    assert status == 200
    assert resources["cpu"]["cores"] >= 1
    assert resources["memory"]["total_bytes"] > 0
    assert isinstance(resources["gpus"], list)
    assert resources["backends"] == [{"name": "local", "available": True}]
    status, service = await api(jp_fetch, "GET", "status")
    assert service["mode"] == "standalone" and service["backends"] == ["local"]


async def test_unauthenticated_requests_get_403(jp_fetch):
    for method, path in [
        ("GET", "jobs"),
        ("POST", "jobs"),
        ("GET", "jobs/job-x"),
        ("DELETE", "jobs/job-x"),
        ("POST", "jobs/job-x/cancel"),
        ("GET", "jobs/job-x/logs"),
        ("GET", "resources"),
        ("GET", "status"),
        ("GET", "openapi.yaml"),
    ]:
        try:
            await jp_fetch(
                "aicloud",
                "api",
                "v1",
                *path.split("/"),
                method=method,
                headers={"Authorization": ""},
                body=b"{}" if method == "POST" else None,
            )
        except HTTPClientError as e:
            assert e.code == 403, (method, path, e.code)
        else:
            raise AssertionError(f"{method} {path} answered without a token")
    _, page = await api(jp_fetch, "GET", "jobs")
    assert page["total"] == 0
