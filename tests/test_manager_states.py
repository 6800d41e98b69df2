"""JobManager as a state machine, driven directly: no HTTP server, no processes.

The store is a real one (SQLite in a temp folder, migrated); the backend is
:class:`RecordingBackend`, a test fake of :class:`aicloud.backends.Backend` that starts
nothing, records what the manager asks of it, and ends attempts when a test says so. Each
test drives the manager with ``tick()`` and checks the job's and its attempts' states:
queued -> starting -> running -> succeeded | failed | cancelled, retries, cancel requests, and
the recovery of an attempt whose starter died.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from aicloud.backends import AttemptExit, Backend
from aicloud.backends.base import Attempt
from aicloud.errors import InvalidSpec, JobConflict
from aicloud.manager import JobManager
from aicloud.spec import JobSpec
from aicloud.store import JobStore, make_engine, migrate, utcnow

OWNER = "ada"


class RecordingBackend(Backend):
    """A test fake of the Backend interface: records every call, runs nothing.

    An attempt runs from :meth:`start` until a test calls :meth:`end` with its outcome.
    ``start_error`` makes the next start raise; ``adopt`` makes :meth:`recover` find the
    attempt (else it proves it never ran).
    """

    name = "recording"

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.calls: list[tuple[str, Any]] = []
        self.outcomes: dict[tuple[str, int], AttemptExit] = {}
        self.start_error: Exception | None = None
        self.adopt = False

    def prepare(self, job_id: str, attempt: int) -> dict[str, Any]:
        self.calls.append(("prepare", (job_id, attempt)))
        return {"nonce": f"{job_id}-{attempt}"}

    async def start(self, attempt: Attempt) -> dict[str, Any]:
        job_id, number = attempt.job_id, attempt.number
        self.calls.append(("start", (job_id, number)))
        if self.start_error is not None:
            error, self.start_error = self.start_error, None
            raise error
        return {"job": job_id, "attempt": number}

    async def recover(self, launch, run_dir, attempt):
        self.calls.append(("recover", (Path(run_dir).name, attempt)))
        return {"job": Path(run_dir).name, "attempt": attempt} if self.adopt else None

    async def poll(self, handle):
        self.calls.append(("poll", (handle["job"], handle["attempt"])))
        return self.outcomes.get((handle["job"], handle["attempt"]))

    async def cancel(self, handle):
        self.calls.append(("cancel", (handle["job"], handle["attempt"])))
        self.outcomes[(handle["job"], handle["attempt"])] = AttemptExit(terminated=True)

    def end(self, job_id: str, number: int, outcome: AttemptExit) -> None:
        """Let attempt ``number`` of ``job_id`` end with ``outcome`` (seen on the next poll)."""
        self.outcomes[(job_id, number)] = outcome

    def started(self) -> list[tuple[str, int]]:
        """The attempts started so far, in order."""
        return [args for call, args in self.calls if call == "start"]


@pytest.fixture
def backend() -> RecordingBackend:
    return RecordingBackend()


@pytest.fixture
def manager(tmp_path, backend) -> JobManager:
    engine = make_engine(f"sqlite:///{tmp_path / 'jobs.db'}")
    migrate(engine)
    root = tmp_path / "root"
    root.mkdir()
    manager = JobManager(
        backends={"recording": backend},
        service_env={},
        store=JobStore(engine),
        root_dir=str(root),
        runs_dir=str(tmp_path / "runs"),
    )
    manager.events = []

    async def record(job, event):
        manager.events.append((job.id, event))

    manager.add_listener(record)
    return manager


def spec(**fields) -> JobSpec:
    return JobSpec(command=["true"], backend="recording", **fields)


def states(manager: JobManager, job_id: str) -> tuple[str, list[str]]:
    job = manager.store.get_job(job_id)
    return job.status, [a.status for a in job.attempts]


async def settle(manager: JobManager) -> None:
    """Let the listeners' tasks run."""
    import asyncio

    for _ in range(3):
        await asyncio.sleep(0)


async def test_a_job_runs_queued_starting_running_succeeded(manager, backend):
    job = await manager.submit(spec(), OWNER)
    assert states(manager, job.id) == ("queued", [])
    assert Path(job.run_dir).is_dir()

    await manager.tick()
    assert states(manager, job.id) == ("running", ["running"])
    assert backend.started() == [(job.id, 1)]
    stored = manager.store.get_job(job.id)
    assert stored.attempts[0].handle == {
        "job": job.id,
        "attempt": 1,
        "launch": {"by": manager.identity, "nonce": f"{job.id}-1"},
    }

    await manager.tick()  # still running: polled, nothing changes
    assert states(manager, job.id) == ("running", ["running"])

    backend.end(job.id, 1, AttemptExit(exit_code=0))
    await manager.tick()
    done = manager.store.get_job(job.id)
    assert (done.status, done.reason_code, done.reason) == (
        "succeeded",
        "succeeded",
        "exited with code 0",
    )
    assert done.exit_code == 0 and done.finished_at is not None
    await settle(manager)
    assert manager.events == [(job.id, "started"), (job.id, "succeeded")]

    await manager.tick()  # an ended job is left alone
    assert backend.started() == [(job.id, 1)]


