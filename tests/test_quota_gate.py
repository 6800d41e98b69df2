"""The GPU quota is a gate in the job manager, taken atomically with the job's insert.

Every way a job is made passes it (``POST /jobs``, a rerun, a schedule's tick, a run now),
and submissions at the same moment never take a user past it: from one event loop, from
threads, and from several processes over one SQLite file or one PostgreSQL database.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import threading
import time
from datetime import timedelta
from pathlib import Path

import pytest
from tornado.httpclient import HTTPClientError

from aicloud.catalog import load_catalog
from aicloud.hub.quota import HubQuota, QuotaExceeded
from aicloud.manager import JobManager
from aicloud.notify import Notifier
from aicloud.scheduler import Scheduler
from aicloud.spec import JobSpec, ScheduleSpec
from aicloud.store import JobStore, make_engine, migrate, utcnow
from aicloud.store.store import owner_lock_key
from tests.test_manager_states import RecordingBackend

REPO = Path(__file__).parent.parent
CATALOG = REPO / "spawner_config" / "hardware.yaml"
GPU = {"accelerator": "nvidia.com/gpu", "accelerator_count": 1}
REFUSED = (
    "GPU quota: job needs 1 GPU(s), but {user} already holds 1 (0 in servers, 1 in jobs) of "
    "the 1 allowed to group students; stop a server or cancel a job first"
)


async def student(name: str) -> dict:
    """The hub's model of a user in group students (1 GPU), no server running."""
    return {"name": name, "groups": ["students"], "servers": {}}


def gpu_job(**fields) -> JobSpec:
    return JobSpec(command=["true"], backend="recording", resources=GPU, **fields)


class SlowHubQuota(HubQuota):
    """The hub's quota with a pause between its count and the insert: without the owner's
    lock, racing submissions would all pass on the same count."""

    async def admission(self, spec, owner):
        admit = await super().admission(spec, owner)
        if admit is None:
            return None

        def slowly(active_specs):
            admit(active_specs)
            time.sleep(0.05)

        return slowly


def make_manager(url: str, root: Path, runs: Path) -> JobManager:
    """A manager over the store at ``url`` with the catalog's quota; everyone a student."""
    return JobManager(
        backends={"recording": RecordingBackend()},
        service_env={},
        store=JobStore.from_url(url),
        root_dir=str(root),
        runs_dir=str(runs),
        quota=SlowHubQuota(load_catalog(CATALOG), student),
    )


@pytest.fixture
def sqlite_url(tmp_path) -> str:
    url = f"sqlite:///{tmp_path / 'jobs.db'}"
    migrate(make_engine(url))
    return url


@pytest.fixture
def manager(sqlite_url, tmp_path) -> JobManager:
    (tmp_path / "root").mkdir()
    return make_manager(sqlite_url, tmp_path / "root", tmp_path / "runs")


def held(manager: JobManager, owner: str) -> int:
    return len(manager.store.active_jobs(owner=owner))


async def test_the_quota_refuses_a_job_past_it_and_counts_only_active_jobs(manager):
    first = await manager.submit(gpu_job(), "sam")
    with pytest.raises(QuotaExceeded) as refused:
        await manager.submit(gpu_job(), "sam")
    assert refused.value.status == 403 and refused.value.message == REFUSED.format(user="sam")
    await manager.submit(JobSpec(command=["true"], backend="recording"), "sam")  # no GPU
    await manager.submit(gpu_job(), "tom")  # another user's quota
    await manager.cancel(first.id, "sam")
    await manager.submit(gpu_job(), "sam")  # an ended job holds nothing
    assert manager.store.list_jobs(owner="sam").total == 3


async def test_a_job_without_gpus_or_a_user_without_a_limit_takes_no_lock(manager):
    quota = manager.quota
    assert await quota.admission(JobSpec(command=["true"], backend="recording"), "sam") is None

    async def unlimited(name):
        return {"name": name, "groups": ["staff"], "servers": {}}

    quota.hub_user = unlimited
    assert await quota.admission(gpu_job(), "sam") is None
    for _ in range(3):
        await manager.submit(gpu_job(), "sam")
    assert held(manager, "sam") == 3


