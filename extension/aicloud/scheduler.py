"""The scheduler: turns schedules into jobs, exactly once per tick, whatever runs it.

Each pass looks at the schedules whose next tick is due, works out the ticks since the last
one it handled (in the schedule's time zone, see :mod:`aicloud.cron`), applies ``catch_up`` to
ticks missed while the service was down, and inserts one job per tick to fire. The database
decides: a unique ``(schedule_id, scheduled_for)`` makes a second insert of the same tick fail,
and advancing a schedule is a conditional update, so any number of services over one database
(SQLite or PostgreSQL) fire each tick once.

A run is made with :meth:`JobManager.submit`, like any job, so it passes the same checks and
the same quota. A tick whose job cannot be made (its template no longer validates, or it
would take the owner past their GPU quota) is not lost silently: it is kept in the
schedule's history as a ``failed`` run that never started, whose reason says why
(``cannot start: GPU quota: ...``), as a Kubernetes CronJob's refused Job shows in its
history. It is not queued to start later: a cron tick is for its time, and the next tick
tries again. A run now (no tick) that cannot be made is refused to the caller instead (the
quota's 403, the spec's 400), as ``POST /jobs`` is.
"""

from __future__ import annotations

import os
import shutil
import uuid
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from pydantic import ValidationError
from sqlalchemy.exc import IntegrityError
from traitlets import Bool, Float, Instance
from traitlets.config import LoggingConfigurable

from aicloud.cron import check_cron, next_tick, ticks
from aicloud.errors import AICloudError, InvalidSpec
from aicloud.manager import JobManager, TickLoop
from aicloud.models import masked_url
from aicloud.notify import Notifier
from aicloud.spec import (
    ACTIVE_STATUSES,
    TERMINAL_STATUSES,
    CatchUp,
    JobSpec,
    JobStatus,
    Overlap,
    ReasonCode,
    ScheduleSpec,
    ScheduleUpdate,
    unmasked_env,
)
from aicloud.store import Job, Schedule, utcnow

RUNNING = [JobStatus.starting.value, JobStatus.running.value]


def run_name(schedule: Schedule, when: datetime) -> str:
    """``<schedule name> @ 2026-12-07 03:00``: a run named by its tick, in the schedule's zone
    (a run now by its time); a schedule without a name lends its job's or its id."""
    local = when.astimezone(ZoneInfo(schedule.timezone)).strftime("%Y-%m-%d %H:%M")
    name = schedule.name or schedule.spec.get("name") or schedule.id
    return f"{name[: 200 - len(local) - 3]} @ {local}"


class ScheduleNotFound(AICloudError):
    """No schedule with that id (or not one the caller may see)."""

    status = 404

    def __init__(self, schedule_id: str):
        super().__init__(f"schedule {schedule_id!r} not found")


