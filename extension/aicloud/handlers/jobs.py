"""REST handlers for jobs: create, list, get, cancel, rerun, delete, logs.

Every job is made by ``JobManager.submit``, which also takes the quota (the hub's GPU quota):
a refusal comes back as the manager raised it (403 for the quota).
"""

from __future__ import annotations

import asyncio

from jupyter_server.auth.decorator import authorized
from jupyter_server.utils import url_path_join
from pydantic import ValidationError
from tornado import web
from tornado.iostream import StreamClosedError

from aicloud.handlers.base import AICloudHandler, describe_validation_error
from aicloud.models import job_model
from aicloud.spec import JobKind, JobSpec, JobStatus, rerun_spec

JOB_ID = r"(?P<job_id>[A-Za-z0-9_-]{1,64})"
API = "/aicloud/api/v1"
FOLLOW_CHUNK = 1024 * 1024  # a read per poll keeps up with ~10 MB/s
FOLLOW_INTERVAL = 0.1


def window_arguments(
    handler: AICloudHandler, start: str, highest: int, limit: int, most: int
) -> tuple[int, int]:
    """Where a read starts (query argument ``start``, 0 to ``highest``, default 0) and how
    much it takes (``limit``, 1 to ``most``, default ``limit``): a page, a log, metrics."""
    return handler.int_argument(start, 0, 0, highest), handler.int_argument("limit", limit, 1, most)


def page_arguments(handler: AICloudHandler) -> tuple[int, int]:
    """``limit`` (1-500, default 50) and ``offset`` of a listing."""
    offset, limit = window_arguments(handler, "offset", 10**9, 50, 500)
    return limit, offset


def write_page(handler: AICloudHandler, key: str, models: list, total: int, offset, limit):
    """Finish with one page of a listing: ``{key: models, total, offset, limit, next_offset}``."""
    following = offset + len(models)
    handler.write_json(
        {
            key: models,
            "total": total,
            "offset": offset,
            "limit": limit,
            "next_offset": following if following < total else None,
        }
    )


def write_deleted(handler: AICloudHandler) -> None:
    """Finish with 204 No Content."""
    handler.set_status(204)
    handler.finish()


def write_created(handler: AICloudHandler, model: dict, collection: str) -> None:
    """Finish with 201, ``model``, and a ``Location`` of ``collection/<model's id>``."""
    handler.set_header("Location", url_path_join(handler.base_url, API, collection, model["id"]))
    handler.write_json(model, status=201)


def check_member(name: str, value: str | None, enum) -> str | None:
    """``value`` of query argument ``name`` if it is None or a member of ``enum``, else a 400."""
    if value is not None and value not in enum.__members__:
        raise web.HTTPError(400, f"{name}: {value!r} is not one of {', '.join(enum.__members__)}")
    return value


class OneObjectHandler(AICloudHandler):
    """``GET`` and ``DELETE`` of one object named by the route's one group (its id).

    Subclasses say how to find it (:meth:`model`) and remove it (:meth:`remove`); each
    raises the domain's 404 for an id the caller may not see.
    """

    def model(self, object_id: str) -> dict:
        """The object's model."""
        raise NotImplementedError

    def remove(self, object_id: str) -> None:
        """Delete the object."""
        raise NotImplementedError

    @web.authenticated
    @authorized
    async def get(self, **ids: str):
        """One object."""
        (object_id,) = ids.values()
        self.write_json(self.model(object_id))

    @web.authenticated
    @authorized
    async def delete(self, **ids: str):
        """Delete the object: 204."""
        (object_id,) = ids.values()
        self.remove(object_id)
        write_deleted(self)


class JobCollectionHandler(AICloudHandler):
    """``/jobs``: list (filtered, paginated) and create."""

    @web.authenticated
    @authorized
    async def get(self):
        """A page of jobs, newest first."""
        filters = {
            "statuses": [
                check_member("status", s, JobStatus) for s in self.get_query_arguments("status")
            ],
            "kind": check_member("kind", self.get_query_argument("kind", None), JobKind),
            "tag": self.get_query_argument("tag", None),
            "notebook": self.get_query_argument("notebook", None),
        }
        limit, offset = page_arguments(self)
        owner = self.listed_owner("jobs")
        page = self.manager.list(owner, limit=limit, offset=offset, **filters)
        jobs = [job_model(job) for job in page.items]
        write_page(self, "jobs", jobs, page.total, offset, limit)

    @web.authenticated
    @authorized
    async def post(self):
        """Create a job: 201 with its model and a Location header (403: past the quota)."""
        spec = self.parse_body(JobSpec)
        write_created(self, job_model(await self.manager.submit(spec, self.owner)), "jobs")


