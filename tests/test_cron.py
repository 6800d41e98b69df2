"""Cron ticks in time zones, across daylight-saving changes (Europe/Berlin, 2026)."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest

from aicloud.cron import check_cron, check_timezone, next_tick, ticks

UTC = timezone.utc


def hours(found: list[datetime]) -> list[str]:
    return [t.strftime("%m-%d %H:%M") for t in found]


def test_daily_time_stays_local_across_spring_forward():
    found = ticks(
        "0 6 * * *",
        "Europe/Berlin",
        datetime(2026, 3, 27, tzinfo=UTC),
        datetime(2026, 3, 31, 12, tzinfo=UTC),
    )
    # 06:00 in Berlin: 05:00 UTC in winter, 04:00 UTC from March 29.
    assert hours(found) == [
        "03-27 05:00",
        "03-28 05:00",
        "03-29 04:00",
        "03-30 04:00",
        "03-31 04:00",
    ]


def test_time_in_the_spring_gap_fires_an_hour_later_once():
    found = ticks(
        "30 2 * * *",
        "Europe/Berlin",
        datetime(2026, 3, 28, 12, tzinfo=UTC),
        datetime(2026, 3, 30, 12, tzinfo=UTC),
    )
    # 02:30 does not exist on March 29: it fires at 03:30 CEST (01:30 UTC), once.
    assert hours(found) == ["03-29 01:30", "03-30 00:30"]


def test_time_repeated_in_autumn_fires_once():
    found = ticks(
        "30 2 * * *",
        "Europe/Berlin",
        datetime(2026, 10, 24, 12, tzinfo=UTC),
        datetime(2026, 10, 26, 12, tzinfo=UTC),
    )
    # 02:30 happens twice on October 25; the run is at the first one (00:30 UTC) only.
    assert hours(found) == ["10-25 00:30", "10-26 01:30"]


def test_half_hourly_runs_through_the_repeated_hour():
    found = ticks(
        "*/30 * * * *",
        "Europe/Berlin",
        datetime(2026, 10, 24, 23, 50, tzinfo=UTC),
        datetime(2026, 10, 25, 2, 10, tzinfo=UTC),
    )
    assert hours(found) == [
        "10-25 00:00",
        "10-25 00:30",
        "10-25 01:00",
        "10-25 01:30",
        "10-25 02:00",
    ]


def test_weekdays_and_next_tick():
    monday = datetime(2026, 11, 30, 12, tzinfo=UTC)
    found = ticks("0 6 * * 1-5", "Europe/Berlin", monday, datetime(2026, 12, 8, tzinfo=UTC))
    assert [t.strftime("%a") for t in found] == ["Tue", "Wed", "Thu", "Fri", "Mon"]
    assert next_tick("0 6 * * 1-5", "Europe/Berlin", monday) == found[0]


def test_seconds_field_only_when_allowed():
    check_cron("* * * * * */2", allow_seconds=True)
    with pytest.raises(ValueError, match="expected five fields"):
        check_cron("* * * * * */2")
    found = ticks(
        "* * * * * */2",
        "UTC",
        datetime(2026, 1, 1, tzinfo=UTC),
        datetime(2026, 1, 1, 0, 0, 7, tzinfo=UTC),
    )
    assert [t.second for t in found] == [2, 4, 6]


@pytest.mark.parametrize("expression", ["0 6 * *", "61 * * * *", "* * * * * * *", "nonsense"])
def test_invalid_expressions(expression):
    with pytest.raises(ValueError):
        check_cron(expression)


def test_unknown_time_zone():
    with pytest.raises(ValueError, match="unknown time zone 'Mars/Olympus'"):
        check_timezone("Mars/Olympus")
