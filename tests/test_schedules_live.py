"""Schedules across real server processes: exactly once over one database, and catch-up."""

from __future__ import annotations

import time
from datetime import datetime, timedelta, timezone

import pytest

from aicloud.cron import ticks
from tests.conftest import wait_for

SCHEDULER_FLAGS = ("--Scheduler.allow_seconds=True", "--Scheduler.tick_interval=0.2")


def parse(stamp: str) -> datetime:
    return datetime.fromisoformat(stamp.replace("Z", "+00:00"))


def all_runs(client, schedule_id: str) -> list[dict]:
    return client.get(f"schedules/{schedule_id}/runs", params={"limit": 500}).json()["jobs"]


@pytest.fixture(params=["sqlite", "postgresql"])
def database(request, tmp_path):
    """SQLite under the shared data dir, or a real PostgreSQL server."""
    if request.param == "sqlite":
        return ()
    return (f"--AICloudApp.db_url={request.getfixturevalue('postgres_url')}",)


def test_two_services_fire_each_tick_exactly_once(live_server_factory, database):
    args = (*SCHEDULER_FLAGS, *database)
    first = live_server_factory(extra_args=args)
    second = live_server_factory(extra_args=args)
    with first.api() as a, second.api() as b:
        start = datetime.now(timezone.utc) + timedelta(seconds=2)
        end = start + timedelta(seconds=8)
        spec = {
            "cron": "* * * * * */1",
            "start_at": start.isoformat(),
            "end_at": end.isoformat(),
            "job": {"command": ["true"]},
            "catch_up": "all",
        }
        schedule = a.post("schedules", json=spec).json()
        assert b.get(f"schedules/{schedule['id']}").status_code == 200
        expected = ticks("* * * * * */1", "UTC", start - timedelta(microseconds=1), end)
        wait_for(lambda: len(all_runs(a, schedule["id"])) >= len(expected), timeout=60)
        time.sleep(1.5)  # nothing more may come
        fired = sorted(parse(run["scheduled_for"]) for run in all_runs(b, schedule["id"]))
    assert fired == expected  # every tick once: no duplicates, no misses
    assert len(expected) >= 8


def test_catch_up_after_the_service_was_down(live_server_factory):
    server = live_server_factory(
        extra_args=(*SCHEDULER_FLAGS, "--Scheduler.misfire_grace_seconds=0.5")
    )
    with server.api() as client:
        ids = {}
        for mode in ("none", "latest", "all"):
            spec = {
                "name": mode,
                "cron": "* * * * * */2",
                "job": {"command": ["true"]},
                "catch_up": mode,
            }
            ids[mode] = client.post("schedules", json=spec).json()["id"]
        wait_for(lambda: all(all_runs(client, i) for i in ids.values()), timeout=30)
    stopped = datetime.now(timezone.utc)
    server.stop()
    time.sleep(7)  # three ticks or more pass while the service is down
    restarted = live_server_factory(
        extra_args=(*SCHEDULER_FLAGS, "--Scheduler.misfire_grace_seconds=0.5")
    )
    ready = datetime.now(timezone.utc)
    missed = ticks("* * * * * */2", "UTC", stopped, ready - timedelta(seconds=1))
    assert len(missed) >= 3
    with restarted.api() as client:
        time.sleep(2)
        for schedule_id in ids.values():
            client.patch(f"schedules/{schedule_id}", json={"paused": True})
        in_downtime = {
            mode: [
                parse(r["scheduled_for"])
                for r in all_runs(client, schedule_id)
                if stopped < parse(r["scheduled_for"]) <= ready - timedelta(seconds=1)
            ]
            for mode, schedule_id in ids.items()
        }
        schedules = {mode: client.get(f"schedules/{i}").json() for mode, i in ids.items()}
    assert sorted(in_downtime["all"]) == missed  # every missed tick ran
    assert len(in_downtime["latest"]) <= 1  # only the latest one
    assert schedules["latest"]["missed_ticks"] >= len(missed) - 1
    assert in_downtime["none"] == []  # none of them
    assert schedules["none"]["missed_ticks"] >= len(missed)
    assert schedules["all"]["missed_ticks"] == 0
