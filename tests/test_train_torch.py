"""Distributed torch training through torchrun: correctness, elastic restarts, node loss."""

from __future__ import annotations

import asyncio
import shutil
import signal
from pathlib import Path

import psutil
import pytest
import torch

from tests.helpers import api, job_log, submit, wait_job

SCRIPT = Path(__file__).parent / "scripts" / "ddp_train.py"


@pytest.fixture
def train_script(jp_root_dir) -> str:
    shutil.copy(SCRIPT, jp_root_dir / "ddp_train.py")
    return "ddp_train.py"


def train_spec(script: str, steps: int, out: str, nodes=1, procs=1, pause=0.0, **extra) -> dict:
    return {
        "kind": "train",
        "framework": "torch",
        "script": script,
        "args": [str(steps), out, str(pause)],
        "resources": {"nodes": nodes, "procs_per_node": procs, **extra.pop("resources", {})},
        **extra,
    }


def job_processes(job_id: str) -> list[psutil.Process]:
    """Every live process started for a job (they all carry AICLOUD_JOB_ID)."""
    found = []
    for process in psutil.process_iter(["environ", "status"]):
        env = process.info["environ"] or {}
        if env.get("AICLOUD_JOB_ID") == job_id and process.info["status"] != psutil.STATUS_ZOMBIE:
            found.append(process)
    return found


def worker(job_id: str, rank: int) -> psutil.Process | None:
    for process in job_processes(job_id):
        if (process.info["environ"] or {}).get("RANK") == str(rank):
            return process
    return None


async def wait_step(jp_fetch, job_id: str, step: int, timeout: float = 120) -> None:
    for _ in range(int(timeout / 0.1)):
        _, metrics = await api(jp_fetch, "GET", "jobs", job_id, "metrics")
        if metrics["progress"] and metrics["progress"]["step"] >= step:
            return
        await asyncio.sleep(0.1)
    raise TimeoutError(f"{job_id} never reached step {step}")


def load(path: Path) -> dict[str, torch.Tensor]:
    return torch.load(path)


def assert_same_weights(a: Path, b: Path) -> None:
    first, second = load(a), load(b)
    assert first.keys() == second.keys()
    for name in first:
        torch.testing.assert_close(first[name], second[name], rtol=1e-5, atol=1e-6)


async def test_ddp_matches_one_process_and_two_nodes(jp_fetch, jp_root_dir, train_script):
    single = await submit(jp_fetch, train_spec(train_script, 6, "one.pt"))
    assert (await wait_job(jp_fetch, single["id"], timeout=120))["status"] == "succeeded"
    ddp = await submit(jp_fetch, train_spec(train_script, 6, "ddp.pt", procs=2))
    job = await wait_job(jp_fetch, ddp["id"], timeout=120)
    assert job["status"] == "succeeded", await job_log(jp_fetch, ddp["id"])
    assert_same_weights(jp_root_dir / "one.pt", jp_root_dir / "ddp.pt")

    two_nodes = await submit(jp_fetch, train_spec(train_script, 6, "nodes.pt", nodes=2))
    job = await wait_job(jp_fetch, two_nodes["id"], timeout=180)
    assert job["status"] == "succeeded", await job_log(jp_fetch, two_nodes["id"])
    assert_same_weights(jp_root_dir / "one.pt", jp_root_dir / "nodes.pt")

    log = await job_log(jp_fetch, ddp["id"])
    for rank in (0, 1):
        assert f"[rank{rank}]:step 5 loss" in log
    status, rank1 = await api(jp_fetch, "GET", "jobs", ddp["id"], "logs", rank="1")
    assert (
        status == 200
        and rank1.strip()
        and all(line.startswith("[rank1]:") for line in rank1.splitlines())
    )
    _, metrics = await api(jp_fetch, "GET", "jobs", ddp["id"], "metrics")
    assert metrics["progress"] == {"step": 6, "total": 6, "fraction": 1.0}
    assert len(metrics["points"]) == 6 and "loss" in metrics["latest"]


