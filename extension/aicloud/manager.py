"""The job manager: the one place where jobs change state.

It validates and stores new jobs, hands queued ones to their backend, follows running attempts,
applies the retry policy, and cancels. Starting and finishing are claimed with conditional
updates in the database, so two servers sharing a store never run an attempt twice.

Crashes of the server at any moment keep three promises:

- an attempt runs at most once: its launch record is stored before anything starts, and a
  server that finds an attempt still ``starting`` asks the backend to recover it, which
  either adopts it or proves that it never ran (:meth:`Backend.recover`); only an attempt
  that never ran is started again, and that costs no retry;
- an attempt's end is reported only once none of its processes is left;
- a cancel is stored before any signal, so a restarted server finishes it; a cancelled job
  never gets another attempt.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import socket
import uuid
from datetime import timedelta
from pathlib import Path

import psutil
from traitlets import Float, Instance, Unicode
from traitlets.config import LoggingConfigurable

from aicloud import runs
from aicloud.accounts import account_of, private_dir
from aicloud.backends import AttemptExit, Backend
from aicloud.backends.base import Attempt as BackendAttempt
from aicloud.errors import InvalidSpec, JobConflict, JobNotFound, LogsNotFound, UnsafeRunFile
from aicloud.launchers import LaunchContext, launcher_for
from aicloud.launchers.notebook import POOL_ENV
from aicloud.runs import CHECKPOINTS, OUTPUTS, make_run_dir
from aicloud.spec import ACTIVE_STATUSES, JobKind, JobSpec, JobStatus, ReasonCode
from aicloud.store import Attempt, DuplicateIdempotencyToken, Job, JobStore, utcnow
from aicloud.store.store import Admission


def new_job_id() -> str:
    """A short, unguessable job id."""
    return "job-" + uuid.uuid4().hex[:12]


def classify(outcome: AttemptExit, timeout_seconds: int | None) -> tuple[ReasonCode, str]:
    """Turn an attempt's end into a reason code and a sentence."""
    if outcome.lost:
        return ReasonCode.infrastructure, outcome.error or "the attempt was lost"
    if outcome.terminated and not outcome.timed_out:
        return ReasonCode.cancelled, "terminated by SIGTERM to its supervisor"
    if outcome.timed_out:
        return ReasonCode.timeout, f"timed out after {timeout_seconds} s"
    if outcome.error:
        return ReasonCode.user_error, outcome.error
    if outcome.signal is not None:
        if outcome.signal == 9:
            return ReasonCode.infrastructure, "killed by SIGKILL (out of memory, or by hand)"
        return ReasonCode.user_error, f"killed by signal {outcome.signal}"
    if outcome.exit_code == 0:
        return ReasonCode.succeeded, "exited with code 0"
    return ReasonCode.user_error, f"exited with code {outcome.exit_code}"


class TickLoop:
    """A background task that runs ``await tick()`` again and again until stopped.

    After each pass it sleeps ``sleep_time()`` seconds, or less if :meth:`wake` is called.
    The manager follows jobs with one, the scheduler fires schedules with another.
    """

    def __init__(self, name: str, tick, sleep_time, log, failure: str):
        self.name, self.tick, self.sleep_time, self.log = name, tick, sleep_time, log
        self.failure = failure
        self._task: asyncio.Task | None = None
        self._stopping = False
        self._wake = asyncio.Event()

    def start(self) -> None:
        """Start the task, unless it runs already."""
        if self._task is None:
            self._stopping = False
            self._task = asyncio.create_task(self._run(), name=self.name)

    async def stop(self) -> None:
        """Stop the task and wait for it to end."""
        self._stopping = True
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    def wake(self) -> None:
        """Run the next pass now."""
        self._wake.set()

    async def _run(self) -> None:
        while not self._stopping:  # asyncio.wait_for of 3.11 may swallow a cancel
            try:
                await self.tick()
            except Exception:
                self.log.exception(self.failure)
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.sleep_time())
            self._wake.clear()


