"""The one serializer per entity, shared by the REST API, the CLI, the magics and the sidebar."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from aicloud.spec import redacted_env
from aicloud.store import Attempt, Job


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


def job_model(job: Job) -> dict[str, Any]:
    """The API form of a job. Secret-looking environment values are never shown."""
    spec = dict(job.spec)
    if spec.get("env"):
        spec["env"] = redacted_env(spec["env"])
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
        "spec": spec,
    }
