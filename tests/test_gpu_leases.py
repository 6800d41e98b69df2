"""GPU requests on the local backend: CUDA_VISIBLE_DEVICES per process, no GPU given twice.

No GPU exists on CI machines: ``tests/fakes/nvidia-smi`` is a named fake that reports two.
"""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

import pytest

from aicloud.backends.gpus import GPULeases, split
from tests.helpers import api, job_log, submit, wait_job

FAKES = Path(__file__).parent / "fakes"
SHOW_GPUS = [sys.executable, "-c", "import os; print(os.environ['CUDA_VISIBLE_DEVICES'])"]


@pytest.fixture
def two_fake_gpus(monkeypatch):
    """Put the fake nvidia-smi first on PATH before the server starts."""
    monkeypatch.setenv("PATH", f"{FAKES}{os.pathsep}{os.environ['PATH']}")


def test_leases():
    leases = GPULeases(devices=[0, 1, 2])
    assert leases.take(2) == [0, 1]
    leases.hold(100, [0, 1])
    assert leases.free == [2] and leases.take(2) is None
    leases.release(100)
    assert leases.take(3) == [0, 1, 2]
    assert split([0, 1, 2, 3], 2) == [[0, 1], [2, 3]]
    assert split([0, 1], 1) == [[0, 1]]
    assert split([], 2) == [[], []]


async def test_jobs_get_distinct_gpus_and_wait_for_busy_ones(two_fake_gpus, jp_fetch):
    gpu = {"accelerator": "nvidia.com/gpu", "accelerator_count": 1}
    holder = await submit(
        jp_fetch,
        {"command": ["sh", "-c", "echo $CUDA_VISIBLE_DEVICES; sleep 30"], "resources": gpu},
    )
    await wait_job(jp_fetch, holder["id"], statuses={"running"})
    second = await submit(jp_fetch, {"command": SHOW_GPUS, "resources": gpu})
    assert (await wait_job(jp_fetch, second["id"]))["status"] == "succeeded"
    both = {**gpu, "accelerator_count": 2}
    waiting = await submit(jp_fetch, {"command": SHOW_GPUS, "resources": both})
    for _ in range(40):
        _, job = await api(jp_fetch, "GET", "jobs", waiting["id"])
        if job["reason"]:
            break
        await asyncio.sleep(0.05)
    assert job["status"] == "queued"
    assert job["reason"] == "waiting for 2 nvidia.com/gpu (1 free)"
    await api(jp_fetch, "POST", "jobs", holder["id"], "cancel")
    assert (await wait_job(jp_fetch, waiting["id"]))["status"] == "succeeded"
    assert (await job_log(jp_fetch, holder["id"])).startswith("0\n")
    assert await job_log(jp_fetch, second["id"]) == "1\n"
    assert await job_log(jp_fetch, waiting["id"]) == "0,1\n"


async def test_jobs_without_gpus_see_none(two_fake_gpus, jp_fetch):
    job = await submit(jp_fetch, {"command": SHOW_GPUS})
    await wait_job(jp_fetch, job["id"])
    assert await job_log(jp_fetch, job["id"]) == "\n"


async def test_more_gpus_than_the_machine_has(two_fake_gpus, jp_fetch):
    body = {
        "command": ["true"],
        "resources": {"accelerator": "nvidia.com/gpu", "accelerator_count": 3},
    }
    status, error = await api(jp_fetch, "POST", "jobs", body=body)
    assert status == 400
    assert error["message"] == (
        "resources.accelerator_count: the job asks for 3 nvidia.com/gpu and this machine has 2"
    )
    body["resources"] = {"accelerator": "google.com/tpu", "accelerator_count": 1}
    status, error = await api(jp_fetch, "POST", "jobs", body=body)
    assert status == 400 and error["message"].startswith("resources.accelerator: the local")
    _, page = await api(jp_fetch, "GET", "jobs")
    assert page["total"] == 0
