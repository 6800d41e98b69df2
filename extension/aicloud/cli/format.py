"""Readable tables and summaries of API models for the terminal."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any


def age(timestamp: str | None, now: datetime | None = None) -> str:
    """``12s``, ``5m``, ``3h``, ``2d`` since an ISO timestamp."""
    if not timestamp:
        return "-"
    then = datetime.fromisoformat(timestamp.replace("Z", "+00:00"))
    seconds = int(((now or datetime.now(timezone.utc)) - then).total_seconds())
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds // size}{unit}"
    return f"{max(seconds, 0)}s"


def table(rows: list[list[str]], header: list[str]) -> str:
    """Left-aligned columns separated by two spaces."""
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    lines = [
        "  ".join(str(c).ljust(w) for c, w in zip(row, widths, strict=False)).rstrip()
        for row in [header, *rows]
    ]
    return "\n".join(lines)


def jobs_table(jobs: list[dict[str, Any]]) -> str:
    """One line per job."""
    rows = [
        [
            job["id"],
            job["name"] or "-",
            job["kind"],
            job["status"],
            str(job["attempt_count"]),
            age(job["created_at"]),
            (job["reason"] or "")[:60],
        ]
        for job in jobs
    ]
    return table(rows, ["ID", "NAME", "KIND", "STATUS", "ATTEMPTS", "AGE", "REASON"])


def job_summary(job: dict[str, Any]) -> str:
    """A job as ``key: value`` lines, then its attempts."""
    spec = job["spec"]
    what = spec.get("command") or spec.get("script") or spec.get("module") or spec.get("notebook")
    lines = [
        f"id:        {job['id']}",
        f"name:      {job['name'] or '-'}",
        f"kind:      {job['kind']} ({job['framework']}) on {job['backend']}",
        f"status:    {job['status']}",
        f"reason:    {job['reason'] or '-'}",
        f"runs:      {what if isinstance(what, str) else ' '.join(what or ['<inline source>'])}",
        f"created:   {job['created_at']}",
        f"started:   {job['started_at'] or '-'}",
        f"finished:  {job['finished_at'] or '-'}",
        f"tags:      {', '.join(job['tags']) or '-'}",
    ]
    if job["attempts"]:
        lines.append("attempts:")
        for attempt in job["attempts"]:
            lines.append(
                f"  {attempt['number']}: {attempt['status']}"
                f" ({attempt['reason'] or 'running'}) from {attempt['started_at']}"
            )
    return "\n".join(lines)
