"""Schedules through the REST API of a real in-process server, with real processes."""

from __future__ import annotations

import asyncio
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from tests.helpers import api, job_log, wait_job
from tests.notebook_files import write_report

EVERY_SECOND = "* * * * * */1"
EVERY_2S = "* * * * * */2"


@pytest.fixture
def jp_server_config(jp_server_config):
    """Seconds-level cron and a quick scheduler, for tests."""
    return {
        **jp_server_config,
        "Scheduler": {"allow_seconds": True, "tick_interval": 0.1},
        "Notifier": {"backoff_seconds": 0.1},
    }


class Receiver(BaseHTTPRequestHandler):
    """Records webhook POSTs; fails the first one of each job to exercise retries."""

    received: list[dict] = []
    failed_once: set[str] = set()

    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        key = f"{body['job']['id']}-{body['event']}"
        if key not in self.failed_once:
            self.failed_once.add(key)
            self.send_response(503)
            self.end_headers()
            return
        self.received.append(body)
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args):
        pass


@pytest.fixture
def webhook():
    Receiver.received, Receiver.failed_once = [], set()
    server = ThreadingHTTPServer(("127.0.0.1", 0), Receiver)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/hooks/s3cret", Receiver.received
    server.shutdown()


async def create(jp_fetch, spec: dict) -> dict:
    status, schedule = await api(jp_fetch, "POST", "schedules", body=spec)
    assert status == 201, schedule
    return schedule


async def runs(jp_fetch, schedule_id: str) -> list[dict]:
    _, page = await api(jp_fetch, "GET", "schedules", schedule_id, "runs", limit="500")
    return page["jobs"]


async def wait_runs(jp_fetch, schedule_id, count, statuses=("succeeded",), timeout=60):
    for _ in range(int(timeout / 0.1)):
        done = [r for r in await runs(jp_fetch, schedule_id) if r["status"] in statuses]
        if len(done) >= count:
            return done
        await asyncio.sleep(0.1)
    raise TimeoutError(f"{schedule_id}: fewer than {count} runs {statuses}")


async def test_crud(jp_fetch, jp_base_url, webhook):
    url, _ = webhook
    spec = {
        "name": "nightly",
        "cron": "0 6 * * 1-5",
        "timezone": "Europe/Berlin",
        "job": {"command": ["true"], "env": {"API_TOKEN": "x"}},
        "webhook_url": url,
        "keep_last": 5,
    }
    response = await jp_fetch(
        "aicloud", "api", "v1", "schedules", method="POST", body=json.dumps(spec)
    )
    schedule = json.loads(response.body)
    assert response.code == 201
    assert response.headers["Location"] == f"{jp_base_url}aicloud/api/v1/schedules/{schedule['id']}"
    assert schedule["webhook_url"].endswith(":" + url.split(":")[2].split("/")[0] + "/***")
    assert schedule["job"]["env"] == {"API_TOKEN": "***"}
    assert schedule["next_tick_at"].endswith(":00:00.000Z") and not schedule["paused"]
    _, page = await api(jp_fetch, "GET", "schedules")
    assert [s["id"] for s in page["schedules"]] == [schedule["id"]]
    status, changed = await api(
        jp_fetch, "PATCH", "schedules", schedule["id"], body={"cron": "30 7 * * *", "paused": True}
    )
    assert status == 200 and changed["cron"] == "30 7 * * *" and changed["paused"]
    status, _ = await api(jp_fetch, "DELETE", "schedules", schedule["id"])
    assert status == 204
    status, error = await api(jp_fetch, "GET", "schedules", schedule["id"])
    assert status == 404 and schedule["id"] in error["message"]


async def test_schedule_pages(jp_fetch):
    """GET /schedules pages like GET /jobs: ``next_offset`` until the last page."""
    spec = {"cron": "0 3 * * *", "timezone": "UTC", "job": {"command": ["true"]}}
    made = [(await api(jp_fetch, "POST", "schedules", body=spec))[1]["id"] for _ in range(3)]
    _, first = await api(jp_fetch, "GET", "schedules", limit="2")
    assert (first["total"], first["next_offset"], len(first["schedules"])) == (3, 2, 2)
    _, last = await api(jp_fetch, "GET", "schedules", limit="2", offset="2")
    assert (last["next_offset"], len(last["schedules"])) == (None, 1)
    seen = [s["id"] for s in first["schedules"] + last["schedules"]]
    assert sorted(seen) == sorted(made)


