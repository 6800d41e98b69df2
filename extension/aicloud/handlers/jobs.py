"""REST handlers for jobs: create, list, get, cancel, rerun, delete, logs."""

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


class JobCollectionHandler(AICloudHandler):
    """``/jobs``: list (filtered, paginated) and create."""

    @web.authenticated
    @authorized
    async def get(self):
        """A page of jobs, newest first."""
        statuses = self.get_query_arguments("status")
        for status in statuses:
            if status not in JobStatus.__members__:
                allowed = ", ".join(JobStatus.__members__)
                raise web.HTTPError(400, f"status: {status!r} is not one of {allowed}")
        kind = self.get_query_argument("kind", None)
        if kind is not None and kind not in JobKind.__members__:
            raise web.HTTPError(
                400, f"kind: {kind!r} is not one of {', '.join(JobKind.__members__)}"
            )
        tag = self.get_query_argument("tag", None)
        notebook = self.get_query_argument("notebook", None)
        limit = self.int_argument("limit", 50, 1, 500)
        offset = self.int_argument("offset", 0, 0, 10**9)
        page = self.manager.list(
            self.listed_owner("jobs"),
            statuses=statuses,
            kind=kind,
            tag=tag,
            notebook=notebook,
            limit=limit,
            offset=offset,
        )
        next_offset = offset + len(page.items)
        self.write_json(
            {
                "jobs": [job_model(job) for job in page.items],
                "total": page.total,
                "offset": offset,
                "limit": limit,
                "next_offset": next_offset if next_offset < page.total else None,
            }
        )

    @web.authenticated
    @authorized
    async def post(self):
        """Create a job: 201 with its model and a Location header."""
        spec = self.parse_body(JobSpec)
        job = self.manager.submit(spec, self.owner)
        location = url_path_join(self.base_url, API, "jobs", job.id)
        self.set_header("Location", location)
        self.write_json(job_model(job), status=201)


class JobHandler(AICloudHandler):
    """``/jobs/{id}``: get and delete."""

    @web.authenticated
    @authorized
    async def get(self, job_id: str):
        """One job."""
        self.write_json(job_model(self.manager.get(job_id, self.owner)))

    @web.authenticated
    @authorized
    async def delete(self, job_id: str):
        """Delete a job that has ended: 204."""
        self.manager.delete(job_id, self.owner)
        self.set_status(204)
        self.finish()


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
        await self.admit(spec)
        job = self.manager.submit(spec, self.caller)
        self.set_header("Location", url_path_join(self.base_url, API, "jobs", job.id))
        self.write_json(job_model(job), status=201)

    async def admit(self, spec: JobSpec) -> None:
        """Refuse a rerun before it is stored: in the hub, one past the caller's GPU quota.

        The hub's handlers (``aicloud.hub.service.HubUserMixin``) bring ``hub_user`` and
        ``gpu_usage``, and the hub's settings the catalog; elsewhere nothing is checked.
        """
        catalog = self.settings.get("aicloud_catalog")
        if catalog is None or not hasattr(self, "hub_user"):
            return
        from aicloud.hub.quota import check_gpu_quota, job_gpus

        requested = job_gpus(catalog, spec.model_dump(mode="json"))
        if requested:
            user = await self.hub_user()
            usage = self.gpu_usage(catalog, user)
            groups = user.get("groups") or []
            check_gpu_quota(catalog, user["name"], groups, usage, requested, "job")


class JobLogsHandler(AICloudHandler):
    """``/jobs/{id}/logs``: bytes from an offset, or a chunked stream with ``follow``."""

    @web.authenticated
    @authorized
    async def get(self, job_id: str):
        """The log as plain text; ``X-Aicloud-Next-Offset`` says where to continue."""
        job = self.manager.get(job_id, self.owner)
        offset = self.int_argument("offset", 0, 0, 2**62)
        limit = self.int_argument("limit", 1024 * 1024, 1, 16 * 1024 * 1024)
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
        since = self.int_argument("since", 0, 0, 10**9)
        limit = self.int_argument("limit", 1000, 1, 10_000)
        self.write_json(self.manager.metrics(job, since, limit))


default_handlers = [
    (rf"{API}/jobs", JobCollectionHandler),
    (rf"{API}/jobs/{JOB_ID}", JobHandler),
    (rf"{API}/jobs/{JOB_ID}/cancel", JobCancelHandler),
    (rf"{API}/jobs/{JOB_ID}/rerun", JobRerunHandler),
    (rf"{API}/jobs/{JOB_ID}/logs", JobLogsHandler),
    (rf"{API}/jobs/{JOB_ID}/metrics", JobMetricsHandler),
]
