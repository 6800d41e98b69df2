"""The job page's views in the hub home, as two users and an admin (one real hub).

alice's running GPU job (the fake ``tests/fakes/nvidia-smi`` gives the service two GPUs):
bob gets 404 for its log lines, usage, serving and comparison, and sees only his own row of
``/resources/usage``; the admin sees alice's row; carol's quota is her group's.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.conftest import wait_for
from tests.hub_helpers import VENV_HUB, LocalHub

FAKES = Path(__file__).parent / "fakes"
API = "/services/aicloud/aicloud/api/v1"
GPU_JOB = {
    "command": ["sh", "-c", "echo '[rank0]:not a rank: a command job'; sleep 60"],
    "tags": ["alice-runs"],
    "resources": {"accelerator": "nvidia.com/gpu", "accelerator_count": 1},
}


@pytest.fixture(scope="module")
def hub(tmp_path_factory):
    """A local hub: carol is a student (GPU quota 1), boss is an aicloud admin."""
    local = LocalHub(
        state=tmp_path_factory.mktemp("hub"),
        groups={"students": {"users": ["carol"]}},
        env={"PATH": f"{FAKES}{os.pathsep}{os.environ['PATH']}"},
        hub_version=VENV_HUB,
    )
    local.start()
    yield local
    local.stop()


@pytest.fixture(scope="module")
def clients(hub):
    clients = {name: hub.client(hub.user_token(name)) for name in ("alice", "bob", "carol", "boss")}
    yield clients
    for client in clients.values():
        client.close()


@pytest.fixture(scope="module")
def alices_job(clients):
    alice = clients["alice"]
    answer = alice.post(f"{API}/jobs", json=GPU_JOB)
    assert answer.status_code == 201, answer.text
    job_id = answer.json()["id"]
    wait_for(lambda: alice.get(f"{API}/jobs/{job_id}").json()["status"] == "running", timeout=60)
    yield alice.get(f"{API}/jobs/{job_id}").json()
    alice.post(f"{API}/jobs/{job_id}/cancel")


def test_the_owner_sees_her_jobs_views(clients, alices_job):
    alice = clients["alice"]
    job_id = alices_job["id"]
    lines = wait_for(
        lambda: (p := alice.get(f"{API}/jobs/{job_id}/log-lines").json())["total"] and p
    )
    assert lines["lines"][0] == {"n": 0, "rank": None, "text": "[rank0]:not a rank: a command job"}
    assert alice.get(f"{API}/jobs/{job_id}/usage").status_code == 200
    table = alice.get(f"{API}/jobs/compare", params={"tag": "alice-runs"}).json()
    assert [row["id"] for row in table["runs"]] == [job_id]
    assert alice.get(f"{API}/jobs/{job_id}/serving").status_code == 409


def test_another_user_gets_404_naming_the_job(clients, alices_job):
    bob = clients["bob"]
    job_id = alices_job["id"]
    for path in ("log-lines", "usage", "serving"):
        answer = bob.get(f"{API}/jobs/{job_id}/{path}")
        assert answer.status_code == 404, (path, answer.text)
        assert job_id in answer.json()["message"]
    answer = bob.get(f"{API}/jobs/compare", params={"ids": job_id})
    assert answer.status_code == 404 and job_id in answer.json()["message"]
    assert bob.get(f"{API}/jobs/compare", params={"tag": "alice-runs"}).json()["runs"] == []


def test_gpus_in_use_are_leases_of_gpus_that_exist_against_the_quota(clients, alices_job):
    machine = clients["alice"].get(f"{API}/resources/usage").json()
    resources = clients["alice"].get(f"{API}/resources").json()
    assert [g["index"] for g in machine["gpus"]] == [g["index"] for g in resources["gpus"]]
    assert len(machine["gpus"]) == 2  # the fake nvidia-smi's
    assert machine["users"] == [
        {"user": "alice", "gpus_in_use": 1, "gpu_quota": None, "jobs_running": 1}
    ]
    assert resources["quota"]["limit"] is None
    (bob,) = clients["bob"].get(f"{API}/resources/usage").json()["users"]
    assert bob == {"user": "bob", "gpus_in_use": 0, "gpu_quota": None, "jobs_running": 0}
    (carol,) = clients["carol"].get(f"{API}/resources/usage").json()["users"]
    assert carol["gpu_quota"] == 1
    assert carol["gpu_quota"] == clients["carol"].get(f"{API}/resources").json()["quota"]["limit"]
    rows = {
        row["user"]: row for row in clients["boss"].get(f"{API}/resources/usage").json()["users"]
    }
    assert rows["alice"]["gpus_in_use"] == 1 and "boss" in rows