async def test_fires_records_notifies_and_prunes(jp_fetch, webhook):
    url, received = webhook
    schedule = await create(
        jp_fetch,
        {
            "cron": EVERY_SECOND,
            "job": {"command": ["sh", "-c", "echo run $AICLOUD_JOB_ID"]},
            "keep_last": 2,
            "webhook_url": url,
        },
    )
    done = await wait_runs(jp_fetch, schedule["id"], 4)
    await api(jp_fetch, "PATCH", "schedules", schedule["id"], body={"paused": True})
    await asyncio.sleep(1.0)
    history = [r for r in await runs(jp_fetch, schedule["id"]) if r["status"] == "succeeded"]
    ticks = sorted(r["scheduled_for"] for r in history)
    assert len(set(ticks)) == len(ticks) >= 4
    assert [r["pruned"] for r in history[:2]] == [False, False]
    assert all(r["pruned"] for r in history[2:])
    for run in history[2:]:
        status, _ = await api(jp_fetch, "GET", "jobs", run["id"], "logs")
        assert status == 200
    assert "run" in await job_log(jp_fetch, history[0]["id"])
    events = {(b["job"]["id"], b["event"]) for b in received}
    for run in done[:2]:
        assert (run["id"], "started") in events and (run["id"], "succeeded") in events
    assert received[0]["schedule"] == {"id": schedule["id"], "name": None}
    assert set(received[0]) == {"event", "schedule", "job", "sent_at"}


async def test_failure_webhook_retries_and_timeouts(jp_fetch, webhook):
    url, received = webhook
    schedule = await create(
        jp_fetch,
        {
            "cron": "0 0 1 1 *",
            "job": {
                "command": ["sleep", "30"],
                "timeout_seconds": 1,
                "max_retries": 1,
                "retry_on_timeout": True,
            },
            "webhook_url": url,
        },
    )
    status, job = await api(jp_fetch, "POST", "schedules", schedule["id"], "run")
    assert status == 201 and job["schedule_id"] == schedule["id"] and job["scheduled_for"] is None
    job = await wait_job(jp_fetch, job["id"], timeout=60)
    assert job["status"] == "failed" and job["reason_code"] == "timeout"
    assert [a["reason_code"] for a in job["attempts"]] == ["timeout", "timeout"]
    for _ in range(50):
        if any(b["event"] == "failed" for b in received):
            break
        await asyncio.sleep(0.1)
    failed = [b for b in received if b["event"] == "failed"]
    assert failed and failed[0]["job"]["reason_code"] == "timeout"


async def test_queue_keeps_to_max_concurrent_runs(jp_fetch):
    schedule = await create(
        jp_fetch,
        {
            "cron": EVERY_SECOND,
            "job": {"command": ["sleep", "2.5"]},
            "max_concurrent_runs": 1,
        },
    )
    peak = 0
    waiting_reason = None
    for _ in range(60):
        current = await runs(jp_fetch, schedule["id"])
        running = [r for r in current if r["status"] in ("starting", "running")]
        peak = max(peak, len(running))
        waiting_reason = waiting_reason or next(
            (r["reason"] for r in current if r["status"] == "queued" and r["reason"]), None
        )
        await asyncio.sleep(0.1)
    await api(jp_fetch, "PATCH", "schedules", schedule["id"], body={"paused": True})
    assert peak == 1
    assert waiting_reason.startswith("queued: 1 run(s) of schedule")
    for run in await runs(jp_fetch, schedule["id"]):
        if run["status"] not in ("succeeded", "failed", "cancelled"):
            await api(jp_fetch, "POST", "jobs", run["id"], "cancel")


async def test_skip_records_skipped_ticks(jp_fetch):
    schedule = await create(
        jp_fetch,
        {
            "cron": EVERY_SECOND,
            "job": {"command": ["sleep", "2.5"]},
            "overlap": "skip",
        },
    )
    await wait_runs(jp_fetch, schedule["id"], 2, statuses=("cancelled",), timeout=30)
    await api(jp_fetch, "PATCH", "schedules", schedule["id"], body={"paused": True})
    skipped = [r for r in await runs(jp_fetch, schedule["id"]) if r["reason_code"] == "skipped"]
    assert skipped[0]["reason"] == "skipped: 1 run(s) still active (max_concurrent_runs=1)"
    assert skipped[0]["attempt_count"] == 0
    for run in await runs(jp_fetch, schedule["id"]):
        if run["status"] in ("queued", "starting", "running"):
            await api(jp_fetch, "POST", "jobs", run["id"], "cancel")


