"""The one serializer per entity, shared by the REST API, the CLI, the magics and the sidebar."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from aicloud.errors import UnsafeRunFile
from aicloud.runs import OUTPUTS, read_run_file
from aicloud.spec import JobKind, JobStatus, redacted_spec
from aicloud.store import Attempt, Job, Schedule, utcnow

ENDPOINT_FILE = "endpoint.json"  # what a serve job's model server writes once it serves


def isoformat(value: datetime | None) -> str | None:
    """An ISO 8601 UTC timestamp ending in Z, or None."""
    if value is None:
        return None
    return value.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def attempt_model(attempt: Attempt) -> dict[str, Any]:
    """The API form of an attempt."""
    return {
        "number": attempt.number,
        "status": attempt.status,
        "started_at": isoformat(attempt.started_at),
        "finished_at": isoformat(attempt.finished_at),
        "exit_code": attempt.exit_code,
        "reason_code": attempt.reason_code,
        "reason": attempt.reason,
        "restarts": attempt.restarts,
    }


def duration_seconds(job: Job) -> float | None:
    """Seconds from the first start to the end (to now while it runs); None before a start."""
    if job.started_at is None:
        return None
    end = job.finished_at or utcnow()
    return round(max(0.0, (end - job.started_at).total_seconds()), 3)


def endpoint_model(job: Job) -> dict[str, Any] | None:
    """Where a running serve job answers (``url``, ``infer_url``, ``model``), once it serves.

    Read from the endpoint file its model server writes; the job owns that file, so only
    string fields of it are passed on, and a symlink or malformed file counts as none.
    """
    if job.kind != JobKind.serve.value or job.status != JobStatus.running.value:
        return None
    if not job.run_dir:
        return None
    try:
        text = read_run_file(job.run_dir, f"{OUTPUTS}/{ENDPOINT_FILE}", 64 * 1024)
        document = json.loads(text) if text else None
    except (UnsafeRunFile, ValueError, OSError):
        return None
    if not isinstance(document, dict) or not isinstance(document.get("url"), str):
        return None
    fields = ("url", "infer_url", "model")
    return {
        name: document.get(name) if isinstance(document.get(name), str) else None for name in fields
    }


def job_model(job: Job) -> dict[str, Any]:
    """The API form of a job. Secret environment values are never shown (``redacted_spec``)."""
    spec = redacted_spec(job.spec)
    return {
        "id": job.id,
        "name": job.name,
        "owner": job.owner,
        "kind": job.kind,
        "framework": job.framework,
        "backend": job.backend,
        "status": job.status,
        "reason_code": job.reason_code,
        "reason": job.reason,
        "exit_code": job.exit_code,
        "tags": [tag.tag for tag in job.tags],
        "created_at": isoformat(job.created_at),
        "started_at": isoformat(job.started_at),
        "finished_at": isoformat(job.finished_at),
        "retry_at": isoformat(job.not_before),
        "attempt_count": job.attempt_count,
        "restarts": sum(a.restarts for a in job.attempts),
        "attempts": [attempt_model(a) for a in job.attempts],
        "schedule_id": job.schedule_id,
        "scheduled_for": isoformat(job.scheduled_for),
        "pruned": job.pruned,
        "parameters": spec.get("parameters") or {},
        "duration_seconds": duration_seconds(job),
        "origin": job.origin_notebook,
        "endpoint": endpoint_model(job),
        "spec": spec,
    }


def masked_url(url: str | None) -> str | None:
    """A webhook URL with its path and query hidden (they often carry a secret)."""
    if not url:
        return url
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    hidden = "/***" if parts.path.strip("/") or parts.query else ""
    return f"{parts.scheme}://{parts.netloc}{hidden}"


def schedule_model(schedule: Schedule) -> dict[str, Any]:
    """The API form of a schedule. The job template's secrets and the webhook's path are hidden."""
    spec = redacted_spec(schedule.spec)
    return {
        "id": schedule.id,
        "name": schedule.name,
        "owner": schedule.owner,
        "job": spec,
        "cron": schedule.cron,
        "timezone": schedule.timezone,
        "start_at": isoformat(schedule.start_at),
        "end_at": isoformat(schedule.end_at),
        "paused": schedule.paused,
        "max_concurrent_runs": schedule.max_concurrent_runs,
        "overlap": schedule.overlap,
        "catch_up": schedule.catch_up,
        "keep_last": schedule.keep_last,
        "webhook_url": masked_url(schedule.webhook_url),
        "snapshot": schedule.snapshot is not None,
        "created_at": isoformat(schedule.created_at),
        "updated_at": isoformat(schedule.updated_at),
        "last_tick_at": isoformat(schedule.last_tick_at),
        "next_tick_at": isoformat(schedule.next_tick_at),
        "missed_ticks": schedule.missed_ticks,
    }