async def test_servers_count_with_jobs(manager):
    async def with_server(name):
        return {
            "name": name,
            "groups": ["students"],
            "servers": {"": {"user_options": {"profile": "a100-mig-1g"}}},
        }

    manager.quota.hub_user = with_server
    with pytest.raises(QuotaExceeded, match=r"holds 1 \(1 in servers, 0 in jobs\)"):
        await manager.submit(gpu_job(), "sam")
    assert held(manager, "sam") == 0


async def test_submissions_gathered_on_one_loop_pass_one_at_a_time(manager):
    results = await asyncio.gather(
        *(manager.submit(gpu_job(), "sam") for _ in range(8)), return_exceptions=True
    )
    accepted = [r for r in results if not isinstance(r, Exception)]
    assert len(accepted) == 1
    assert all(isinstance(r, QuotaExceeded) for r in results if r not in accepted)
    assert held(manager, "sam") == 1


def test_submissions_from_threads_never_pass_the_quota(manager):
    results, start = [], threading.Barrier(6)

    def submit():
        start.wait()
        try:
            asyncio.run(manager.submit(gpu_job(), "sam"))
            results.append("ok")
        except QuotaExceeded:
            results.append("refused")

    threads = [threading.Thread(target=submit) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert sorted(results) == ["ok"] + ["refused"] * 5
    assert held(manager, "sam") == 1


#: One process of the race: submits ``tries`` GPU jobs for ``owner`` once ``go`` exists.
RACER = """
import asyncio, json, os, sys, time
from pathlib import Path
from aicloud.hub.quota import QuotaExceeded
from tests.test_quota_gate import gpu_job, make_manager

url, root, runs, go, owner, tries = sys.argv[1:]
manager = make_manager(url, Path(root), Path(runs))
while not os.path.exists(go):
    time.sleep(0.005)
outcomes = []
for _ in range(int(tries)):
    try:
        asyncio.run(manager.submit(gpu_job(), owner))
        outcomes.append("ok")
    except QuotaExceeded:
        outcomes.append("refused")
print(json.dumps(outcomes))
"""


def race(url: str, tmp_path: Path, owner: str, processes: int = 3, tries: int = 4) -> list:
    """Start ``processes`` racers over one store, let them go at once, return all outcomes."""
    root = tmp_path / "root"
    root.mkdir(exist_ok=True)
    go = tmp_path / f"go-{owner}"
    env = {**os.environ, "PYTHONPATH": f"{REPO}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    argv = [sys.executable, "-c", RACER, url, str(root), str(tmp_path / "runs"), str(go), owner]
    racers = [
        subprocess.Popen([*argv, str(tries)], env=env, stdout=subprocess.PIPE, cwd=REPO)
        for _ in range(processes)
    ]
    time.sleep(3)  # let every racer import and open the store
    go.touch()
    outcomes = []
    for racer in racers:
        out, _ = racer.communicate(timeout=120)
        assert racer.returncode == 0
        outcomes += json.loads(out)
    return outcomes


def test_processes_over_one_sqlite_file_never_pass_the_quota(sqlite_url, tmp_path):
    outcomes = race(sqlite_url, tmp_path, "sam")
    assert outcomes.count("ok") == 1 and outcomes.count("refused") == 11
    assert len(JobStore.from_url(sqlite_url).active_jobs(owner="sam")) == 1


def test_processes_over_one_postgresql_never_pass_the_quota(postgres_url, tmp_path):
    migrate(make_engine(postgres_url))
    owner = f"pat-{os.getpid()}-{tmp_path.name}"[:60]
    outcomes = race(postgres_url, tmp_path, owner)
    assert outcomes.count("ok") == 1 and outcomes.count("refused") == 11
    assert len(JobStore.from_url(postgres_url).active_jobs(owner=owner)) == 1
    # Another owner's lock is another lock: the race did not hold it.
    assert owner_lock_key(owner) != owner_lock_key(owner + "x")


# -- schedules --------------------------------------------------------------------------------


@pytest.fixture
def scheduler(manager) -> Scheduler:
    return Scheduler(manager=manager, notifier=Notifier())


async def test_a_schedule_tick_past_the_quota_is_recorded_refused(manager, scheduler):
    schedule = scheduler.create(
        ScheduleSpec(cron="*/5 * * * *", job=gpu_job(), max_concurrent_runs=5), "sam"
    )
    running = await manager.submit(gpu_job(), "sam")
    assert await scheduler.tick(now=utcnow() + timedelta(minutes=6)) == 1
    runs, total = scheduler.runs(schedule.id, "sam", 10, 0)
    assert total == 1
    (refused,) = runs
    assert (refused.status, refused.reason_code, refused.attempt_count) == (
        "failed",
        "user_error",
        0,
    )
    assert refused.reason == "cannot start: " + REFUSED.format(user="sam")
    assert held(manager, "sam") == 1  # only the job that held the GPU

    await manager.cancel(running.id, "sam")  # the next tick, with the GPU free, runs
    assert await scheduler.tick(now=utcnow() + timedelta(minutes=11)) == 1
    runs, total = scheduler.runs(schedule.id, "sam", 10, 0)
    assert total == 2 and runs[0].status == "queued"


async def test_run_now_past_the_quota_is_refused_to_the_caller(manager, scheduler):
    schedule = scheduler.create(ScheduleSpec(cron="0 3 * * *", job=gpu_job()), "sam")
    first = await scheduler.run_now(schedule.id, "sam", {})
    assert first.status == "queued" and first.schedule_id == schedule.id
    with pytest.raises(QuotaExceeded, match="GPU quota: job needs 1 GPU"):
        await scheduler.run_now(schedule.id, "sam", {})
    assert scheduler.runs(schedule.id, "sam", 10, 0)[1] == 1


# -- REST ---------------------------------------------------------------------------------------


@pytest.fixture
def fake_gpus(monkeypatch):
    """The fake nvidia-smi (two GPUs) first on PATH, before the server starts."""
    fakes = Path(__file__).parent / "fakes"
    monkeypatch.setenv("PATH", f"{fakes}{os.pathsep}{os.environ['PATH']}")


async def test_rest_submit_rerun_and_run_now_answer_403_past_the_quota(
    fake_gpus, jp_serverapp, jp_fetch
):
    manager = jp_serverapp.web_app.settings["aicloud_manager"]
    manager.quota = HubQuota(load_catalog(CATALOG), student)
    me = jp_serverapp.web_app.settings["aicloud_owner"]
    job = {"command": ["sleep", "30"], "resources": GPU}

    async def post(*path, body):
        try:
            response = await jp_fetch(
                "aicloud", "api", "v1", *path, method="POST", body=json.dumps(body)
            )
        except HTTPClientError as e:
            return e.code, json.loads(e.response.body)
        return response.code, json.loads(response.body)

    code, first = await post("jobs", body=job)
    assert code == 201, first
    code, answer = await post("jobs", body=job)
    assert code == 403 and answer["message"] == REFUSED.format(user=me)
    code, answer = await post("jobs", first["id"], "rerun", body={})
    assert code == 403 and answer["message"] == REFUSED.format(user=me)
    code, schedule = await post("schedules", body={"cron": "0 3 * * *", "job": job})
    assert code == 201, schedule
    code, answer = await post("schedules", schedule["id"], "run", body={})
    assert code == 403 and answer["message"] == REFUSED.format(user=me)
    code, _ = await post("jobs", body={"command": ["true"]})  # CPU work is not limited
    assert code == 201
    code, _ = await post("jobs", first["id"], "cancel", body={})
    assert code == 200
    code, again = await post("jobs", first["id"], "rerun", body={})
    assert code == 201, again
    await post("jobs", again["id"], "cancel", body={})
