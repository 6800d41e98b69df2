"""The worst moments to crash (issue 16): each window, hit exactly, with a real server.

A server is crashed (SIGKILL to itself) at a chosen point of a launch or a cancel by a
``jupyter_server_config.py`` that wraps one method: the test's fault injection, not the
product's. Every job runs ``bench/workloads/chaos_worker.py``, which records each of its runs
(and any live process of another attempt of its job) in a marker file, so the tests count
what really ran against what the store says.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
import threading
import uuid
from pathlib import Path

import httpx
import psutil
import pytest

from aicloud.backends import local as local_backend
from aicloud.backends import units
from aicloud.backends.gpus import GPULeases
from aicloud.backends.local import LocalBackend
from aicloud.launchers import LaunchPlan
from aicloud.spec import JobSpec
from tests.conftest import wait_for
from tests.helpers import start_attempt
from tests.test_local_backend import processes_marked, wait_exit

WORKER = Path(__file__).resolve().parent.parent / "bench" / "workloads" / "chaos_worker.py"
TERMINAL = ("succeeded", "failed", "cancelled")

# Wraps a method so that the server SIGKILLs itself at ``point``; the restarted server has no
# such file. ``CRASHES`` names each point: what is wrapped, and whether before or after it.
CRASHES = {
    "claimed, not started": ("aicloud.backends.local:LocalBackend.start", "before"),
    "supervisor started, plan not handed over": ("aicloud.backends.units:{unit}.add", "after"),
    "started, handle not stored": ("aicloud.backends.local:LocalBackend.start", "after"),
    "cancel stored, nothing signalled": ("aicloud.backends.local:LocalBackend.cancel", "before"),
}
WRAPPER = """\
import asyncio, importlib, os, signal

module_name, _, qualname = {target!r}.partition(":")
owner_name, attr = qualname.split(".")
owner = getattr(importlib.import_module(module_name), owner_name)
original = getattr(owner, attr)

def crash():
    os.kill(os.getpid(), signal.SIGKILL)

if asyncio.iscoroutinefunction(original):
    async def wrapped(*args, **kwargs):
        if {when!r} == "before":
            crash()
        result = await original(*args, **kwargs)
        crash()
    setattr(owner, attr, wrapped)
else:
    def wrapped(*args, **kwargs):
        if {when!r} == "before":
            crash()
        result = original(*args, **kwargs)
        crash()
    setattr(owner, attr, wrapped)
"""


def crash_at(server_home: Path, point: str, unit: str = "CgroupUnit") -> Path:
    """Make the next server started on ``server_home`` crash at ``point``."""
    target, when = CRASHES[point]
    config = server_home / "config" / "jupyter_server_config.py"
    config.parent.mkdir(parents=True, exist_ok=True)
    config.write_text(WRAPPER.format(target=target.format(unit=unit), when=when))
    return config


def worker_spec(marker: Path, *, code=0, sleep1=0.3, sleep2=0.3, trap=False, **extra) -> dict:
    argv = [sys.executable, "-I", "-S", str(WORKER), str(marker), str(code), str(sleep1)]
    return {"command": [*argv, str(sleep2), "1" if trap else "0"], **extra}


def runs(marker: Path) -> list[list[str]]:
    """The ``start`` records: pid, attempt, rank, time, live processes of other attempts."""
    if not marker.exists():
        return []
    lines = [line.split() for line in marker.read_text().splitlines()]
    return [line[1:] for line in lines if line[0] == "start"]


def job_processes(job_id: str) -> list[psutil.Process]:
    """Live processes that carry the job's id in their environment."""
    found = []
    for process in psutil.process_iter(["environ", "status"]):
        env = process.info["environ"] or {}
        if env.get("AICLOUD_JOB_ID") == job_id and process.info["status"] != "zombie":
            found.append(process)
    return found


def supervisors(job_id: str) -> list[psutil.Process]:
    """The job's supervisors: started with its run directory's claim path."""
    found = []
    for process in psutil.process_iter(["cmdline"]):
        cmdline = " ".join(process.info["cmdline"] or [])
        if "supervise.py" in cmdline and f"/{job_id}/attempt-" in cmdline:
            found.append(process)
    return found