class Scheduler(LoggingConfigurable):
    """Fires schedules; CRUD on them; retention and notifications of their runs."""

    manager = Instance(JobManager)
    notifier = Instance(Notifier)
    tick_interval = Float(
        10.0,
        config=True,
        help="Most seconds between looks at due schedules. The scheduler sleeps until the next "
        "tick falls due and wakes when this server changes a schedule, so this only bounds how "
        "late it sees schedules that another server sharing the store created or resumed.",
    )
    misfire_grace_seconds = Float(
        60.0,
        config=True,
        help="A tick handled this late still counts as on time (catch_up 'none' fires it).",
    )
    allow_seconds = Bool(
        False,
        config=True,
        help="Accept a sixth cron field for seconds (last, croniter style): for tests and demos.",
    )

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self._loop = TickLoop(
            "aicloud-scheduler",
            self.tick,
            self._sleep_time,
            self.log,
            "aicloud: error while firing schedules",
        )
        self.manager.add_listener(self._on_job_event)

    @property
    def store(self):
        """The job store, shared with the manager."""
        return self.manager.store

    # -- lifecycle ----------------------------------------------------------------------------

    def start(self) -> None:
        """Start firing schedules."""
        self._loop.start()

    async def stop(self) -> None:
        """Stop firing schedules (and wait for pending notifications a little)."""
        await self._loop.stop()
        await self.notifier.close()

    def wake(self) -> None:
        """Look at the schedules now (one was created, changed or resumed)."""
        self._loop.wake()

    def _sleep_time(self) -> float:
        """Seconds until the earliest tick of an active schedule, at most ``tick_interval``."""
        due = self.store.earliest_tick()
        if due is None:
            return self.tick_interval
        return max(0.0, min(self.tick_interval, (due - utcnow()).total_seconds()))

    # -- firing -------------------------------------------------------------------------------

    async def tick(self, now=None) -> int:
        """Fire every due tick of every schedule; return how many jobs were created."""
        now = now or utcnow()
        fired = 0
        for schedule in self.store.due_schedules(now):
            fired += await self._fire_due(schedule, now)
        return fired

    async def _fire_due(self, schedule: Schedule, now) -> int:
        until = min(now, schedule.end_at) if schedule.end_at else now
        after = schedule.last_tick_at
        if schedule.start_at and schedule.start_at > after:
            after = schedule.start_at - timedelta(microseconds=1)
        due = ticks(schedule.cron, schedule.timezone, after, until)
        if not due:
            self._advance(schedule, schedule.last_tick_at, 0)
            return 0
        if schedule.catch_up == CatchUp.all.value:
            fire = due
        elif schedule.catch_up == CatchUp.latest.value:
            fire = due[-1:]
        else:
            on_time = (now - due[-1]).total_seconds() <= self.misfire_grace_seconds
            fire = due[-1:] if on_time else []
        if not self._advance(schedule, due[-1], len(due) - len(fire)):
            return 0  # another service handled these ticks
        return sum([await self._fire(schedule, tick) is not None for tick in fire])

    def _advance(self, schedule: Schedule, last, missed: int) -> bool:
        """Move the schedule past ``last``, unless another service already did."""
        following = next_tick(schedule.cron, schedule.timezone, last)
        if following is not None and schedule.end_at and following > schedule.end_at:
            following = None
        advanced = self.store.advance_schedule(schedule, last, following, missed)
        if missed:
            self.log.warning("aicloud: schedule %s missed %d tick(s)", schedule.id, missed)
        return advanced

    async def _fire(self, schedule: Schedule, tick, parameters: dict | None = None) -> Job | None:
        """Create the job of one tick (or of a run now, with ``tick`` None), named by it."""
        spec = JobSpec.model_validate(schedule.spec)
        spec = spec.model_copy(update={"name": run_name(schedule, tick or utcnow())})
        if schedule.snapshot:
            spec = spec.model_copy(update={"notebook": schedule.snapshot})
        if parameters:
            spec = spec.model_copy(update={"parameters": {**spec.parameters, **parameters}})
            spec = JobSpec.model_validate(spec.model_dump())
        links = {"schedule_id": schedule.id, "scheduled_for": tick}
        if tick is not None and schedule.overlap == Overlap.skip.value:
            active = self.active_runs(schedule.id, [s.value for s in ACTIVE_STATUSES])
            if active >= schedule.max_concurrent_runs:
                reason = (
                    f"skipped: {active} run(s) still active "
                    f"(max_concurrent_runs={schedule.max_concurrent_runs})"
                )
                return self._record(
                    schedule, spec, tick, JobStatus.cancelled, ReasonCode.skipped, reason
                )
        try:
            return await self.manager.submit(spec, schedule.owner, **links)
        except IntegrityError:
            return None  # this tick was fired by another service
        except AICloudError as e:
            if tick is None:
                raise
            return self._record(
                schedule,
                spec,
                tick,
                JobStatus.failed,
                ReasonCode.user_error,
                f"cannot start: {e.message}",
            )

    def _record(self, schedule, spec, tick, status, code, reason) -> Job | None:
        """A run that never started (skipped, or invalid at fire time), kept in the history."""
        try:
            return self.manager.record(
                spec,
                schedule.owner,
                status,
                code,
                reason,
                schedule_id=schedule.id,
                scheduled_for=tick,
            )
        except IntegrityError:
            return None

    def active_runs(self, schedule_id: str, statuses: list[str]) -> int:
        """How many runs of a schedule are in ``statuses``."""
        return self.store.count_runs(schedule_id, statuses)

    def launch_wait_reason(self, job: Job) -> str | None:
        """Why a queued run must wait: ``max_concurrent_runs`` of its schedule are running."""
        if job.schedule_id is None:
            return None
        schedule = self.store_get(job.schedule_id)
        if schedule is None:
            return None
        running = self.active_runs(job.schedule_id, RUNNING)
        if running >= schedule.max_concurrent_runs:
            return (
                f"queued: {running} run(s) of schedule {schedule.id} running "
                f"(max_concurrent_runs={schedule.max_concurrent_runs})"
            )
        return None

    # -- retention and notifications ----------------------------------------------------------

    async def _on_job_event(self, job: Job, event: str) -> None:
        if job.schedule_id is None:
            return
        schedule = self.store_get(job.schedule_id)
        if schedule is None:
            return
        if schedule.webhook_url:
            self.notifier.send(schedule, job, event)
        if JobStatus(job.status) in TERMINAL_STATUSES and schedule.keep_last:
            self.prune(schedule)

    def prune(self, schedule: Schedule) -> int:
        """Delete the outputs of ended runs beyond ``keep_last``; rows stay, marked pruned."""
        ended = [s.value for s in TERMINAL_STATUSES]
        stale = self.store.runs_beyond(schedule.id, schedule.keep_last, ended)
        for job in stale:
            if job.run_dir:
                shutil.rmtree(job.run_dir, ignore_errors=True)
        self.store.mark_pruned(job.id for job in stale)
        return len(stale)

    # -- requests -----------------------------------------------------------------------------

    def store_get(self, schedule_id: str) -> Schedule | None:
        """A schedule by id, or None."""
        return self.store.get_schedule(schedule_id)

    def get(self, schedule_id: str, owner: str | None) -> Schedule:
        """A schedule the caller may see."""
        schedule = self.store_get(schedule_id)
        if schedule is None or (owner is not None and schedule.owner != owner):
            raise ScheduleNotFound(schedule_id)
        return schedule

    def list(self, owner: str | None, limit: int, offset: int) -> tuple[list[Schedule], int]:
        """A page of schedules, newest first."""
        return self.store.list_schedules(owner, limit, offset)

    def _check(self, spec: ScheduleSpec, owner: str) -> None:
        try:
            check_cron(spec.cron, self.allow_seconds)
        except ValueError as e:
            raise InvalidSpec("cron", str(e)) from None
        if spec.webhook_url:
            try:
                self.notifier.check_url(spec.webhook_url)
            except ValueError as e:
                raise InvalidSpec("webhook_url", str(e)) from None
        self.manager.validate(spec.job, owner)

    def create(self, spec: ScheduleSpec, owner: str) -> Schedule:
        """Validate the schedule and its job template, then store it."""
        self._check(spec, owner)
        now = utcnow()
        schedule = Schedule(
            id="sch-" + uuid.uuid4().hex[:12],
            name=spec.name,
            owner=owner,
            spec=spec.job.model_dump(mode="json", exclude_defaults=True),
            cron=spec.cron,
            timezone=spec.timezone,
            start_at=spec.start_at,
            end_at=spec.end_at,
            paused=spec.paused,
            max_concurrent_runs=spec.max_concurrent_runs,
            overlap=spec.overlap.value,
            catch_up=spec.catch_up.value,
            keep_last=spec.keep_last,
            webhook_url=spec.webhook_url,
            created_at=now,
            updated_at=now,
            last_tick_at=now,
            missed_ticks=0,
        )
        if spec.snapshot:
            schedule.snapshot = self._snapshot(schedule.id, spec.job, owner)
        schedule.next_tick_at = self._first_tick(schedule, now)
        self.store.add_schedule(schedule)
        self.wake()
        return schedule

    def _first_tick(self, schedule: Schedule, after):
        start = max(after, schedule.start_at) if schedule.start_at else after
        following = next_tick(schedule.cron, schedule.timezone, start)
        if following is not None and schedule.end_at and following > schedule.end_at:
            return None
        return following

    def _snapshot(self, schedule_id: str, job: JobSpec, owner: str) -> str:
        """Copy the notebook as it is now; runs use the copy (inside the owner's root)."""
        root = self.manager.root_for(owner)
        cwd = self.manager.resolve_cwd(job, owner)
        source = cwd / job.notebook
        folder = root / ".aicloud" / "snapshots" / schedule_id
        folder.mkdir(parents=True, exist_ok=True)
        shutil.copy2(source, folder / source.name)
        return os.path.relpath(folder / source.name, cwd)

    def update(self, schedule_id: str, owner: str | None, change: ScheduleUpdate) -> Schedule:
        """Apply a partial change; resuming does not fire the ticks missed while paused."""
        schedule = self.get(schedule_id, owner)
        fields = change.model_dump(exclude_unset=True)
        # A schedule read from the API and sent back keeps its secrets: the job template's
        # masked env values and the webhook URL's hidden path are the stored ones.
        if change.job is not None and change.job.env:
            env = unmasked_env(change.job.env, schedule.spec.get("env") or {})
            change = change.model_copy(update={"job": change.job.model_copy(update={"env": env})})
        if "webhook_url" in fields and fields["webhook_url"] == masked_url(schedule.webhook_url):
            fields["webhook_url"] = schedule.webhook_url
        current = {
            "name": schedule.name,
            "job": schedule.spec,
            "cron": schedule.cron,
            "timezone": schedule.timezone,
            "start_at": schedule.start_at,
            "end_at": schedule.end_at,
            "paused": schedule.paused,
            "max_concurrent_runs": schedule.max_concurrent_runs,
            "overlap": schedule.overlap,
            "catch_up": schedule.catch_up,
            "keep_last": schedule.keep_last,
            "webhook_url": schedule.webhook_url,
        }
        try:
            merged = ScheduleSpec.model_validate(
                {
                    **current,
                    **{k: v for k, v in fields.items() if k != "job"},
                    **({"job": change.job} if change.job is not None else {}),
                }
            )
        except ValidationError as e:  # a null cron, say, or an end before the start
            problem = e.errors()[0]
            where = ".".join(str(part) for part in problem["loc"]) or "schedule"
            raise InvalidSpec(where, problem["msg"].removeprefix("Value error, ")) from None
        self._check(merged, schedule.owner)
        now = utcnow()
        values = {
            "name": merged.name,
            "spec": merged.job.model_dump(mode="json", exclude_defaults=True),
            "cron": merged.cron,
            "timezone": merged.timezone,
            "start_at": merged.start_at,
            "end_at": merged.end_at,
            "paused": merged.paused,
            "max_concurrent_runs": merged.max_concurrent_runs,
            "overlap": merged.overlap.value,
            "catch_up": merged.catch_up.value,
            "keep_last": merged.keep_last,
            "webhook_url": merged.webhook_url,
            "updated_at": now,
        }
        resumed = schedule.paused and not merged.paused
        timing = {"cron", "timezone", "start_at", "end_at"} & fields.keys()
        if resumed or timing:
            values["last_tick_at"] = now
            probe = Schedule(**{**values, "id": schedule.id})
            values["next_tick_at"] = self._first_tick(probe, now)
        self.store.update_schedule(schedule.id, **values)
        self.wake()
        return self.get(schedule_id, owner)

    def delete(self, schedule_id: str, owner: str | None) -> None:
        """Delete a schedule; its runs stay (unlinked) and keep running."""
        schedule = self.get(schedule_id, owner)
        self.store.delete_schedule(schedule.id)
        if schedule.snapshot:
            shutil.rmtree(
                self.manager.root_for(schedule.owner) / ".aicloud" / "snapshots" / schedule.id,
                ignore_errors=True,
            )

    async def run_now(self, schedule_id: str, owner: str | None, parameters: dict) -> Job:
        """Fire the schedule's job now, with parameter overrides (quota and checks apply)."""
        schedule = self.get(schedule_id, owner)
        if parameters and JobSpec.model_validate(schedule.spec).notebook is None:
            raise InvalidSpec("parameters", "only notebook jobs take parameters")
        return await self._fire(schedule, None, parameters)

    def runs(self, schedule_id: str, owner: str | None, limit: int, offset: int):
        """A page of a schedule's runs, newest first."""
        schedule = self.get(schedule_id, owner)
        return self.store.schedule_runs(schedule.id, limit, offset)
