"""Crash safety: ``kill -9`` the server while jobs run, start it again, lose nothing."""

from __future__ import annotations

import sys
import time

import pytest

from tests.conftest import wait_for

COUNT_TO = 40
# Counts to 20, waits for a file that the test creates after the restart, counts on, exits.
COUNTER = (
    "import os, sys, time\n"
    "for i in range({n}):\n"
    "    print('line', i)\n"
    "    time.sleep(0.05)\n"
    "    while i == {n} // 2 and not os.path.exists({go!r}):\n"
    "        time.sleep(0.05)\n"
    "sys.exit({code})\n"
)


def submit_counter(client, code: int, go: str) -> str:
    spec = {"command": [sys.executable, "-c", COUNTER.format(n=COUNT_TO, code=code, go=go)]}
    response = client.post("jobs", json=spec)
    assert response.status_code == 201, response.text
    return response.json()["id"]


@pytest.mark.parametrize("exit_code", [0, 3])
def test_job_survives_a_server_crash(live_server_factory, exit_code, tmp_path):
    go = tmp_path / "go"
    server = live_server_factory()
    with server.api() as client:
        job_id = submit_counter(client, exit_code, str(go))
        wait_for(lambda: client.get(f"jobs/{job_id}").json()["status"] == "running")
        wait_for(lambda: b"line 3" in client.get(f"jobs/{job_id}/logs").content)
    server.stop(kill=True)

    restarted = live_server_factory()
    with restarted.api() as client:
        job = client.get(f"jobs/{job_id}").json()
        assert job["status"] == "running", job  # still tracked after the crash
        go.touch()
        job = wait_for(
            lambda: (
                (j := client.get(f"jobs/{job_id}").json())["status"] in ("succeeded", "failed")
                and j
            )
        )
        log = client.get(f"jobs/{job_id}/logs").text
    assert log == "".join(f"line {i}\n" for i in range(COUNT_TO))
    assert job["attempt_count"] == 1
    if exit_code == 0:
        assert job["status"] == "succeeded" and job["reason_code"] == "succeeded"
    else:
        assert job["status"] == "failed" and job["reason_code"] == "user_error"
        assert job["exit_code"] == 3


def test_job_that_ends_while_the_server_is_down(live_server_factory):
    server = live_server_factory()
    with server.api() as client:
        response = client.post("jobs", json={"command": ["sh", "-c", "sleep 1; echo done"]})
        job_id = response.json()["id"]
        wait_for(lambda: client.get(f"jobs/{job_id}").json()["status"] == "running")
    server.stop(kill=True)
    time.sleep(1.5)
    restarted = live_server_factory()
    with restarted.api() as client:
        job = wait_for(
            lambda: (j := client.get(f"jobs/{job_id}").json())["status"] == "succeeded" and j
        )
        assert client.get(f"jobs/{job_id}/logs").text == "done\n"
    assert job["reason"] == "exited with code 0"


def test_graceful_restart_keeps_jobs_running(live_server_factory):
    server = live_server_factory()
    with server.api() as client:
        job_id = client.post("jobs", json={"command": ["sh", "-c", "sleep 3; echo ok"]}).json()[
            "id"
        ]
        wait_for(lambda: client.get(f"jobs/{job_id}").json()["status"] == "running")
    server.stop()
    restarted = live_server_factory()
    with restarted.api() as client:
        job = wait_for(
            lambda: (j := client.get(f"jobs/{job_id}").json())["status"] == "succeeded" and j,
            timeout=30,
        )
    assert job["attempt_count"] == 1