async def test_elastic_restart_resumes_from_checkpoint(jp_fetch, jp_root_dir, train_script):
    reference = await submit(jp_fetch, train_spec(train_script, 12, "reference.pt"))
    assert (await wait_job(jp_fetch, reference["id"], timeout=120))["status"] == "succeeded"
    for run in range(2):
        out = f"elastic-{run}.pt"
        job = await submit(
            jp_fetch, train_spec(train_script, 12, out, procs=2, pause=0.2, max_restarts=3)
        )
        await wait_step(jp_fetch, job["id"], 3)
        victim = worker(job["id"], 1)
        assert victim is not None
        victim.send_signal(signal.SIGKILL)
        done = await wait_job(jp_fetch, job["id"], timeout=180)
        log = await job_log(jp_fetch, job["id"])
        assert done["status"] == "succeeded", log
        assert done["restarts"] == 1 and done["attempts"][0]["restarts"] == 1
        assert "resumed at step" in log
        assert_same_weights(jp_root_dir / "reference.pt", jp_root_dir / out)


async def test_losing_a_node_is_survivable(jp_fetch, jp_root_dir, train_script):
    spec = train_spec(
        train_script,
        14,
        "survivor.pt",
        nodes=2,
        pause=0.3,
        max_restarts=3,
        resources={"min_nodes": 1},
    )
    job = await submit(jp_fetch, spec)
    await wait_step(jp_fetch, job["id"], 3, timeout=180)
    node = next(
        p
        for p in job_processes(job["id"])
        if any(arg.endswith("/node-1") for arg in p.cmdline())
        and "torch.distributed.run" in " ".join(p.cmdline())
    )
    victims = [node, *node.children(recursive=True)]
    for victim in victims:
        victim.send_signal(signal.SIGKILL)
    done = await wait_job(jp_fetch, job["id"], timeout=240)
    log = await job_log(jp_fetch, job["id"])
    assert done["status"] == "succeeded", log
    assert "resumed at step" in log and "with world size 1" in log
    reference = await submit(jp_fetch, train_spec(train_script, 14, "reference.pt"))
    await wait_job(jp_fetch, reference["id"], timeout=120)
    assert_same_weights(jp_root_dir / "reference.pt", jp_root_dir / "survivor.pt")


async def test_cancel_stops_every_rank_and_agent(jp_fetch, train_script):
    job = await submit(
        jp_fetch, train_spec(train_script, 1000, "never.pt", nodes=2, procs=2, pause=0.5)
    )
    await wait_step(jp_fetch, job["id"], 1, timeout=180)
    assert len(job_processes(job["id"])) >= 7  # store, 2 agents, 4 workers
    status, cancelled = await api(jp_fetch, "POST", "jobs", job["id"], "cancel")
    assert status == 200 and cancelled["status"] == "cancelled"
    assert job_processes(job["id"]) == []


BAD_TRAIN = [
    ({"resources": {"nodes": 0}}, "resources.nodes"),
    ({"resources": {"procs_per_node": 300}}, "resources.procs_per_node"),
    ({"resources": {"nodes": 16, "procs_per_node": 8}}, "resources: 128 processes"),
    ({"framework": "jax"}, "framework"),
    ({"script": "missing.py"}, "script: 'missing.py' not found"),
    ({"resources": {"nodes": 2, "min_nodes": 3}}, "resources: min_nodes (3) must not exceed"),
    ({"script": None, "command": ["python", "x.py"]}, "command: train jobs run a script"),
]


@pytest.mark.parametrize("change,text", BAD_TRAIN)
async def test_bad_train_specs(jp_fetch, train_script, change, text):
    spec = {"kind": "train", "framework": "torch", "script": train_script}
    for key, value in change.items():
        if value is None:
            spec.pop(key)
        else:
            spec[key] = value
    status, error = await api(jp_fetch, "POST", "jobs", body=spec)
    assert status == 400 and text in error["message"], error
    _, page = await api(jp_fetch, "GET", "jobs")
    assert page["total"] == 0