async def test_a_failed_attempt_is_retried_then_the_job_fails(manager, backend):
    job = await manager.submit(spec(max_retries=1, min_retry_interval_millis=0), OWNER)
    await manager.tick()
    backend.end(job.id, 1, AttemptExit(exit_code=3))
    await manager.tick()
    queued = manager.store.get_job(job.id)
    assert states(manager, job.id) == ("queued", ["failed"])
    assert queued.reason == "attempt 1 exited with code 3; retrying"
    assert queued.reason_code == "user_error" and queued.not_before is not None

    await manager.tick()
    assert states(manager, job.id) == ("running", ["failed", "running"])
    backend.end(job.id, 2, AttemptExit(exit_code=3))
    await manager.tick()
    failed = manager.store.get_job(job.id)
    assert states(manager, job.id) == ("failed", ["failed", "failed"])
    assert failed.reason == "attempt 2 exited with code 3" and failed.attempt_count == 2
    await settle(manager)
    assert [event for _, event in manager.events] == ["started", "failed"]


async def test_a_retry_waits_for_its_interval(manager, backend):
    job = await manager.submit(spec(max_retries=1, min_retry_interval_millis=60_000), OWNER)
    await manager.tick()
    backend.end(job.id, 1, AttemptExit(signal=9))
    await manager.tick()
    assert states(manager, job.id) == ("queued", ["failed"])
    assert manager.store.get_job(job.id).reason_code == "infrastructure"
    await manager.tick()
    assert backend.started() == [(job.id, 1)]  # not before a minute has passed
    assert 0 < manager._sleep_time() <= manager.poll_interval


async def test_a_timeout_is_not_retried_unless_asked(manager, backend):
    plain = await manager.submit(spec(max_retries=2, timeout_seconds=5), OWNER)
    again = await manager.submit(
        spec(max_retries=2, timeout_seconds=5, retry_on_timeout=True), OWNER
    )
    await manager.tick()
    for job in (plain, again):
        backend.end(job.id, 1, AttemptExit(timed_out=True, signal=15))
    await manager.tick()
    ended = manager.store.get_job(plain.id)
    assert (ended.status, ended.reason_code, ended.reason) == (
        "failed",
        "timeout",
        "timed out after 5 s",
    )
    assert states(manager, again.id) == ("queued", ["failed"])


async def test_a_cancel_stops_the_attempt_and_ends_the_job(manager, backend):
    job = await manager.submit(spec(max_retries=3), OWNER)
    await manager.tick()
    cancelled = await manager.cancel(job.id, OWNER)
    assert (cancelled.status, cancelled.reason_code) == ("cancelled", "cancelled")
    assert ("cancel", (job.id, 1)) in backend.calls
    assert states(manager, job.id) == ("cancelled", ["cancelled"])
    await manager.tick()  # the terminated attempt is not retried
    assert backend.started() == [(job.id, 1)]
    with pytest.raises(JobConflict, match="already cancelled"):
        await manager.cancel(job.id, OWNER)
    await settle(manager)
    assert manager.events == [(job.id, "started"), (job.id, "cancelled")]


async def test_a_queued_job_is_cancelled_without_a_backend_call(manager, backend):
    job = await manager.submit(spec(), OWNER)
    await manager.cancel(job.id, OWNER)
    assert states(manager, job.id) == ("cancelled", [])
    await manager.tick()
    assert backend.started() == []


async def test_a_stored_cancel_request_is_finished_by_the_next_tick(manager, backend):
    """A server that died mid-cancel left only the request: the next look finishes it."""
    job = await manager.submit(spec(max_retries=3), OWNER)
    await manager.tick()
    manager.store.update_job(job.id, cancel_requested_at=utcnow())
    await manager.tick()
    assert states(manager, job.id) == ("cancelled", ["cancelled"])
    assert ("cancel", (job.id, 1)) in backend.calls


async def test_a_cancel_request_wins_over_a_retry(manager, backend):
    job = await manager.submit(spec(max_retries=3, min_retry_interval_millis=0), OWNER)
    await manager.tick()
    manager.store.update_job(job.id, cancel_requested_at=utcnow())
    manager._end_attempt(job.id, 1, spec(max_retries=3), *_failure())
    assert states(manager, job.id) == ("running", ["failed"])  # not queued for a retry
    await manager.tick()
    assert states(manager, job.id) == ("cancelled", ["failed"])
    assert backend.started() == [(job.id, 1)]


def _failure():
    from aicloud.spec import ReasonCode

    return ReasonCode.user_error, "exited with code 1", 1


