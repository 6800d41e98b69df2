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
import sys
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


def _torch_or_tf(variable: str, field: int, outside: int) -> int:
    """torchrun's ``variable``, else ``field`` of :func:`_tf_task`, else ``outside``."""
    if variable in os.environ:
        return int(os.environ[variable])
    task = _tf_task()
    return task[field] if task else outside


def rank() -> int:
    """This process's global rank (torchrun's ``RANK``, or the TF worker index); 0 outside."""
    return _torch_or_tf("RANK", 0, 0)


def local_rank() -> int:
    """The rank on this node (``LOCAL_RANK``); 0 outside."""
    return int(os.environ.get("LOCAL_RANK", "0"))


def world_size() -> int:
    """How many processes the job has (``WORLD_SIZE``, or the TF workers); 1 outside."""
    return _torch_or_tf("WORLD_SIZE", 1, 1)


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
    atexit.register(_destroy_at_exit)
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
    return dist.group.WORLD


# torch names the worker threads of its gloo backend so (``/proc/<pid>/task/<tid>/comm``).
GLOO_WORKER_THREAD = "pt_gloo_runloop"


def _destroy_at_exit() -> None:
    """Tear the process group down, then let gloo's worker threads go idle, before exit.

    Without the wait, torch 2.13 with gloo can abort at exit (``terminate called without an
    active exception``): a gloo worker thread that has just finished the last collective drops
    it, and the collective holds a Python object (the ``contextvars`` context that backward
    stashes), whose release takes the GIL. If that happens once the interpreter is finalizing,
    CPython ends the thread inside a C++ destructor and libstdc++ calls ``std::terminate``
    (pytorch/pytorch#190489). ``destroy_process_group`` does not stop those threads while a
    DDP model still holds the group, so this waits, with the GIL released, until they sleep.
    """
    import torch.distributed as dist

    if dist.is_initialized():
        dist.destroy_process_group()
    wait_for_gloo_workers()


def _thread_states(name: str) -> list[str] | None:
    """The scheduler states (``R``, ``S``, ``D``...) of this process's threads called ``name``.

    None where ``/proc`` cannot tell (not Linux).
    """
    try:
        tids = os.listdir("/proc/self/task")
    except OSError:
        return None
    states = []
    for tid in tids:
        try:
            with open(f"/proc/self/task/{tid}/stat") as f:
                stat = f.read()
        except OSError:  # the thread ended meanwhile
            continue
        if stat[stat.index("(") + 1 : stat.rindex(")")] == name:
            states.append(stat[stat.rindex(")") + 2])
    return states


def wait_for_gloo_workers(
    timeout: float = 5.0, quiet_polls: int = 5, interval: float = 0.002
) -> bool:
    """Sleep, GIL released, until gloo's worker threads have slept for ``quiet_polls`` polls.

    An idle worker sleeps on its queue; one still releasing a finished collective is running
    or waiting for the GIL, which it gets while this sleeps. Returns whether they went quiet
    within ``timeout`` seconds (True at once when there are none, or off Linux after a short
    sleep), and says so on stderr when they did not; it never blocks longer than ``timeout``.
    """
    if _thread_states(GLOO_WORKER_THREAD) is None:
        time.sleep(0.05)
        return True
    deadline = time.monotonic() + timeout
    quiet = 0
    while quiet < quiet_polls:
        states = _thread_states(GLOO_WORKER_THREAD) or []
        quiet = quiet + 1 if all(state == "S" for state in states) else 0
        if not states:
            return True
        if time.monotonic() > deadline:
            print(
                f"aicloud: gloo worker threads still busy {timeout:g} s after the run; exiting "
                "anyway (torch may abort with 'terminate called without an active exception')",
                file=sys.stderr,
                flush=True,
            )
            return False
        time.sleep(interval)
    return True
