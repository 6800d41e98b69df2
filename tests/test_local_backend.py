"""The local backend and its supervisor: detached groups, no orphans, pid reuse, status files."""

from __future__ import annotations

import asyncio
import os
import sys
import time
import uuid
from pathlib import Path

import psutil

from aicloud.backends.local import LocalBackend, find_process
from aicloud.launchers import LaunchPlan
from tests.helpers import api, job_log, start_attempt, submit, wait_job


def processes_marked(marker: str) -> list[psutil.Process]:
    """Live processes whose environment has ``M=<marker>``."""
    found = []
    for process in psutil.process_iter(["environ", "status"]):
        env = process.info["environ"] or {}
        if env.get("M") == marker and process.info["status"] != psutil.STATUS_ZOMBIE:
            found.append(process)
    return found


def plan(argv: list[str], cwd: Path, marker: str = "") -> LaunchPlan:
    return LaunchPlan.single(argv, {"PATH": "/usr/bin:/bin", "M": marker}, cwd)


async def wait_exit(backend: LocalBackend, handle: dict, timeout: float = 20):
    deadline = time.monotonic() + timeout
    while (outcome := await backend.poll(handle)) is None:
        assert time.monotonic() < deadline, "attempt did not end"
        await asyncio.sleep(0.05)
    return outcome


async def test_attempt_runs_in_its_own_session(tmp_path):
    backend = LocalBackend()
    handle = await start_attempt(backend, plan(["sleep", "30"], tmp_path), tmp_path, 1, None)
    assert os.getsid(handle["pid"]) == handle["pid"] != os.getsid(0)
    assert os.getpgid(handle["pid"]) == handle["pid"]
    assert await backend.poll(handle) is None
    await backend.cancel(handle)
    outcome = await wait_exit(backend, handle)
    assert outcome.terminated or outcome.lost


async def test_status_file_records_exit_code(tmp_path):
    backend = LocalBackend()
    handle = await start_attempt(
        backend, plan(["sh", "-c", "echo out; exit 7"], tmp_path), tmp_path, 1, None
    )
    outcome = await wait_exit(backend, handle)
    assert outcome.exit_code == 7 and not outcome.timed_out and not outcome.lost
    assert (tmp_path / "output.log").read_text() == "out\n"
    assert Path(handle["status_file"]).exists()


async def test_reused_pid_is_not_mistaken_for_the_attempt(tmp_path):
    backend = LocalBackend()
    # A live process (this test) whose start time does not match the recorded one.
    handle = {
        "pid": psutil.Process().pid,
        "create_time": psutil.Process().create_time() - 1000,
        "status_file": str(tmp_path / "attempt-1.status.json"),
    }
    assert find_process(handle) is None
    outcome = await backend.poll(handle)
    assert outcome is not None and outcome.lost


async def test_timeout_kills_the_whole_group(tmp_path):
    marker = uuid.uuid4().hex
    backend = LocalBackend(cancel_grace_seconds=0.5)
    script = "trap '' TERM; sleep 60 & sleep 61; wait"
    handle = await start_attempt(
        backend, plan(["sh", "-c", script], tmp_path, marker), tmp_path, 1, 1
    )
    started = time.monotonic()
    outcome = await wait_exit(backend, handle)
    assert outcome.timed_out
    assert time.monotonic() - started < 10
    assert processes_marked(marker) == []
    assert "[aicloud] timed out after 1 s" in (tmp_path / "output.log").read_text()


async def test_orphans_in_another_session_are_reaped(jp_fetch, jp_root_dir):
    # The job starts a daemon in a new session and exits 0: nothing may outlive the job.
    marker = uuid.uuid4().hex
    code = (
        "import subprocess, sys;"
        "subprocess.Popen(['sleep', '60'], start_new_session=True); print('started')"
    )
    job = await submit(jp_fetch, {"command": [sys.executable, "-c", code], "env": {"M": marker}})
    job = await wait_job(jp_fetch, job["id"])
    assert job["status"] == "succeeded"
    assert await job_log(jp_fetch, job["id"]) == "started\n"
    await asyncio.sleep(0.2)
    assert processes_marked(marker) == []


async def test_cancel_reaches_processes_in_another_session(jp_fetch):
    marker = uuid.uuid4().hex
    code = (
        "import subprocess, time;"
        "subprocess.Popen(['sleep', '60'], start_new_session=True);"
        "print('ready', flush=True); time.sleep(60)"
    )
    job = await submit(jp_fetch, {"command": [sys.executable, "-c", code], "env": {"M": marker}})
    job = await wait_job(jp_fetch, job["id"], statuses={"running"})
    for _ in range(100):
        if await job_log(jp_fetch, job["id"]) == "ready\n":
            break
        await asyncio.sleep(0.05)
    status, cancelled = await api(jp_fetch, "POST", "jobs", job["id"], "cancel")
    assert status == 200 and cancelled["status"] == "cancelled"
    assert processes_marked(marker) == []