async def test_pause_and_resume_do_not_fire_missed_ticks(jp_fetch):
    schedule = await create(
        jp_fetch,
        {"cron": EVERY_SECOND, "job": {"command": ["true"]}, "paused": True, "catch_up": "all"},
    )
    await asyncio.sleep(2.5)
    assert await runs(jp_fetch, schedule["id"]) == []
    _, resumed = await api(jp_fetch, "PATCH", "schedules", schedule["id"], body={"paused": False})
    await wait_runs(jp_fetch, schedule["id"], 1)
    await api(jp_fetch, "PATCH", "schedules", schedule["id"], body={"paused": True})
    fired = await runs(jp_fetch, schedule["id"])
    assert all(r["scheduled_for"] >= resumed["last_tick_at"] for r in fired)


async def test_notebook_schedule_run_now_and_snapshot(jp_fetch, jp_root_dir):
    write_report(jp_root_dir)
    live = await create(
        jp_fetch,
        {
            "cron": "0 6 * * *",
            "timezone": "Europe/Berlin",
            "job": {"kind": "notebook", "notebook": "report.ipynb", "parameters": {"region": "us"}},
        },
    )
    frozen = await create(
        jp_fetch,
        {
            "cron": "0 6 * * *",
            "snapshot": True,
            "job": {"kind": "notebook", "notebook": "report.ipynb"},
        },
    )
    write_report(jp_root_dir, body='print("edited after scheduling", region, days)')
    status, job = await api(
        jp_fetch, "POST", "schedules", live["id"], "run", body={"parameters": {"days": 2}}
    )
    assert status == 201
    job = await wait_job(jp_fetch, job["id"], timeout=120)
    assert job["status"] == "succeeded"
    assert "edited after scheduling us 2" in await job_log(jp_fetch, job["id"])
    status, job = await api(jp_fetch, "POST", "schedules", frozen["id"], "run")
    job = await wait_job(jp_fetch, job["id"], timeout=120)
    assert "region eu days 7 int" in await job_log(jp_fetch, job["id"])
    status, error = await api(
        jp_fetch, "POST", "schedules", live["id"], "run", body={"parameters": {"days": "two"}}
    )
    assert status == 400 and "parameters.days: expected int, got str" in error["message"]


BAD_SCHEDULES = [
    ({"cron": "61 * * * *"}, 400, "cron: not a valid cron expression"),
    ({"cron": "0 6 * *"}, 400, "cron: expected five fields"),
    ({"timezone": "Mars/Olympus"}, 400, "timezone: unknown time zone 'Mars/Olympus'"),
    (
        {"start_at": "2027-01-02T00:00:00Z", "end_at": "2027-01-01T00:00:00Z"},
        400,
        "end_at must be after start_at",
    ),
    ({"start_at": "2027-01-02T00:00:00"}, 400, "start_at:"),
    (
        {"job": {"kind": "notebook", "notebook": "missing.ipynb"}},
        400,
        "notebook: 'missing.ipynb' not found",
    ),
    (
        {"job": {"kind": "notebook", "notebook": "../outside.ipynb"}},
        400,
        "notebook: must stay inside",
    ),
    ({"job": {"kind": "notebook", "notebook": "notes.txt"}}, 400, "is not a notebook"),
    (
        {"job": {"kind": "notebook", "notebook": "report.ipynb", "parameters": {"colour": 1}}},
        400,
        "unknown parameter 'colour'",
    ),
    (
        {"job": {"kind": "notebook", "notebook": "report.ipynb", "parameters": {"days": "7"}}},
        400,
        "parameters.days: expected int, got str",
    ),
    ({"job": {"command": ["true"]}, "snapshot": True}, 400, "snapshot is for notebook jobs"),
    ({"keep_last": 0}, 400, "keep_last:"),
    ({"max_concurrent_runs": 0}, 400, "max_concurrent_runs:"),
    ({"catch_up": "some"}, 400, "catch_up:"),
    ({"webhook_url": "ftp://example.org/x"}, 400, "webhook_url:"),
    ({"colour": "red"}, 400, "colour: Extra inputs are not permitted"),
    ({"job": {"command": ["true"], "name": "x" * (2 * 2**20)}}, 413, "larger than"),
]


@pytest.mark.parametrize("change,status,text", BAD_SCHEDULES)
async def test_bad_schedules(jp_fetch, jp_root_dir, change, status, text):
    write_report(jp_root_dir)
    (jp_root_dir / "notes.txt").write_text("not a notebook")
    (jp_root_dir.parent / "outside.ipynb").write_text("{}")
    spec = {"cron": "0 6 * * *", "job": {"kind": "notebook", "notebook": "report.ipynb"}, **change}
    code, error = await api(jp_fetch, "POST", "schedules", body=spec)
    assert code == status and text in error["message"], error
    _, page = await api(jp_fetch, "GET", "schedules")
    assert page["total"] == 0
    _, jobs = await api(jp_fetch, "GET", "jobs")
    assert jobs["total"] == 0
