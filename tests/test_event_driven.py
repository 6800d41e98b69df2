"""The service waits on events, not timers: ends, retries and schedules are seen at once.

These tests set the manager's and the scheduler's poll intervals far above the times they
assert, so only the event paths (the supervisor's pidfd, timed retries, schedule changes, the
supervisor's SIGCHLD wake-up) can make them pass.
"""

from __future__ import annotations

import asyncio
import time
from datetime import datetime

import psutil
import pytest

from aicloud.backends.local import LocalBackend
from aicloud.launchers import LaunchPlan
from tests.helpers import api, start_attempt, submit, wait_job

SLOW_POLL = 60.0


@pytest.fixture
def jp_server_config(jp_server_config):
    """The default service, except that nothing is found by polling within a test."""
    return {
        **jp_server_config,
        "JobManager": {"poll_interval": SLOW_POLL},
        "Scheduler": {"allow_seconds": True, "tick_interval": SLOW_POLL},
    }


async def test_an_ended_attempt_is_recorded_at_once(jp_fetch):
    began = time.monotonic()
    job = await submit(jp_fetch, {"command": ["sleep", "0.3"]})
    done = await wait_job(jp_fetch, job["id"], timeout=10)
    assert done["status"] == "succeeded"
    assert time.monotonic() - began < 5  # SLOW_POLL would make it 60


async def test_a_job_waiting_for_another_starts_when_it_ends(jp_fetch, jp_serverapp):
    manager = jp_serverapp.web_app.settings["aicloud_manager"]
    first = await submit(jp_fetch, {"command": ["sleep", "0.5"], "tags": ["first"]})
    manager.launch_gates.append(
        lambda job: (
            "waiting for first"
            if "second" in [t.tag for t in job.tags]
            and manager.store.get_job(first["id"]).status in ("queued", "starting", "running")
            else None
        )
    )
    second = await submit(jp_fetch, {"command": ["true"], "tags": ["second"]})
    done = await wait_job(jp_fetch, second["id"], timeout=10)
    assert done["status"] == "succeeded"
    first_done = await wait_job(jp_fetch, first["id"], timeout=1)
    assert first_done["finished_at"] <= done["started_at"]


async def test_a_retry_starts_when_its_interval_is_over(jp_fetch):
    job = await submit(
        jp_fetch,
        {"command": ["false"], "max_retries": 1, "min_retry_interval_millis": 1500},
    )
    done = await wait_job(jp_fetch, job["id"], timeout=15)
    assert done["status"] == "failed" and done["attempt_count"] == 2
    first, second = done["attempts"]
    gap = (_parse(second["started_at"]) - _parse(first["finished_at"])).total_seconds()
    assert 1.4 <= gap < 5, gap


async def test_a_new_schedule_fires_without_waiting_for_the_tick_interval(jp_fetch):
    status, schedule = await api(
        jp_fetch,
        "POST",
        "schedules",
        body={"cron": "* * * * * */2", "job": {"command": ["true"]}},
    )
    assert status == 201, schedule
    deadline = time.monotonic() + 10
    while True:
        status, runs = await api(jp_fetch, "GET", "schedules", schedule["id"], "runs")
        assert status == 200
        if runs["jobs"]:
            break
        assert time.monotonic() < deadline, "the schedule did not fire"
        await asyncio.sleep(0.1)
    await api(jp_fetch, "DELETE", "schedules", schedule["id"])


async def test_the_supervisor_sleeps_while_its_job_runs(tmp_path):
    """No timer in the supervisor: a 2 s job costs it a handful of wake-ups, not 100."""
    backend = LocalBackend()
    job_plan = LaunchPlan.single(["sleep", "2"], {"PATH": "/usr/bin:/bin"}, tmp_path)
    handle = await start_attempt(backend, job_plan, tmp_path, 1, None)
    supervisor = psutil.Process(handle["pid"])
    await asyncio.sleep(0.5)  # past start-up
    before = supervisor.num_ctx_switches().voluntary
    await asyncio.sleep(1.0)
    woke = supervisor.num_ctx_switches().voluntary - before
    assert woke <= 5, f"the supervisor woke {woke} times in 1 s"
    while (outcome := await backend.poll(handle)) is None:
        await asyncio.sleep(0.05)
    assert outcome.exit_code == 0


def _parse(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))
