"""REST handlers behind the job page: log lines, resource use, run comparison, serving stats.

Each reads what a job left in its run directory (through :mod:`aicloud.runs`, which trusts
nothing there) for a job the caller may see; another user's job answers 404 as elsewhere.
"""

from __future__ import annotations

import asyncio

from jupyter_server.auth.decorator import authorized
from tornado import web

from aicloud import compare, logindex, serving
from aicloud.handlers.base import AICloudHandler
from aicloud.handlers.jobs import API, JOB_ID, window_arguments
from aicloud.spec import JobKind
from aicloud.usage import DEFAULT_INTERVAL, read_usage

MAX_LINES = 5000
MAX_QUERY = 1000


class JobLogLinesHandler(AICloudHandler):
    """``/jobs/{id}/log-lines``: the log as numbered lines, filtered by rank and text."""

    @web.authenticated
    @authorized
    async def get(self, job_id: str):
        """``count`` lines from ``start`` of those matching ``rank`` and ``q`` (-1: the last)."""
        job = self.manager.get(job_id, self.owner)
        tail = self.bool_argument("tail")
        start = self.int_argument("start", -1 if tail else 0, -1, 10**12)
        count = self.int_argument("count", 200, 1, MAX_LINES)
        rank = self.get_query_argument("rank", None)
        if rank is not None:
            rank = self.int_argument("rank", 0, 0, 1_000_000)
        self.manager.check_rank(job, rank)
        text = self.get_query_argument("q", None)
        if text is not None and not 1 <= len(text) <= MAX_QUERY:
            raise web.HTTPError(400, f"q: must be 1 to {MAX_QUERY} characters")
        if text is not None and "\n" in text:
            raise web.HTTPError(400, "q: must not hold a newline (lines are searched one by one)")
        ranked = job.kind != JobKind.command.value
        page = await asyncio.to_thread(
            logindex.read_lines,
            job.run_dir,
            start,
            count,
            rank if ranked else None,
            text,
            ranked,
        )
        self.set_header("Cache-Control", "no-store")
        self.write_json(
            {"total": page.total, "start": page.start, "lines": page.lines, "status": job.status}
        )


class JobUsageHandler(AICloudHandler):
    """``/jobs/{id}/usage``: CPU, memory and GPU use of each attempt, as sampled."""

    @web.authenticated
    @authorized
    async def get(self, job_id: str):
        """Points from ``since`` (a point index) on, and the sampling interval."""
        job = self.manager.get(job_id, self.owner)
        since, limit = window_arguments(self, "since", 10**9, 1000, 10_000)
        points, following = await asyncio.to_thread(
            read_usage, job.run_dir, job.attempt_count, since, limit
        )
        backend = self.manager.backends.get(job.backend)
        interval = getattr(backend, "usage_interval_seconds", DEFAULT_INTERVAL)
        self.write_json({"points": points, "next": following, "interval_seconds": interval})


class JobCompareHandler(AICloudHandler):
    """``/jobs/compare``: runs side by side (by ids, a schedule, or a tag)."""

    @web.authenticated
    @authorized
    async def get(self):
        """Parameters, durations and final metrics of the chosen runs (at most 50)."""
        chosen = {name: self.get_query_argument(name, None) for name in compare.SELECTORS}
        given = {name: value for name, value in chosen.items() if value is not None}
        if len(given) != 1:
            raise web.HTTPError(400, f"ids: give exactly one of {', '.join(compare.SELECTORS)}")
        ((selector, value),) = given.items()
        jobs = compare.select_runs(self.manager, self.settings, self.owner, selector, value)
        self.write_json(await asyncio.to_thread(compare.comparison, jobs))


class JobServingHandler(AICloudHandler):
    """``/jobs/{id}/serving``: a serve job's request statistics, from its model server."""

    @web.authenticated
    @authorized
    async def get(self, job_id: str):
        """Requests, errors, latency quantiles, batch sizes and queue depth (409: not serving)."""
        job = self.manager.get(job_id, self.owner)
        self.write_json(await serving.serving_stats(job))


default_handlers = [
    (rf"{API}/jobs/compare", JobCompareHandler),
    (rf"{API}/jobs/{JOB_ID}/log-lines", JobLogLinesHandler),
    (rf"{API}/jobs/{JOB_ID}/usage", JobUsageHandler),
    (rf"{API}/jobs/{JOB_ID}/serving", JobServingHandler),
]
