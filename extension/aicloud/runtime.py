"""The runtime API for code inside jobs: progress, checkpoints, ranks, process groups.

Every function is a harmless no-op (or a sensible default) outside aicloud, so a script that
uses it still runs with plain ``python`` or ``torchrun``::

    from aicloud import runtime

    runtime.init_distributed()             # torch: survives elastic restarts
    start = load(runtime.checkpoint_dir())  # same directory across restarts and retries
    for step in range(start, total):
        ...
        runtime.report(step=step, total=total, loss=loss)
"""

from __future__ import annotations

import atexit
import json
import os
import time
from pathlib import Path
from typing import Any

METRICS_FILE = "metrics.jsonl"


def _tf_task() -> tuple[int, int] | None:
    """(index, number of workers) from ``TF_CONFIG``, if set."""
    raw = os.environ.get("TF_CONFIG")
    if not raw:
        return None
    config = json.loads(raw)
    workers = config.get("cluster", {}).get("worker", [])
    return int(config.get("task", {}).get("index", 0)), max(1, len(workers))


def rank() -> int:
    """This process's global rank (torchrun's ``RANK``, or the TF worker index); 0 outside."""
    if "RANK" in os.environ:
        return int(os.environ["RANK"])
    task = _tf_task()
    return task[0] if task else 0


def local_rank() -> int:
    """The rank on this node (``LOCAL_RANK``); 0 outside."""
    return int(os.environ.get("LOCAL_RANK", "0"))


def world_size() -> int:
    """How many processes the job has; 1 outside."""
    if "WORLD_SIZE" in os.environ:
        return int(os.environ["WORLD_SIZE"])
    task = _tf_task()
    return task[1] if task else 1


def is_chief() -> bool:
    """Whether this process is rank 0 (the one that saves and reports)."""
    return rank() == 0


def restart_count() -> int:
    """How many times torchrun restarted the worker group in this attempt."""
    return int(os.environ.get("TORCHELASTIC_RESTART_COUNT", "0"))


def run_dir() -> Path | None:
    """The job's run directory, or None outside aicloud."""
    value = os.environ.get("AICLOUD_RUN_DIR")
    return Path(value) if value else None


def checkpoint_dir() -> Path:
    """A directory that survives elastic restarts and retries of this job (created)."""
    path = Path(os.environ.get("AICLOUD_CHECKPOINT_DIR", "checkpoints"))
    path.mkdir(parents=True, exist_ok=True)
    return path


def report(
    step: int | None = None, total: int | None = None, *, all_ranks: bool = False, **metrics: float
) -> None:
    """Record progress and metrics; the sidebar, widgets and ``/metrics`` show them.

    Only rank 0 reports unless ``all_ranks``; outside aicloud this does nothing.
    """
    directory = run_dir()
    if directory is None or (not all_ranks and not is_chief()):
        return
    point: dict[str, Any] = {"time": time.time(), "rank": rank(), "restart": restart_count()}
    if step is not None:
        point["step"] = int(step)
    if total is not None:
        point["total"] = int(total)
    point.update({name: float(value) for name, value in metrics.items()})
    line = json.dumps(point) + "\n"
    with open(directory / METRICS_FILE, "a") as f:
        f.write(line)


def _record_restart() -> None:
    directory = run_dir()
    if directory is None or not is_chief():
        return
    attempt = os.environ.get("AICLOUD_ATTEMPT", "1")
    (directory / f"attempt-{attempt}.restarts").write_text(str(restart_count()))


def init_distributed(backend: str | None = None, timeout_seconds: float = 300):
    """Initialise torch.distributed so that elastic restarts always recover.

    torchrun keeps one store across restarts of the worker group, and a restarted group can
    read a dead worker's stale address from it. This puts each restart's keys under their own
    prefix. Backend: ``nccl`` when this process has a GPU, else ``gloo``. Outside torchrun it
    initialises a group of one. Returns the default process group.
    """
    from datetime import timedelta

    import torch
    import torch.distributed as dist

    if dist.is_initialized():
        return dist.group.WORLD
    timeout = timedelta(seconds=timeout_seconds)
    if backend is None:
        backend = "nccl" if torch.cuda.is_available() else "gloo"
    if backend == "nccl":
        torch.cuda.set_device(local_rank())
    if "MASTER_ADDR" not in os.environ:
        dist.init_process_group(backend, store=dist.HashStore(), rank=0, world_size=1)
        return dist.group.WORLD
    agent_store = os.environ.get("TORCHELASTIC_USE_AGENT_STORE") == "True"
    store = dist.TCPStore(
        os.environ["MASTER_ADDR"],
        int(os.environ["MASTER_PORT"]),
        world_size(),
        is_master=not agent_store and rank() == 0,
        timeout=timeout,
        wait_for_workers=False,
    )
    prefixed = dist.PrefixStore(f"aicloud/restart_{restart_count()}/", store)
    dist.init_process_group(
        backend, store=prefixed, rank=rank(), world_size=world_size(), timeout=timeout
    )
    _record_restart()
    atexit.register(_destroy_at_exit)
    return dist.group.WORLD


def _destroy_at_exit() -> None:
    """Tear the process group down before the interpreter does, as torch asks of scripts.

    torch 2.13 with gloo can still abort at exit (``terminate called without an active
    exception``) even so; stock ``torchrun`` scripts do too. See the CHANGELOG.
    """
    import torch.distributed as dist

    if dist.is_initialized():
        dist.destroy_process_group()
