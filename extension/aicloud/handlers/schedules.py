"""REST handlers for schedules: CRUD, run now, run history."""

from __future__ import annotations

from jupyter_server.auth.decorator import authorized
from jupyter_server.utils import url_path_join
from tornado import web

from aicloud.handlers.base import AICloudHandler
from aicloud.models import job_model, schedule_model
from aicloud.scheduler import Scheduler
from aicloud.spec import RunNow, ScheduleSpec, ScheduleUpdate

API = "/aicloud/api/v1"
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
        limit = self.int_argument("limit", 50, 1, 500)
        offset = self.int_argument("offset", 0, 0, 10**9)
        rows, total = self.scheduler.list(self.listed_owner("schedules"), limit, offset)
        self.write_json(
            {
                "schedules": [schedule_model(s) for s in rows],
                "total": total,
                "offset": offset,
                "limit": limit,
                "next_offset": offset + len(rows) if offset + len(rows) < total else None,
            }
        )

    @web.authenticated
    @authorized
    async def post(self):
        """Create a schedule: 201 with its model and a Location header."""
        spec = self.parse_body(ScheduleSpec)
        schedule = self.scheduler.create(spec, self.owner)
        self.set_header("Location", url_path_join(self.base_url, API, "schedules", schedule.id))
        self.write_json(schedule_model(schedule), status=201)


class ScheduleHandler(ScheduleHandlerBase):
    """``/schedules/{id}``: get, change (pause, resume, ...), delete."""

    @web.authenticated
    @authorized
    async def get(self, schedule_id: str):
        """One schedule."""
        self.write_json(schedule_model(self.scheduler.get(schedule_id, self.owner)))

    @web.authenticated
    @authorized
    async def patch(self, schedule_id: str):
        """Change fields; ``{"paused": true}`` pauses, ``false`` resumes."""
        change = self.parse_body(ScheduleUpdate)
        self.write_json(schedule_model(self.scheduler.update(schedule_id, self.owner, change)))

    @web.authenticated
    @authorized
    async def delete(self, schedule_id: str):
        """Delete the schedule (its runs stay): 204."""
        self.scheduler.delete(schedule_id, self.owner)
        self.set_status(204)
        self.finish()


class ScheduleRunHandler(ScheduleHandlerBase):
    """``/schedules/{id}/run``: fire now, with parameter overrides."""

    @web.authenticated
    @authorized
    async def post(self, schedule_id: str):
        """Create a run now: 201 with the job."""
        body = self.parse_body(RunNow) if self.request.body else RunNow()
        job = self.scheduler.run_now(schedule_id, self.owner, body.parameters)
        self.set_header("Location", url_path_join(self.base_url, API, "jobs", job.id))
        self.write_json(job_model(job), status=201)


class ScheduleRunsHandler(ScheduleHandlerBase):
    """``/schedules/{id}/runs``: the run history."""

    @web.authenticated
    @authorized
    async def get(self, schedule_id: str):
        """A page of runs, newest first."""
        limit = self.int_argument("limit", 50, 1, 500)
        offset = self.int_argument("offset", 0, 0, 10**9)
        rows, total = self.scheduler.runs(schedule_id, self.owner, limit, offset)
        self.write_json(
            {
                "jobs": [job_model(j) for j in rows],
                "total": total,
                "offset": offset,
                "limit": limit,
                "next_offset": offset + len(rows) if offset + len(rows) < total else None,
            }
        )


default_handlers = [
    (rf"{API}/schedules", ScheduleCollectionHandler),
    (rf"{API}/schedules/{SCHEDULE_ID}", ScheduleHandler),
    (rf"{API}/schedules/{SCHEDULE_ID}/run", ScheduleRunHandler),
    (rf"{API}/schedules/{SCHEDULE_ID}/runs", ScheduleRunsHandler),
]
