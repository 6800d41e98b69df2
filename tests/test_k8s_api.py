"""The kubernetes backend behind the real REST API (pytest-jupyter server), on the FAKE API.

Bad input is refused with a 400 naming the field before anything reaches the cluster; a good
job goes queued → running → succeeded with every rank's lines in the logs API.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from tests.helpers import api, job_log, submit, wait_job
from tests.k8s_fake import FakeKubernetes

CATALOG = Path(__file__).parent.parent / "spawner_config" / "hardware.yaml"


@pytest.fixture
def fake():
    server = FakeKubernetes().start()
    yield server
    server.stop()


@pytest.fixture
def jp_server_config(aicloud_data_dir, fake, tmp_path):
    return {
        "ServerApp": {"jpserver_extensions": {"aicloud": True}},
        "AICloudApp": {
            "data_dir": str(aicloud_data_dir),
            "notebook_pool_size": 0,
            "backends": ["local", "kubernetes"],
        },
        "JobManager": {"poll_interval": 0.2},
        "KubernetesBackend": {
            "kubeconfig": fake.kubeconfig(tmp_path / "kubeconfig"),
            "catalog_path": str(CATALOG),
            "max_nodes": 4,
            "cancel_grace_seconds": 1.0,
            "explain_interval": 0.0,
        },
    }


TORCH = {"kind": "train", "framework": "torch", "source": "print('hi')", "backend": "kubernetes"}


@pytest.mark.parametrize(
    ("change", "field", "words"),
    [
        (
            {"resources": {"accelerator": "nvidia.com/h100", "accelerator_count": 1}},
            "resources.accelerator",
            "not in the hardware catalog",
        ),
        ({"resources": {"nodes": 5}}, "resources.nodes", "quota of 4 nodes"),
        (
            {"resources": {"nodes": 3, "accelerator": "nvidia.com/gpu", "accelerator_count": 4}},
            "resources.nodes",
            "exceed the largest GPU quota",
        ),
        ({"image": "Ghcr.io/Org/Bad Image:latest"}, "image", "not a valid image reference"),
        ({"image": "repo:tag:again"}, "image", "not a valid image reference"),
        ({"resources": {"profile": "h100-8"}}, "resources.profile", "unknown profile 'h100-8'"),
        (
            {"framework": "tensorflow", "resources": {"procs_per_node": 2}},
            "resources.procs_per_node",
            "one worker per pod",
        ),
    ],
)
async def test_bad_input_is_refused_before_anything_is_created(
    jp_fetch, fake, change, field, words
):
    spec = {**TORCH, **change}
    status, body = await api(jp_fetch, "POST", "jobs", body=spec)
    assert status == 400, body
    assert body["message"].startswith(f"{field}: ") and words in body["message"], body
    status, page = await api(jp_fetch, "GET", "jobs")
    assert page["jobs"] == []
    assert fake.requests == []  # the cluster was never asked for anything


async def test_torch_job_through_the_api_streams_every_rank(jp_fetch, fake):
    job = await submit(jp_fetch, {**TORCH, "resources": {"nodes": 2}})
    name = f"{job['id']}-a1"
    deadline = time.monotonic() + 30
    while len(pods := fake.pod_names(name)) < 2:
        assert time.monotonic() < deadline, "no pods"
        await asyncio.sleep(0.1)
    await wait_job(jp_fetch, job["id"], {"running"})
    for rank, pod in enumerate(pods):
        fake.run_pod(pod)
        fake.log(pod, f"[rank{rank}]:loss {rank}.5")
        fake.finish_pod(pod, 0)
    done = await wait_job(jp_fetch, job["id"])
    assert done["status"] == "succeeded", done
    log = await job_log(jp_fetch, job["id"])
    assert "[rank0]:loss 0.5\n" in log and "[rank1]:loss 1.5\n" in log
    status, rank1 = await api(jp_fetch, "GET", "jobs", job["id"], "logs", rank="1")
    assert status == 200 and rank1 == "[rank1]:loss 1.5\n"


async def test_cancel_through_the_api_removes_the_job_from_the_cluster(jp_fetch, fake):
    job = await submit(jp_fetch, {**TORCH, "resources": {"nodes": 2}})
    await wait_job(jp_fetch, job["id"], {"running"})
    status, cancelled = await api(jp_fetch, "POST", "jobs", job["id"], "cancel")
    assert status == 200 and cancelled["status"] == "cancelled", cancelled
    assert fake.names("jobs") == fake.names("pods") == fake.names("services") == []
    assert fake.deletes[0]["propagationPolicy"] == "Foreground"


async def test_a_pending_job_says_why_in_its_reason(jp_fetch, fake):
    spec = {**TORCH, "resources": {"accelerator": "nvidia.com/gpu", "accelerator_count": 1}}
    job = await submit(jp_fetch, spec)
    deadline = time.monotonic() + 30
    while not (pods := fake.pod_names(f"{job['id']}-a1")):
        assert time.monotonic() < deadline, "no pod"
        await asyncio.sleep(0.1)
    fake.event(
        pods[0], "FailedScheduling", "0/3 nodes are available: 3 Insufficient nvidia.com/gpu."
    )
    while True:
        status, seen = await api(jp_fetch, "GET", "jobs", job["id"])
        if (seen["reason"] or "").startswith("pending: "):
            break
        assert time.monotonic() < deadline, seen
        await asyncio.sleep(0.1)
    assert seen["reason"] == (
        "pending: no node can run the pod (0/3 available): 3 node(s) lack free nvidia.com/gpu"
    )
    fake.run_pod(pods[0])
    fake.finish_pod(pods[0], 0)
    done = await wait_job(jp_fetch, job["id"])
    assert done["status"] == "succeeded" and not (done["reason"] or "").startswith("pending")