async def test_an_attempt_that_never_ran_is_started_again_free(manager, backend):
    """A starter elsewhere died after the claim: recover proves it never ran; no retry spent."""
    job = await manager.submit(spec(max_retries=0), OWNER)
    elsewhere = {"by": {"host": "another-host", "pid": 1, "start": 0.0}, "nonce": "x"}
    assert manager._claim(manager.store.get_job(job.id), elsewhere)
    assert states(manager, job.id) == ("starting", ["starting"])
    await manager.tick()  # within start_timeout: the other server may still be starting it
    assert states(manager, job.id) == ("starting", ["starting"])

    manager.start_timeout = 0.0
    await manager.tick()
    queued = manager.store.get_job(job.id)
    assert states(manager, job.id) == ("queued", ["failed"])
    assert queued.attempts[0].reason == "never started (the service stopped while starting it)"
    assert ("recover", (job.id, 1)) in backend.calls

    await manager.tick()
    assert states(manager, job.id) == ("running", ["failed", "running"])
    assert backend.started() == [(job.id, 2)]


async def test_an_attempt_found_by_recover_is_adopted(manager, backend):
    job = await manager.submit(spec(), OWNER)
    elsewhere = {"by": {"host": "another-host", "pid": 1, "start": 0.0}}
    manager._claim(manager.store.get_job(job.id), elsewhere)
    manager.start_timeout = 0.0
    backend.adopt = True
    await manager.tick()
    assert states(manager, job.id) == ("running", ["running"])
    assert backend.started() == []
    backend.end(job.id, 1, AttemptExit(exit_code=0))
    await manager.tick()
    assert states(manager, job.id) == ("succeeded", ["succeeded"])


async def test_a_start_that_raises_is_an_infrastructure_failure(manager, backend):
    job = await manager.submit(spec(max_retries=1, min_retry_interval_millis=0), OWNER)
    backend.start_error = RuntimeError("no capacity")
    await manager.tick()
    queued = manager.store.get_job(job.id)
    assert states(manager, job.id) == ("queued", ["failed"])
    assert queued.reason == "attempt 1 cannot start: no capacity; retrying"
    assert queued.reason_code == "infrastructure"
    await manager.tick()
    assert states(manager, job.id) == ("running", ["failed", "running"])


async def test_an_invalid_spec_at_start_is_the_users_error(manager, backend):
    job = await manager.submit(spec(), OWNER)
    backend.start_error = InvalidSpec("cwd", "vanished")
    await manager.tick()
    failed = manager.store.get_job(job.id)
    assert (failed.status, failed.reason_code, failed.reason) == (
        "failed",
        "user_error",
        "cwd: vanished",
    )


async def test_a_lost_attempt_is_retried(manager, backend):
    job = await manager.submit(spec(max_retries=1, min_retry_interval_millis=0), OWNER)
    await manager.tick()
    backend.end(job.id, 1, AttemptExit(lost=True, error="node went away"))
    await manager.tick()
    queued = manager.store.get_job(job.id)
    assert queued.reason == "attempt 1 node went away; retrying"
    assert queued.reason_code == "infrastructure"


async def test_a_launch_gate_holds_a_job_queued_with_its_reason(manager, backend):
    hold = {"why": "queued: waiting for a test"}
    manager.launch_gates.append(lambda job: hold["why"])
    job = await manager.submit(spec(), OWNER)
    await manager.tick()
    assert states(manager, job.id) == ("queued", [])
    assert manager.store.get_job(job.id).reason == "queued: waiting for a test"
    hold["why"] = None
    await manager.tick()
    assert states(manager, job.id) == ("running", ["running"])


async def test_two_managers_claim_an_attempt_once(manager, backend, tmp_path):
    """A second manager over the same store finds the job claimed and starts nothing."""
    other_backend = RecordingBackend()
    other = JobManager(
        backends={"recording": other_backend},
        service_env={},
        store=manager.store,
        root_dir=manager.root_dir,
        runs_dir=manager.runs_dir,
    )
    job = await manager.submit(spec(), OWNER)
    stale = manager.store.get_job(job.id)
    await manager.tick()
    assert not other._claim(stale, {"by": other.identity})  # the queued row it read is gone
    assert backend.started() == [(job.id, 1)] and other_backend.started() == []


async def test_submit_refuses_what_cannot_run(manager):
    with pytest.raises(InvalidSpec, match="backend: 'local' is not enabled here"):
        await manager.submit(JobSpec(command=["true"]), OWNER)
    with pytest.raises(InvalidSpec, match="cwd: must stay inside"):
        await manager.submit(spec(cwd="../elsewhere"), OWNER)
    token = spec(idempotency_token="once")
    first = await manager.submit(token, OWNER)
    with pytest.raises(JobConflict, match=f"already used by job {first.id}"):
        await manager.submit(token, OWNER)
    assert manager.store.list_jobs(owner=OWNER).total == 1
