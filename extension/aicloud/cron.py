"""Cron ticks in a time zone, correct across daylight-saving changes.

Ticks are wall-clock times in the schedule's IANA time zone (``0 6 * * *`` in Europe/Berlin is
06:00 in Berlin all year). croniter steps through wall-clock times; this module maps each to an
instant:

- a time that occurs twice when clocks go back fires once, the first time;
- a time that does not exist when clocks go forward fires one hour later (02:30 → 03:30);
- schedules that run every hour (hour field ``*``) keep running through the repeated hour;
- instants never repeat and never go backwards, so no tick fires twice.
"""

from __future__ import annotations

from datetime import datetime, timezone
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from croniter import croniter


def check_cron(expression: str, allow_seconds: bool = False) -> None:
    """Raise ValueError for an invalid expression (five fields; six with seconds if allowed)."""
    fields = expression.split()
    allowed = (5, 6) if allow_seconds else (5,)
    if len(fields) not in allowed:
        extra = " (or six, with seconds last)" if allow_seconds else ""
        raise ValueError(f"expected five fields{extra}, got {len(fields)}: {expression!r}")
    if not croniter.is_valid(expression):
        raise ValueError(f"not a valid cron expression: {expression!r}")


def check_timezone(name: str) -> ZoneInfo:
    """The time zone called ``name``, or ValueError."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(
            f"unknown time zone {name!r} (use an IANA name like Europe/Berlin)"
        ) from None


def ticks(expression: str, zone: str, after: datetime, until: datetime, limit: int = 1000):
    """Tick instants (UTC) with ``after < tick <= until``, at most ``limit``, in order."""
    tz = ZoneInfo(zone)
    hourly = expression.split()[1] == "*"
    start = after.astimezone(tz)
    steps = croniter(expression, start if hourly else start.replace(tzinfo=None))
    found: list[datetime] = []
    last = after
    for _ in range(limit * 4 + 10):  # DST gaps and folds can skip a few wall-clock steps
        local = steps.get_next(datetime)
        if not hourly:
            local = local.replace(tzinfo=tz, fold=0)
        instant = local.astimezone(timezone.utc)
        if instant <= last:
            continue
        if instant > until or len(found) >= limit:
            break
        found.append(instant)
        last = instant
    return found


def next_tick(expression: str, zone: str, after: datetime) -> datetime | None:
    """The first tick after ``after`` (within ten years), or None."""
    horizon = after.replace(year=after.year + 10)
    found = ticks(expression, zone, after, horizon, limit=1)
    return found[0] if found else None
