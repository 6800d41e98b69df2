"""A job cannot make the service read a file for it: symlinks and the like in its run dir.

Each job here replaces a file the service reads (its log, an output, its metrics, its status,
its failure reason) with a symlink to a file holding a marker, a hard link, a FIFO, or a
symlinked folder. The API answers 403 (or leaves the file out) and never shows the marker.
"""

from __future__ import annotations

import json
import os
import stat
import time
import uuid

import pytest

from aicloud.store import make_engine
from tests.helpers import api, submit, wait_job

RUN = '"$AICLOUD_RUN_DIR"'


@pytest.fixture
def secret(tmp_path) -> tuple[str, str]:
    """A file outside every run directory, and the marker it holds."""
    marker = "marker-" + uuid.uuid4().hex
    path = tmp_path / "elsewhere" / "secret.txt"
    path.parent.mkdir()
    point = {"time": 1.0, "rank": 0, "restart": 0, "step": 1, marker: 1}
    path.write_text(json.dumps({"exit_code": 0, "error": marker, **point}) + "\n")
    return str(path), marker


async def run_job(jp_fetch, script: str) -> dict:
    """Run ``sh -c script`` as a job to its end."""
    job = await submit(jp_fetch, {"command": ["sh", "-c", script]})
    return await wait_job(jp_fetch, job["id"])


def refused(status: int, body, name: str, marker: str) -> None:
    """A 403 whose message names the file and shows nothing of what it points to."""
    assert status == 403, (status, body)
    assert name in body["message"]
    assert marker not in json.dumps(body)


async def test_log_symlink_to_another_file_is_refused(jp_fetch, secret):
    target, marker = secret
    job = await run_job(jp_fetch, f"rm {RUN}/output.log; ln -s {target} {RUN}/output.log")
    assert job["status"] == "succeeded"
    for params in ({}, {"follow": "1"}, {"rank": "0"}):
        status, body = await api(jp_fetch, "GET", "jobs", job["id"], "logs", **params)
        refused(status, body, "output.log", marker)


async def test_log_fifo_is_refused_without_hanging(jp_fetch):
    job = await run_job(jp_fetch, f"rm {RUN}/output.log; mkfifo {RUN}/output.log")
    started = time.monotonic()
    status, body = await api(jp_fetch, "GET", "jobs", job["id"], "logs")
    assert status == 403 and "output.log" in body["message"]
    assert time.monotonic() - started < 5


async def test_log_hard_link_is_refused(jp_fetch, tmp_path):
    marker = "marker-" + uuid.uuid4().hex
    other = tmp_path / "other.txt"  # on the same file system as the run directories
    other.write_text(marker)
    job = await run_job(jp_fetch, f"rm {RUN}/output.log; ln {other} {RUN}/output.log")
    status, body = await api(jp_fetch, "GET", "jobs", job["id"], "logs")
    refused(status, body, "output.log", marker)


async def test_output_symlinks_are_left_out_and_refused(jp_fetch, secret):
    target, marker = secret
    job = await run_job(
        jp_fetch,
        f"mkdir -p {RUN}/outputs && echo fine > {RUN}/outputs/ok.txt"
        f" && ln -s {target} {RUN}/outputs/report.html && mkfifo {RUN}/outputs/pipe.txt",
    )
    status, listing = await api(jp_fetch, "GET", "jobs", job["id"], "outputs")
    assert status == 200
    assert [o["name"] for o in listing["outputs"]] == ["ok.txt"]
    for name in ("report.html", "pipe.txt"):
        status, body = await api(jp_fetch, "GET", "jobs", job["id"], "outputs", name)
        refused(status, body, name, marker)
    status, text = await api(jp_fetch, "GET", "jobs", job["id"], "outputs", "ok.txt")
    assert (status, text) == (200, "fine\n")


async def test_outputs_folder_symlinked_to_another_run_is_refused(jp_fetch, secret):
    target, marker = secret
    victim = await run_job(jp_fetch, f"mkdir -p {RUN}/outputs && cp {target} {RUN}/outputs/a.txt")
    status, text = await api(jp_fetch, "GET", "jobs", victim["id"], "outputs", "a.txt")
    assert status == 200 and marker in text
    job = await run_job(jp_fetch, f'ln -s "$(dirname {RUN})/{victim["id"]}/outputs" {RUN}/outputs')
    status, body = await api(jp_fetch, "GET", "jobs", job["id"], "outputs")
    refused(status, body, "outputs", marker)
    status, body = await api(jp_fetch, "GET", "jobs", job["id"], "outputs", "a.txt")
    refused(status, body, "a.txt", marker)


async def test_metrics_symlink_is_refused(jp_fetch, secret):
    target, marker = secret
    job = await run_job(jp_fetch, f"ln -s {target} {RUN}/metrics.jsonl")
    status, body = await api(jp_fetch, "GET", "jobs", job["id"], "metrics")
    refused(status, body, "metrics.jsonl", marker)


async def test_status_symlink_is_not_read(jp_fetch, secret):
    """A status file the job plants is ignored; the supervisor's own one counts."""
    target, marker = secret
    job = await run_job(jp_fetch, f"ln -s {target} {RUN}/attempt-1.status.json; sleep 3")
    assert job["status"] == "succeeded", job
    assert marker not in json.dumps(job)


async def test_reason_symlink_is_not_read(jp_fetch, secret):
    target, marker = secret
    job = await run_job(jp_fetch, f"ln -s {target} {RUN}/attempt-1.reason; exit 3")
    assert job["status"] == "failed"
    assert job["reason"] == "exited with code 3"
    assert marker not in json.dumps(job)


def test_log_symlink_to_proc_self_environ(live_server_factory, monkeypatch):
    """The attack of issue 15: the log made a symlink to the service's own environment."""
    marker = "marker-" + uuid.uuid4().hex
    monkeypatch.setenv("AICLOUD_TEST_SERVICE_SECRET", marker)
    server = live_server_factory()
    with server.api() as client:
        script = f"rm {RUN}/output.log; ln -s /proc/self/environ {RUN}/output.log"
        job = client.post("jobs", json={"command": ["sh", "-c", script]}).json()
        deadline = time.monotonic() + 30
        while client.get(f"jobs/{job['id']}").json()["status"] not in ("succeeded", "failed"):
            assert time.monotonic() < deadline
            time.sleep(0.1)
        for params in ({}, {"follow": "1"}):
            response = client.get(f"jobs/{job['id']}/logs", params=params)
            assert response.status_code == 403
            assert "output.log" in response.json()["message"]
            assert marker not in response.text
            assert "PATH=" not in response.text


async def test_store_and_run_files_are_private(jp_fetch, aicloud_data_dir):
    job = await run_job(jp_fetch, "true")
    mode = lambda path: stat.S_IMODE(os.stat(path).st_mode)  # noqa: E731
    assert mode(aicloud_data_dir / "aicloud.db") == 0o600
    run_dir = aicloud_data_dir / "runs" / job["id"]
    assert mode(aicloud_data_dir / "runs") == 0o700
    assert mode(run_dir) == 0o700
    assert not (run_dir / "attempt-1.plan.json").exists()  # the plan goes in on stdin


def test_an_existing_store_file_is_made_private(tmp_path):
    path = tmp_path / "aicloud.db"
    path.touch(mode=0o644)
    os.chmod(path, 0o644)
    make_engine(f"sqlite:///{path}").dispose()
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