class JobHandler(OneObjectHandler):
    """``/jobs/{id}``: get, and delete a job that has ended."""

    def model(self, object_id: str) -> dict:
        """The job's model."""
        return job_model(self.manager.get(object_id, self.owner))

    def remove(self, object_id: str) -> None:
        """Delete the job, if it has ended (409 if not)."""
        self.manager.delete(object_id, self.owner)


class JobCancelHandler(AICloudHandler):
    """``/jobs/{id}/cancel``."""

    @web.authenticated
    @authorized
    async def post(self, job_id: str):
        """Cancel a job; answers once none of its processes is left."""
        job = await self.manager.cancel(job_id, self.owner)
        self.write_json(job_model(job))


class JobRerunHandler(AICloudHandler):
    """``/jobs/{id}/rerun``: a new job from the stored spec, secrets included."""

    @web.authenticated
    @authorized
    async def post(self, job_id: str):
        """Create a job from the caller's own job ``job_id``: 201, as ``POST /jobs`` answers.

        The optional body holds top-level spec fields to change; an ``env`` value of ``***``
        keeps the original's value. The original's idempotency token is not reused. Only the
        caller's own jobs can be rerun, admins included (another's answers 404).
        """
        overrides = self.json_body() if self.request.body else {}
        original = self.manager.get(job_id, self.caller)
        try:
            spec = rerun_spec(original.spec, overrides)
        except ValidationError as e:
            raise web.HTTPError(400, describe_validation_error(e)) from None
        write_created(self, job_model(await self.manager.submit(spec, self.caller)), "jobs")


class JobLogsHandler(AICloudHandler):
    """``/jobs/{id}/logs``: bytes from an offset, or a chunked stream with ``follow``."""

    @web.authenticated
    @authorized
    async def get(self, job_id: str):
        """The log as plain text; ``X-Aicloud-Next-Offset`` says where to continue."""
        job = self.manager.get(job_id, self.owner)
        offset, limit = window_arguments(self, "offset", 2**62, 1024 * 1024, 16 * 1024 * 1024)
        rank = self.get_query_argument("rank", None)
        if rank is not None:
            rank = self.int_argument("rank", 0, 0, 1_000_000)
        follow = self.bool_argument("follow")
        self.manager.check_rank(job, rank)
        self.set_header("Content-Type", "text/plain; charset=utf-8")
        self.set_header("Cache-Control", "no-store")
        if not follow:
            data, next_offset = self.manager.read_log(job, offset, limit, rank)
            self.set_header("X-Aicloud-Next-Offset", str(next_offset))
            self.set_header("X-Aicloud-Job-Status", job.status)
            self.finish(data, set_content_type="text/plain; charset=utf-8")
            return
        await self._follow(job_id, offset, rank)

    async def _follow(self, job_id: str, offset: int, rank: int | None) -> None:
        """Send what the log gains every ``FOLLOW_INTERVAL`` until the job has ended.

        The job is looked up again only when the log has nothing new (a database query per
        read was most of the server's work at 10,000 lines/s). Its status is read before the
        log, so the lines written before it ended are all sent before the stream closes.
        """
        self.set_header("X-Accel-Buffering", "no")
        job = self.manager.get(job_id, self.owner)
        ended = JobStatus(job.status).terminal
        while True:
            data, next_offset = self.manager.read_log(job, offset, FOLLOW_CHUNK, rank)
            try:
                if next_offset > offset:
                    caught_up = next_offset - offset < FOLLOW_CHUNK // 2
                    offset = next_offset
                    if data:
                        self.write(data)
                        await self.flush()
                    if not caught_up or ended:
                        continue  # more is waiting: read on without sleeping
                else:
                    if ended:
                        break
                    job = self.manager.get(job_id, self.owner)
                    ended = JobStatus(job.status).terminal
                    if ended:
                        continue  # read once more: the last lines came before the status
                    await self.flush()
            except StreamClosedError:
                return
            await asyncio.sleep(FOLLOW_INTERVAL)
        self.finish(set_content_type="text/plain; charset=utf-8")


class JobMetricsHandler(AICloudHandler):
    """``/jobs/{id}/metrics``: what the job reported through ``aicloud.runtime.report``."""

    @web.authenticated
    @authorized
    async def get(self, job_id: str):
        """Points from ``since`` (a point index) on, the latest one, and the progress."""
        job = self.manager.get(job_id, self.owner)
        since, limit = window_arguments(self, "since", 10**9, 1000, 10_000)
        self.write_json(self.manager.metrics(job, since, limit))


default_handlers = [
    (rf"{API}/jobs", JobCollectionHandler),
    (rf"{API}/jobs/{JOB_ID}", JobHandler),
    (rf"{API}/jobs/{JOB_ID}/cancel", JobCancelHandler),
    (rf"{API}/jobs/{JOB_ID}/rerun", JobRerunHandler),
    (rf"{API}/jobs/{JOB_ID}/logs", JobLogsHandler),
    (rf"{API}/jobs/{JOB_ID}/metrics", JobMetricsHandler),
]
