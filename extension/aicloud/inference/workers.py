"""Several server processes on one port: the primary spawns the others (SO_REUSEPORT).

Each worker is ``python -m aicloud.inference.server`` with the primary's arguments plus
``--worker-index`` and ``--bound-port``: it loads the model, binds the primary's port with
SO_REUSEPORT (the kernel spreads connections across the processes), marks itself ready with a
file in the shared directory (also prometheus_client's multiprocess directory), and stops
when the primary does, or when the primary is gone.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

#: prometheus_client reads it when imported: set it before (see metrics).
MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
READY_PREFIX = "ready-"
STOP_TIMEOUT = 20.0


def ready_marker(shared: Path, index: int) -> Path:
    """The file that says worker ``index`` serves."""
    return shared / f"{READY_PREFIX}{index}"


def spawn(argv: list[str], count: int, port: int, shared: Path) -> list[subprocess.Popen]:
    """Start workers 1 to ``count - 1`` (the primary is worker 0)."""
    env = {**os.environ, MULTIPROC_ENV: str(shared)}
    return [
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "aicloud.inference.server",
                *argv,
                f"--worker-index={index}",
                f"--bound-port={port}",
            ],
            env=env,
        )
        for index in range(1, count)
    ]


async def wait_ready(workers: list[subprocess.Popen], shared: Path, timeout: float) -> None:
    """Return once every worker has marked itself ready; raise if one exits or is late."""
    deadline = time.monotonic() + timeout
    for index, worker in enumerate(workers, start=1):
        while not ready_marker(shared, index).exists():
            if worker.poll() is not None:
                raise RuntimeError(f"server worker {index} exited with {worker.returncode}")
            if time.monotonic() > deadline:
                raise TimeoutError(f"server worker {index} is not ready after {timeout:.0f} s")
            await asyncio.sleep(0.05)


def stop(workers: list[subprocess.Popen]) -> None:
    """SIGTERM every worker and wait for them (SIGKILL after ``STOP_TIMEOUT``)."""
    for worker in workers:
        if worker.poll() is None:
            worker.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + STOP_TIMEOUT
    for worker in workers:
        try:
            worker.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            worker.kill()
            worker.wait()


async def watch_parent(stop_event: asyncio.Event, interval: float = 1.0) -> None:
    """Set ``stop_event`` once the primary (this process's parent) is gone."""
    parent = os.getppid()
    while not stop_event.is_set():
        if os.getppid() != parent:
            stop_event.set()
            return
        await asyncio.sleep(interval)