def submit(server, spec: dict) -> str:
    with server.api() as client:
        response = client.post("jobs", json=spec)
        assert response.status_code == 201, response.text
        return response.json()["id"]


def wait_terminal(server, job_id: str, timeout: float = 60) -> dict:
    with server.api() as client:
        return wait_for(
            lambda: (j := client.get(f"jobs/{job_id}").json())["status"] in TERMINAL and j,
            timeout=timeout,
        )


def wait_crashed(server, timeout: float = 30) -> None:
    server.process.wait(timeout=timeout)
    assert server.process.returncode == -signal.SIGKILL
    server.log.close()


def restart(live_server_factory, config: Path, **kwargs):
    config.unlink()
    return live_server_factory(**kwargs)


@pytest.mark.parametrize(
    "point",
    ["claimed, not started", "supervisor started, plan not handed over"],
)
def test_a_start_cut_short_before_the_job_ran_runs_it_once(live_server_factory, tmp_path, point):
    """The server dies between storing the attempt and handing the plan over: the restarted
    server proves that attempt never ran, and starts the job once, at no cost of a retry."""
    marker = tmp_path / "marker"
    home = tmp_path / "home"
    config = crash_at(home, point)
    first = live_server_factory()
    job_id = submit(first, worker_spec(marker, max_retries=0))
    wait_crashed(first)
    assert runs(marker) == []
    second = restart(live_server_factory, config)
    job = wait_terminal(second, job_id)
    assert job["status"] == "succeeded", job
    assert len(runs(marker)) == 1, marker.read_text()
    first_attempt = job["attempts"][0]
    assert first_attempt["status"] == "failed" and "never started" in first_attempt["reason"]
    assert job["attempts"][-1]["status"] == "succeeded"
    assert job_processes(job_id) == [] and supervisors(job_id) == []


def test_a_start_cut_short_after_the_job_started_adopts_it(live_server_factory, tmp_path):
    """The window of the issue: the supervisor runs, the server dies before it stores the
    handle. The restarted server adopts the attempt from its claim: one run, true status."""
    marker = tmp_path / "marker"
    config = crash_at(tmp_path / "home", "started, handle not stored")
    first = live_server_factory()
    job_id = submit(first, worker_spec(marker, code=0, sleep1=8, max_retries=2))
    wait_crashed(first)
    second = restart(live_server_factory, config)
    with second.api() as client:
        job = wait_for(
            lambda: (j := client.get(f"jobs/{job_id}").json())["status"] != "starting" and j
        )
        # Adopted, not declared lost (a slow restart may find it already done: the attempt
        # count and the one run below prove the adoption either way).
        assert job["status"] in ("running", "succeeded"), job
    job = wait_terminal(second, job_id)
    assert job["status"] == "succeeded" and job["attempt_count"] == 1, job
    assert len(runs(marker)) == 1, marker.read_text()


def test_a_job_that_finished_while_its_start_was_unrecorded_is_not_run_again(
    live_server_factory, tmp_path
):
    """It ends while no server runs: its status file is the truth, not a lost start."""
    marker = tmp_path / "marker"
    config = crash_at(tmp_path / "home", "started, handle not stored")
    first = live_server_factory()
    job_id = submit(first, worker_spec(marker, code=3, sleep1=0.1, max_retries=2))
    wait_crashed(first)
    wait_for(lambda: marker.exists() and "\nend " in "\n" + marker.read_text())
    wait_for(lambda: supervisors(job_id) == [])
    second = restart(live_server_factory, config)
    job = wait_terminal(second, job_id)
    # Exit code 3 is the job's own failure: retried per its policy, and each run is real.
    assert job["attempts"][0]["exit_code"] == 3, job
    assert job["attempts"][0]["reason_code"] == "user_error", job
    assert len(runs(marker)) == job["attempt_count"] == 3, marker.read_text()


