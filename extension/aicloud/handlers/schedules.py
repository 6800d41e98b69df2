"""REST handlers for schedules: CRUD, run now, run history."""

from __future__ import annotations

from jupyter_server.auth.decorator import authorized
from tornado import web

from aicloud.handlers.base import AICloudHandler
from aicloud.handlers.jobs import API, OneObjectHandler, page_arguments, write_created, write_page
from aicloud.models import job_model, schedule_model
from aicloud.scheduler import Scheduler
from aicloud.spec import RunNow, ScheduleSpec, ScheduleUpdate

SCHEDULE_ID = r"(?P<schedule_id>[A-Za-z0-9_-]{1,64})"


class ScheduleHandlerBase(AICloudHandler):
    """Gives handlers the scheduler."""

    @property
    def scheduler(self) -> Scheduler:
        """The scheduler of this service."""
        return self.settings["aicloud_scheduler"]


class ScheduleCollectionHandler(ScheduleHandlerBase):
    """``/schedules``: list and create."""

    @web.authenticated
    @authorized
    async def get(self):
        """A page of schedules, newest first."""
        limit, offset = page_arguments(self)
        rows, total = self.scheduler.list(self.listed_owner("schedules"), limit, offset)
        write_page(self, "schedules", [schedule_model(s) for s in rows], total, offset, limit)

    @web.authenticated
    @authorized
    async def post(self):
        """Create a schedule: 201 with its model and a Location header."""
        schedule = self.scheduler.create(self.parse_body(ScheduleSpec), self.owner)
        write_created(self, schedule_model(schedule), "schedules")


class ScheduleHandler(ScheduleHandlerBase, OneObjectHandler):
    """``/schedules/{id}``: get, change (pause, resume, ...), delete (its runs stay)."""

    def model(self, object_id: str) -> dict:
        """The schedule's model."""
        return schedule_model(self.scheduler.get(object_id, self.owner))

    def remove(self, object_id: str) -> None:
        """Delete the schedule; its runs stay."""
        self.scheduler.delete(object_id, self.owner)

    @web.authenticated
    @authorized
    async def patch(self, schedule_id: str):
        """Change fields; ``{"paused": true}`` pauses, ``false`` resumes."""
        change = self.parse_body(ScheduleUpdate)
        self.write_json(schedule_model(self.scheduler.update(schedule_id, self.owner, change)))


class ScheduleRunHandler(ScheduleHandlerBase):
    """``/schedules/{id}/run``: fire now, with parameter overrides."""

    @web.authenticated
    @authorized
    async def post(self, schedule_id: str):
        """Create a run now: 201 with the job (403: past the quota)."""
        body = self.parse_body(RunNow) if self.request.body else RunNow()
        job = await self.scheduler.run_now(schedule_id, self.owner, body.parameters)
        write_created(self, job_model(job), "jobs")


class ScheduleRunsHandler(ScheduleHandlerBase):
    """``/schedules/{id}/runs``: the run history."""

    @web.authenticated
    @authorized
    async def get(self, schedule_id: str):
        """A page of runs, newest first."""
        limit, offset = page_arguments(self)
        rows, total = self.scheduler.runs(schedule_id, self.owner, limit, offset)
        write_page(self, "jobs", [job_model(j) for j in rows], total, offset, limit)


default_handlers = [
    (rf"{API}/schedules", ScheduleCollectionHandler),
    (rf"{API}/schedules/{SCHEDULE_ID}", ScheduleHandler),
    (rf"{API}/schedules/{SCHEDULE_ID}/run", ScheduleRunHandler),
    (rf"{API}/schedules/{SCHEDULE_ID}/runs", ScheduleRunsHandler),
]