class Quota:
    """A limit on what one owner's active jobs hold together, taken as each job is made.

    Every way a job is made (``POST /jobs``, a rerun, a schedule's tick, a run now) goes
    through :meth:`JobManager.submit`, which awaits :meth:`admission` before it stores the
    job. None lets the job in unchecked. Otherwise the returned ``admit(active_specs)`` is
    called by the store under the owner's lock, inside the transaction that inserts the job,
    with the specs (JSON form) of the owner's queued, starting and running jobs; it raises an
    :class:`~aicloud.errors.AICloudError` (answered with its status) to refuse. So two
    submissions at once can never both pass on the same count, from one server or several.

    The hub home sets :class:`aicloud.hub.quota.HubQuota` (GPUs per hub group); the
    standalone home has none.
    """

    async def admission(self, spec: JobSpec, owner: str) -> Admission | None:
        """The check of one new job of ``owner`` (may ask elsewhere first), or None."""
        return None


class JobManager(LoggingConfigurable):
    """Owns the life of every job. Handlers, the scheduler and tests all go through it."""

    store = Instance(JobStore)
    quota = Instance(
        Quota,
        allow_none=True,
        help="The limit every new job must pass, atomically with its insert (see Quota); "
        "None: no limit. The hub home sets its GPU quota here.",
    )
    root_dir = Unicode(help="Directory that job working directories must stay inside.")
    home_dir_template = Unicode(
        "",
        config=True,
        help="Each job owner's own root, with ``{username}`` for the owner's name, e.g. "
        "``c.JobManager.home_dir_template = '/home/{username}'``: a job's relative paths "
        "(``cwd``, ``script``, ``notebook``, models, data) start there and may not leave it. "
        "Set it to the spawner's ``home_dir_template`` in a hub; empty (standalone): every "
        "job's root is ``root_dir``.",
    )
    runs_dir = Unicode(help="Directory holding one run directory per job.")
    poll_interval = Float(
        1.0,
        config=True,
        help="Most seconds between looks at running attempts and the queue. Backends that can "
        "(the local one) wake the manager the moment an attempt ends, and a retry's wait is "
        "timed exactly, so this only bounds how late other changes are seen: restart counts, "
        "and jobs queued by another server that shares the store.",
    )
    start_timeout = Float(
        120.0,
        config=True,
        help="Seconds an attempt may take to start before it is counted as lost "
        "(an infrastructure failure, retried per the job's policy).",
    )

    def __init__(self, backends: dict[str, Backend], service_env: dict[str, str], **kwargs):
        super().__init__(**kwargs)
        self.backends = backends
        self.service_env = service_env
        self._next_due = None  # the earliest ``not_before`` of a queued job
        self._loop = TickLoop(
            "aicloud-job-manager",
            self.tick,
            self._sleep_time,
            self.log,
            "aicloud: error while following jobs",
        )
        self._busy: set[str] = set()  # jobs being started or cancelled by this process
        self._listeners: list = []
        self._pending: set[asyncio.Task] = set()
        self.launch_gates: list = []  # callables: job -> why it must wait, or None
        me = psutil.Process()
        self.identity = {"host": socket.gethostname(), "pid": me.pid, "start": me.create_time()}

    def add_listener(self, callback) -> None:
        """Call ``await callback(job, event)`` on started, succeeded, failed and cancelled."""
        self._listeners.append(callback)

    def _emit(self, job_id: str, event: str) -> None:
        if not self._listeners:
            return
        job = self.store.get_job(job_id)
        for callback in self._listeners:
            task = asyncio.create_task(callback(job, event))
            self._pending.add(task)
            task.add_done_callback(self._pending.discard)

    # -- lifecycle ----------------------------------------------------------------------------

    def start(self) -> None:
        """Start following jobs; jobs that ran before a restart are picked up again."""
        make_run_dir(self.runs_dir)
        self._loop.start()

    async def stop(self) -> None:
        """Stop following jobs. Running jobs keep running and are re-attached next start."""
        await self._loop.stop()
        for backend in self.backends.values():
            backend.unwatch_all()
            await backend.close()

    def wake(self) -> None:
        """Look at the jobs now (an attempt ended, a job was submitted or cancelled)."""
        self._loop.wake()

    def _sleep_time(self) -> float:
        """Until the next look: the poll interval, or sooner when a retry falls due."""
        if self._next_due is None:
            return self.poll_interval
        return max(0.0, min(self.poll_interval, (self._next_due - utcnow()).total_seconds()))

    async def tick(self) -> None:
        """Start due queued jobs and collect ended attempts."""
        now = utcnow()
        self._next_due = None
        for job in self.store.active_jobs(s.value for s in ACTIVE_STATUSES):
            if job.id in self._busy:
                continue
            if job.cancel_requested_at is not None:  # a cancel cut short by a crash
                await self._cancel_now(job.id)
            elif job.status == JobStatus.queued:
                if job.not_before is None or job.not_before <= now:
                    await self._launch(job)
                elif self._next_due is None or job.not_before < self._next_due:
                    self._next_due = job.not_before
            else:
                await self._check(job)

    # -- requests -----------------------------------------------------------------------------

    def root_for(self, owner: str | None) -> Path:
        """The directory that ``owner``'s jobs start in and may not leave (their home)."""
        if not self.home_dir_template or owner is None:
            return Path(self.root_dir)
        if not owner or "/" in owner or owner in (".", "..") or "\0" in owner:
            raise InvalidSpec("owner", f"{owner!r} cannot name a home directory")
        home = Path(self.home_dir_template.format(username=owner))
        if not home.is_dir():
            self._make_home(home, owner)
        return home

    def _make_home(self, home: Path, owner: str) -> None:
        """Make a home the spawner has not made yet: the owner's own where jobs run as them."""
        if not any(getattr(b, "run_as_owner", False) for b in self.backends.values()):
            home.mkdir(mode=0o755, parents=True, exist_ok=True)
            return
        private_dir(home, account_of(owner))

    def resolve_cwd(self, spec: JobSpec, owner: str | None = None) -> Path:
        """The job's working directory, refused if it leaves the owner's root directory."""
        root = self.root_for(owner).resolve()
        if spec.cwd is None:
            return root
        if os.path.isabs(spec.cwd):
            raise InvalidSpec("cwd", "must be relative to the server's root directory")
        try:
            cwd = (root / spec.cwd).resolve()
            if cwd != root and root not in cwd.parents:
                raise InvalidSpec("cwd", "must stay inside the server's root directory")
            if not cwd.is_dir():
                raise InvalidSpec("cwd", f"{spec.cwd!r} is not a directory")
        except (OSError, RuntimeError) as e:  # a name too long, no permission, a symlink loop
            reason = e.strerror if isinstance(e, OSError) and e.strerror else str(e)
            raise InvalidSpec("cwd", f"{spec.cwd!r} cannot be used: {reason}") from None
        return cwd

    def validate(self, spec: JobSpec, owner: str | None = None) -> Path:
        """Everything that can be checked before a job is stored; returns its cwd."""
        if spec.backend not in self.backends:
            raise InvalidSpec(
                "backend",
                f"{spec.backend!r} is not enabled here; enabled: "
                + ", ".join(sorted(self.backends)),
            )
        cwd = self.resolve_cwd(spec, owner)
        launcher_for(spec, self.root_for(owner)).validate(spec, cwd)
        self.backends[spec.backend].validate(spec, owner)
        return cwd

    def _new_job(self, spec: JobSpec, owner: str, status: JobStatus, **links) -> Job:
        job_id = new_job_id()
        return Job(
            id=job_id,
            name=spec.name,
            owner=owner,
            kind=spec.kind.value,
            framework=spec.framework.value,
            backend=spec.backend,
            status=status.value,
            spec=spec.model_dump(mode="json", exclude_defaults=True),
            idempotency_token=spec.idempotency_token,
            created_at=utcnow(),
            run_dir=str(Path(self.runs_dir) / job_id),
            attempt_count=0,
            origin_notebook=spec.origin.notebook if spec.origin else None,
            **links,
        )

    def record(self, spec, owner, status, code, reason, **links) -> Job:
        """Store a run that ended without starting (a skipped tick, say), for the history."""
        job = self._new_job(spec, owner, status, **links)
        job.reason_code, job.reason, job.finished_at = code.value, reason, job.created_at
        job.idempotency_token = None
        self.store.add_job(job, tags=spec.tags)
        return job

    async def submit(self, spec: JobSpec, owner: str, **links) -> Job:
        """Validate, pass the quota, and store a job; it starts on the next tick (right away).

        The one way a job is made. ``links`` (``schedule_id``, ``scheduled_for``) tie a run to
        its schedule's tick. The quota (:class:`Quota`) is taken in the insert's transaction.
        """
        self.validate(spec, owner)
        admit = await self.quota.admission(spec, owner) if self.quota is not None else None
        job = self._new_job(spec, owner, JobStatus.queued, **links)
        run_dir = Path(job.run_dir)
        try:
            self.store.add_job(job, tags=spec.tags, admit=admit)
        except DuplicateIdempotencyToken as e:
            raise JobConflict(f"idempotency_token: already used by job {e.job_id}") from None
        make_run_dir(run_dir)
        self.wake()
        return job

    def get(self, job_id: str, owner: str | None) -> Job:
        """The job, if it exists and ``owner`` (None: anyone) may see it."""
        job = self.store.get_job(job_id)
        if job is None or (owner is not None and job.owner != owner):
            raise JobNotFound(job_id)
        return job

    def list(self, owner: str | None, **filters):
        """A page of jobs visible to ``owner``; see :meth:`JobStore.list_jobs`."""
        return self.store.list_jobs(owner=owner, **filters)

    async def cancel(self, job_id: str, owner: str | None) -> Job:
        """Cancel a job; returns once no process of it is left.

        The request is stored first: if this server dies in the middle, the next one to
        follow the job finishes the cancel, and no retry starts in between.
        """
        job = self.get(job_id, owner)
        if JobStatus(job.status).terminal:
            raise JobConflict(f"job {job_id} is already {job.status}")
        if job.cancel_requested_at is None:
            self.store.update_job(job.id, cancel_requested_at=utcnow())
        for _ in range(600):  # a start in progress here ends within the backend's start
            if job.id not in self._busy:
                break
            await asyncio.sleep(0.05)
        else:
            raise JobConflict(f"job {job_id} is being started or cancelled; try again")
        return await self._cancel_now(job.id)

    async def _cancel_now(self, job_id: str) -> Job:
        """Stop the job's attempt, if any, and end the job ``cancelled``."""
        self._busy.add(job_id)
        try:
            job = self.store.get_job(job_id)
            attempt = job.attempts[-1] if job.attempts else None
            if attempt is not None and attempt.status in (JobStatus.running, JobStatus.starting):
                backend = self.backends[job.backend]
                handle = attempt.handle
                if attempt.status == JobStatus.starting:
                    handle = await self._recover(job, attempt, backend)
                if handle:
                    await backend.cancel(handle)
                self.store.update_attempt(
                    job.id,
                    attempt.number,
                    {},
                    status=JobStatus.cancelled.value,
                    finished_at=utcnow(),
                    reason_code=ReasonCode.cancelled.value,
                    reason="cancelled by request",
                )
            if JobStatus(job.status).terminal:
                return job
            cancelled = self.store.update_job(
                job.id,
                status=JobStatus.cancelled.value,
                reason_code=ReasonCode.cancelled.value,
                reason="cancelled by request",
                finished_at=utcnow(),
                not_before=None,
            )
            self._emit(job.id, "cancelled")
            return cancelled
        finally:
            self._busy.discard(job_id)

    def delete(self, job_id: str, owner: str | None) -> None:
        """Delete a job that has ended, with its run directory."""
        job = self.get(job_id, owner)
        if not JobStatus(job.status).terminal:
            raise JobConflict(f"job {job_id} is {job.status}; cancel it before deleting it")
        self.store.delete_job(job.id)
        if job.run_dir:
            shutil.rmtree(job.run_dir, ignore_errors=True)

    def check_rank(self, job: Job, rank: int | None) -> None:
        """Refuse a rank the job does not have."""
        if rank is None:
            return
        world = JobSpec.model_validate(job.spec).resources.world_size
        if rank >= world:
            raise LogsNotFound(f"job {job.id} has no rank {rank} (ranks 0-{world - 1})")

    def read_log(
        self, job: Job, offset: int, limit: int, rank: int | None = None
    ) -> tuple[bytes, int]:
        """Up to ``limit`` bytes of the log from byte ``offset``, and where to continue.

        With ``rank``, only that rank's lines (``[rank<N>]:``) of a distributed job; offsets
        stay offsets into the whole log, so that following works the same way. A log that
        the job replaced with a symlink (or anything but a plain file) is refused.
        """
        self.check_rank(job, rank)
        if job.kind == JobKind.command.value:
            rank = None  # one process, no prefixes: all of it is rank 0
        return runs.read_log(job.run_dir, offset, limit, rank)

    def metrics(self, job: Job, since: int = 0, limit: int = 1000) -> dict:
        """Points reported with :func:`aicloud.runtime.report` from point ``since`` on.

        The job owns the file: a line that is not a point counts, but is left out; a file
        that is not a plain one (a symlink) is refused.
        """
        return runs.read_metrics(job.run_dir, since, limit)

    # -- state changes ------------------------------------------------------------------------

    def _claim(self, job: Job, launch: dict) -> bool:
        """Move a queued job to starting and add its attempt, unless another server did.

        The attempt is stored with its launch record (who starts it and what will find it
        again) before anything starts.
        """
        number = job.attempt_count + 1
        attempt = Attempt(number=number, status=JobStatus.starting.value, handle={"launch": launch})
        return self.store.claim_attempt(
            job, attempt, started_at=job.started_at or utcnow(), not_before=None, reason=None
        )

    def job_env(self, job: Job, spec: JobSpec, attempt: int) -> dict[str, str]:
        """The job's own environment: the owner's login, the user's variables, aicloud's."""
        env = {"PYTHONUNBUFFERED": "1"}  # the local backend puts the server's beneath
        if self.home_dir_template:  # the owner's login, not the service's
            env.update(HOME=str(self.root_for(job.owner)), USER=job.owner, LOGNAME=job.owner)
        env.update(spec.env)
        env.update(self.service_env)
        env.update(
            AICLOUD_JOB_ID=job.id,
            AICLOUD_RUN_DIR=str(job.run_dir),
            AICLOUD_ATTEMPT=str(attempt),
            AICLOUD_CHECKPOINT_DIR=str(Path(job.run_dir) / CHECKPOINTS),
        )
        return env

    async def _launch(self, job: Job) -> None:
        spec = JobSpec.model_validate(job.spec)
        waiting = next((why for gate in self.launch_gates if (why := gate(job))), None)
        waiting = waiting or self.backends[job.backend].wait_reason(spec)
        if waiting is not None:
            if job.reason != waiting:
                self.store.update_job(job.id, reason=waiting)
            return
        backend = self.backends[job.backend]
        number = job.attempt_count + 1
        launch = {"by": self.identity, **backend.prepare(job.id, number)}
        self._busy.add(job.id)
        if not self._claim(job, launch):
            self._busy.discard(job.id)
            return
        try:
            spec = JobSpec.model_validate(job.spec)
            run_dir = Path(job.run_dir)
            run_dir.mkdir(parents=True, exist_ok=True)
            try:
                cwd = self.resolve_cwd(spec, job.owner)
                env = self.job_env(job, spec, number)
                plan = launcher_for(spec, self.root_for(job.owner)).plan(
                    spec,
                    LaunchContext(
                        job_id=job.id,
                        attempt=number,
                        run_dir=run_dir,
                        cwd=cwd,
                        env=env,
                        notebook_pool=env.pop(POOL_ENV, None),
                        python=backend.python,
                        network=backend.network(job.id, number),
                        cores=backend.cores(spec),
                    ),
                )
                attempt = BackendAttempt(
                    job.id,
                    number,
                    run_dir,
                    plan,
                    spec,
                    job.owner,
                    launch,
                    spec.timeout_seconds,
                    root=self.root_for(job.owner),
                )
                handle = await backend.start(attempt)
            except InvalidSpec as e:
                self._end_attempt(job.id, number, spec, ReasonCode.user_error, e.message)
                return
            except Exception as e:
                self.log.exception("aicloud: cannot start attempt %s of %s", number, job.id)
                self._end_attempt(
                    job.id, number, spec, ReasonCode.infrastructure, f"cannot start: {e}"
                )
                return
            self.store.update_attempt(
                job.id,
                number,
                {"status": JobStatus.running.value},
                status=JobStatus.running.value,
                handle={**handle, "launch": launch},
            )
            backend.watch(handle, self.wake)
            if number == 1:
                self._emit(job.id, "started")
        finally:
            self._busy.discard(job.id)

    def _starter_may_live(self, job: Job, attempt: Attempt) -> bool:
        """Whether the server that is starting ``attempt`` may still be at it.

        A starter on this machine is alive or not (its pid and start time tell); one
        elsewhere gets ``start_timeout`` seconds.
        """
        by = (attempt.handle or {}).get("launch", {}).get("by") or {}
        if by == self.identity:
            return False  # not busy here: this server's start of it has ended
        if by.get("host") == self.identity["host"]:
            with contextlib.suppress(psutil.NoSuchProcess, TypeError):
                if abs(psutil.Process(by["pid"]).create_time() - by["start"]) < 0.01:
                    return True
            return False
        return utcnow() - attempt.started_at < timedelta(seconds=self.start_timeout)

    async def _recover(self, job: Job, attempt: Attempt, backend: Backend) -> dict | None:
        """The handle of an attempt whose start was cut short (stored), or None if it never
        ran (it never will now)."""
        launch = (attempt.handle or {}).get("launch", {})
        handle = await backend.recover(launch, Path(job.run_dir), attempt.number)
        if handle is not None:
            self.store.update_attempt(
                job.id,
                attempt.number,
                {"status": JobStatus.running.value},
                status=JobStatus.running.value,
                handle={**handle, "launch": launch},
            )
            self.log.info("aicloud: adopted attempt %s of %s", attempt.number, job.id)
        return handle

    async def _check(self, job: Job) -> None:
        attempt = job.attempts[-1]
        spec = JobSpec.model_validate(job.spec)
        backend = self.backends[job.backend]
        handle = attempt.handle
        if attempt.status == JobStatus.starting:
            if self._starter_may_live(job, attempt):
                return  # another server is starting it
            handle = await self._recover(job, attempt, backend)
            if handle is None:
                self._end_attempt(
                    job.id,
                    attempt.number,
                    spec,
                    ReasonCode.infrastructure,
                    "never started (the service stopped while starting it)",
                    never_ran=True,
                )
                return
        self._record_restarts(job, attempt)
        outcome = await backend.poll(handle)
        if outcome is None:
            backend.watch(handle, self.wake)
            await self._record_pending_reason(job, backend, attempt)
            return
        code, reason = classify(outcome, spec.timeout_seconds)
        if code is ReasonCode.user_error:
            reason = self._reason_from_job(job, attempt.number) or reason
        self._end_attempt(job.id, attempt.number, spec, code, reason, outcome.exit_code)

    async def _record_pending_reason(self, job: Job, backend: Backend, attempt: Attempt) -> None:
        """Show why a started attempt waits (a cluster without a free GPU node, say)."""
        why = await backend.explain(attempt.handle)
        reason = f"pending: {why}" if why else None
        waiting = job.reason is not None and job.reason.startswith("pending: ")
        if reason != job.reason and (reason or waiting):
            self.store.update_job(job.id, reason=reason)

    def _reason_from_job(self, job: Job, number: int) -> str | None:
        """The reason a job gave for its failure (the notebook runner names the cell)."""
        try:
            return runs.attempt_reason(job.run_dir, number)
        except UnsafeRunFile as e:
            self.log.warning("aicloud: job %s: %s", job.id, e)
            return None

    def outputs_dir(self, job: Job) -> Path:
        """Where a job's output files (an executed notebook, its HTML) are kept."""
        return Path(job.run_dir) / OUTPUTS

    def output_files(self, job: Job) -> list[tuple[str, int]]:
        """Names and sizes of a job's output files; symlinks and the like are left out."""
        return runs.output_files(job.run_dir)

    def open_output(self, job: Job, name: str):
        """One output file, opened for reading without following a symlink."""
        try:
            return runs.open_output(job.run_dir, name)
        except FileNotFoundError:
            raise LogsNotFound(f"job {job.id} has no output {name!r}") from None

    def _record_restarts(self, job: Job, attempt: Attempt) -> None:
        """Copy the elastic restart count that :mod:`aicloud.runtime` wrote into the store."""
        try:
            restarts = runs.attempt_restarts(job.run_dir, attempt.number)
        except (UnsafeRunFile, ValueError):
            return
        if restarts != attempt.restarts:
            self.store.update_attempt(job.id, attempt.number, {}, restarts=restarts)

    def _end_attempt(
        self,
        job_id: str,
        number: int,
        spec: JobSpec,
        code: ReasonCode,
        reason: str,
        exit_code: int | None = None,
        never_ran: bool = False,
    ) -> None:
        """Record an attempt's end; queue a retry or end the job, per the policy.

        An attempt that provably never ran is started again whatever the policy; a job whose
        cancel was asked for gets no other attempt.
        """
        now = utcnow()
        attempt_status = {
            ReasonCode.succeeded: JobStatus.succeeded,
            ReasonCode.cancelled: JobStatus.cancelled,
        }.get(code, JobStatus.failed)
        retry = never_ran or (
            attempt_status is JobStatus.failed
            and number <= spec.max_retries
            and (code is not ReasonCode.timeout or spec.retry_on_timeout)
        )
        if retry:
            job_fields = {
                "status": JobStatus.queued.value,
                "reason_code": code.value,
                "reason": f"attempt {number} {reason}; retrying",
                "not_before": now + timedelta(milliseconds=spec.min_retry_interval_millis),
                "exit_code": exit_code,
            }
        else:
            job_fields = {
                "status": attempt_status.value,
                "reason_code": code.value,
                "reason": reason if number == 1 else f"attempt {number} {reason}",
                "finished_at": now,
                "exit_code": exit_code,
            }
        attempt_fields = {
            "status": attempt_status.value,
            "finished_at": now,
            "exit_code": exit_code,
            "reason_code": code.value,
            "reason": reason,
        }
        if not self.store.end_attempt(job_id, number, attempt_fields, job_fields, retry):
            return  # another server, or a cancel, ended it first
        self.wake()  # time the retry, or start jobs that waited for this one's resources
        if not retry:
            self._emit(job_id, attempt_status.value)
