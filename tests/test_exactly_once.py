"""Two servers sharing one store never run an attempt twice."""

from __future__ import annotations

from tests.conftest import wait_for


def test_two_servers_one_store(live_server_factory, tmp_path):
    first = live_server_factory()
    second = live_server_factory()
    runs = tmp_path / "runs.txt"
    with first.api() as a, second.api() as b:
        ids = []
        for i in range(10):
            client = a if i % 2 else b
            spec = {"command": ["sh", "-c", f'echo "$AICLOUD_JOB_ID" >> {runs}']}
            ids.append(client.post("jobs", json=spec).json()["id"])
        jobs = wait_for(
            lambda: (
                (js := [a.get(f"jobs/{i}").json() for i in ids])
                and all(j["status"] == "succeeded" for j in js)
                and js
            )
        )
    assert all(j["attempt_count"] == 1 for j in jobs)
    assert sorted(runs.read_text().split()) == sorted(ids)