@pytest.mark.parametrize("cgroups", [True, False], ids=["cgroup", "tagged"])
def test_a_killed_supervisor_takes_its_processes_with_it(live_server_factory, tmp_path, cgroups):
    """kill -9 of the supervisor: every process of the attempt is gone before the retry
    starts, and none is left when the job ends."""
    marker = tmp_path / "marker"
    args = () if cgroups else ("--LocalBackend.use_cgroups=False",)
    server = live_server_factory(extra_args=args)
    # The worker and a detached grandchild in a session of its own: both must go.
    script = f"setsid sleep 300 & exec {sys.executable} -I -S {WORKER} {marker} 0 300 0.3 0"
    job_id = submit(server, {"command": ["sh", "-c", script], "max_retries": 1})
    wait_for(lambda: len(runs(marker)) == 1)
    victims = job_processes(job_id)
    assert len(victims) >= 2
    (supervisor,) = supervisors(job_id)
    supervisor.kill()
    job = wait_terminal(server, job_id)
    assert job["status"] == "succeeded" and job["attempt_count"] == 2, job
    attempts = runs(marker)
    assert len(attempts) == 2 and attempts[1][1] == "2"
    assert attempts[1][4] == "-", f"attempt 2 started beside attempt 1's {attempts[1][4]}"
    assert job["attempts"][0]["reason_code"] == "infrastructure"
    assert not any(v.is_running() and v.status() != "zombie" for v in victims)
    assert job_processes(job_id) == []


def test_a_cancel_cut_short_by_a_crash_is_finished_by_the_next_server(
    live_server_factory, tmp_path
):
    """The cancel is stored, the server dies before it signals: the next server cancels
    the job, which ends ``cancelled`` and gets no retry."""
    marker = tmp_path / "marker"
    first = live_server_factory()
    job_id = submit(first, worker_spec(marker, sleep1=300, trap=True, max_retries=2))
    wait_for(lambda: len(runs(marker)) == 1)
    first.stop(kill=True)
    config = crash_at(tmp_path / "home", "cancel stored, nothing signalled")
    second = live_server_factory()
    with second.api() as client, pytest.raises(httpx.TransportError):  # it dies answering
        client.post(f"jobs/{job_id}/cancel", timeout=10)
    wait_crashed(second)
    third = restart(live_server_factory, config)
    job = wait_terminal(third, job_id, timeout=30)
    assert job["status"] == "cancelled" and job["reason_code"] == "cancelled", job
    assert job["attempt_count"] == 1
    assert len(runs(marker)) == 1
    assert job_processes(job_id) == [] and supervisors(job_id) == []


def test_a_sigterm_to_the_supervisor_by_hand_ends_the_job_cancelled(live_server, tmp_path):
    """An operator's ``kill <supervisor>`` is a cancel (``terminated`` in the status file):
    no retry, status ``cancelled``; a job that ignores it is SIGKILLed after the grace."""
    marker = tmp_path / "marker"
    job_id = submit(live_server, worker_spec(marker, sleep1=300, trap=True, max_retries=2))
    wait_for(lambda: len(runs(marker)) == 1)
    (supervisor,) = supervisors(job_id)
    supervisor.terminate()
    job = wait_terminal(live_server, job_id)
    assert job["status"] == "cancelled" and job["attempt_count"] == 1, job
    assert "SIGTERM" in job["reason"]
    assert job_processes(job_id) == []


def test_a_crash_during_a_slow_cancel_keeps_the_job_cancelled(live_server_factory, tmp_path):
    """SIGTERM reached the job (which ignores it), then the server died in the grace period:
    the supervisor itself SIGKILLs the job after the grace, with no server up, and the next
    server says ``cancelled``, with no retry."""
    marker = tmp_path / "marker"
    server = live_server_factory()  # grace: 1 s
    job_id = submit(server, worker_spec(marker, sleep1=300, trap=True, max_retries=2))
    wait_for(lambda: len(runs(marker)) == 1)
    with server.api() as client:
        thread = threading.Thread(
            target=lambda: _ignore_errors(client.post, f"jobs/{job_id}/cancel"), daemon=True
        )
        thread.start()
        wait_for(lambda: "term" in marker.read_text(), interval=0.01)
        server.stop(kill=True)
        assert job_processes(job_id), "the job should outlive SIGTERM by the grace period"
    wait_for(lambda: job_processes(job_id) == [], timeout=10)
    restarted = live_server_factory()
    job = wait_terminal(restarted, job_id)
    assert job["status"] == "cancelled" and job["attempt_count"] == 1, job
    assert len(runs(marker)) == 1


def _ignore_errors(call, *args):
    with contextlib.suppress(httpx.TransportError):  # the server was killed under it
        call(*args)


