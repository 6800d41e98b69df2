"""Runs side by side: which runs (by ids, a schedule, a tag), and their table.

The table holds each run's parameters, duration and last value of every metric it reported;
``parameters`` names those that differ between the runs, ``metrics`` every metric seen. The
curves themselves come from ``GET /jobs/{id}/metrics`` per run. A sweep (issue 19) is one more
selector here.
"""

from __future__ import annotations

from typing import Any

from tornado import web

from aicloud.errors import UnsafeRunFile
from aicloud.manager import JobManager
from aicloud.models import duration_seconds, isoformat
from aicloud.runs import METRICS_FILE, metric_point, open_run_file
from aicloud.spec import redacted_spec
from aicloud.store import Job

MAX_RUNS = 50
SELECTORS = ("ids", "schedule_id", "tag")
#: Progress fields, not metrics (``cell``: the notebook runner's progress through the cells).
NOT_METRICS = frozenset({"time", "rank", "restart", "step", "total", "cell"})


def select_runs(
    manager: JobManager, settings: dict, owner: str | None, selector: str, value: str
) -> list[Job]:
    """The runs ``selector`` (one of :data:`SELECTORS`) picks, oldest first; 404 names an
    id the caller may not see, 400 a malformed selection."""
    if selector == "ids":
        ids = [part for part in value.split(",") if part]
        if not 1 <= len(ids) <= MAX_RUNS:
            raise web.HTTPError(400, f"ids: give 1 to {MAX_RUNS} job ids, comma-separated")
        if len(set(ids)) != len(ids):
            raise web.HTTPError(400, "ids: an id is given twice")
        return [manager.get(job_id, owner) for job_id in ids]  # JobNotFound names the id
    if selector == "schedule_id":
        jobs, _ = settings["aicloud_scheduler"].runs(value, owner, MAX_RUNS, 0)
    else:
        if not 1 <= len(value) <= 63:
            raise web.HTTPError(400, "tag: must be 1 to 63 characters")
        jobs = manager.list(owner, tag=value, limit=MAX_RUNS, offset=0).items
    return sorted(jobs, key=lambda job: job.created_at)


def final_metrics(job: Job) -> dict[str, float | None]:
    """The last value the run reported for each metric (its chief's, where ranks report)."""
    last: dict[str, float | None] = {}
    try:
        f = open_run_file(job.run_dir, METRICS_FILE, "r", errors="replace")
    except (FileNotFoundError, UnsafeRunFile):
        return last
    with f:
        for line in f:
            point = metric_point(line) if line.endswith("\n") else None
            if point is None or point.get("rank") not in (0, None):
                continue
            last.update((k, v) for k, v in point.items() if k not in NOT_METRICS)
    return last


def run_row(job: Job) -> dict[str, Any]:
    """One run of the table."""
    return {
        "id": job.id,
        "name": job.name,
        "status": job.status,
        "parameters": redacted_spec(job.spec).get("parameters") or {},
        "duration_seconds": duration_seconds(job),
        "final_metrics": final_metrics(job),
        "created_at": isoformat(job.created_at),
    }


def differing(rows: list[dict[str, Any]]) -> list[str]:
    """Parameter names whose values are not the same in every run (missing counts)."""
    names = sorted({name for row in rows for name in row["parameters"]})
    missing = object()
    return [
        name
        for name in names
        if len({repr(row["parameters"].get(name, missing)) for row in rows}) > 1
    ]


def comparison(jobs: list[Job]) -> dict[str, Any]:
    """``{"runs", "parameters" (that differ), "metrics" (every name)}``."""
    rows = [run_row(job) for job in jobs]
    metrics = sorted({name for row in rows for name in row["final_metrics"]})
    return {"runs": rows, "parameters": differing(rows), "metrics": metrics}