# -- the backend alone: GPU leases and the unit ----------------------------------------------

GPU_SPEC = {
    "command": ["true"],
    "resources": {"accelerator": "nvidia.com/gpu", "accelerator_count": 1},
}


def gpu_attempt(tmp_path: Path, marker: str):
    """A backend with one GPU, and the plan of a job that holds it with a detached child."""
    backend = LocalBackend()
    backend.gpus = GPULeases(devices=[0])
    spec = JobSpec.model_validate(GPU_SPEC)
    env = {"PATH": os.environ["PATH"], "M": marker}
    plan = LaunchPlan.single(["sh", "-c", "setsid sleep 300 & exec sleep 300"], env, tmp_path)
    return backend, spec, plan


async def test_a_gpu_is_released_only_once_the_killed_attempt_is_gone(tmp_path):
    marker = uuid.uuid4().hex
    backend, spec, plan = gpu_attempt(tmp_path, marker)
    handle = await start_attempt(backend, plan, tmp_path, 1, None, spec)
    assert backend.gpus.free == []
    wait_for(lambda: len(processes_marked(marker)) == 2)
    os.kill(handle["pid"], signal.SIGKILL)
    outcome = await wait_exit(backend, handle)
    assert outcome.lost
    assert processes_marked(marker) == [], "the end was reported while processes of it lived"
    assert backend.gpus.free == [0]


async def test_a_gpu_stays_leased_while_processes_of_the_attempt_survive(tmp_path, monkeypatch):
    """A process that SIGKILL cannot end (stuck in the kernel: none can be made here, so the
    unit's wait is replaced by one that says so) keeps the attempt, and its GPU."""
    marker = uuid.uuid4().hex
    backend, spec, plan = gpu_attempt(tmp_path, marker)
    handle = await start_attempt(backend, plan, tmp_path, 1, None, spec)
    wait_for(lambda: len(processes_marked(marker)) == 2)
    os.kill(handle["pid"], signal.SIGKILL)
    monkeypatch.setattr(local_backend, "wait_empty", lambda unit, timeout: False)
    await asyncio.sleep(0.2)
    assert await backend.poll(handle) is None
    assert backend.gpus.free == []
    monkeypatch.undo()
    assert (await wait_exit(backend, handle)).lost
    assert backend.gpus.free == [0] and processes_marked(marker) == []


async def test_a_supervisor_that_never_got_its_plan_runs_nothing(tmp_path):
    """The server died after starting the supervisor, before the plan: no claim, no run; and
    recovery then proves it never ran."""
    backend = LocalBackend()
    launch = backend.prepare("job-test", 1)
    supervisor = subprocess.Popen(
        [sys.executable, "-I", "-S", local_backend.SUPERVISOR, "--claim", "c", "--log", "l"]
        + ["--status", "s"],
        cwd=tmp_path,
        stdin=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    supervisor.stdin.write(b'{"processes": [')  # cut short
    supervisor.stdin.close()
    assert supervisor.wait(timeout=10) == 3
    assert b"no plan" in supervisor.stderr.read()
    assert sorted(p.name for p in tmp_path.iterdir()) == []
    assert await backend.recover(launch, tmp_path, 1) is None
    (claim,) = tmp_path.glob("attempt-1.*.claim")
    assert json.loads(claim.read_text()) == {"never_started": True}


def test_empty_attempt_cgroups_left_behind_are_swept(tmp_path):
    """An attempt that ended while no server ran leaves an empty cgroup: the next server
    removes it, never one with a process in it."""
    base = units.cgroup_base()
    assert base is not None, "the tests run as root, where cgroup v2 is writable"
    empty, busy = (
        base / f"sweep-empty-{uuid.uuid4().hex[:8]}",
        base / f"sweep-busy-{uuid.uuid4().hex[:8]}",
    )
    for path in (empty, busy):
        units.CgroupUnit(path).create()
    sleeper = subprocess.Popen(["sleep", "60"])
    try:
        units.CgroupUnit(busy).add(sleeper.pid)
        units.sweep_empty(base, older_than=0)
        assert not empty.exists() and busy.exists()
    finally:
        sleeper.kill()
        sleeper.wait()
        assert units.wait_empty(units.CgroupUnit(busy), timeout=5)
    assert not busy.exists()
