"""Helpers shared by the benchmarks: the machine report, statistics, a real server, processes.

``Server`` runs ``jupyter server`` with aicloud on loopback with all of its state in one
directory; ``stop()`` leaves no process behind. ``on_sigterm`` turns SIGTERM (and SIGHUP) into
``SystemExit`` so that ``finally`` blocks stop servers and jobs on the way out.
"""

from __future__ import annotations

import contextlib
import json
import os
import platform
import signal
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import httpx
import psutil

import aicloud

JUPYTER = str(Path(sys.executable).with_name("jupyter"))
TOKEN = "bench-token-0123456789"
TERMINAL = ("succeeded", "failed", "cancelled")


# -- machine ----------------------------------------------------------------------------------


def cpu_model() -> str:
    """The CPU model named in /proc/cpuinfo, or what platform knows."""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


def machine() -> dict:
    """CPU, memory, OS, Python and aicloud versions."""
    return {
        "cpus": os.cpu_count(),
        "cpu_model": cpu_model(),
        "memory_gib": round(psutil.virtual_memory().total / 2**30, 1),
        "os": platform.platform(),
        "python": platform.python_version(),
        "aicloud": aicloud.__version__,
    }


def load_average() -> list[float]:
    """The 1, 5 and 15 minute load averages (the machine is shared)."""
    return [round(x, 2) for x in os.getloadavg()]


def now_iso() -> str:
    """The local time, to the second, for the results."""
    return datetime.now().astimezone().isoformat(timespec="seconds")


def describe_machine(m: dict) -> str:
    """One line for reports: cores, CPU, memory, versions."""
    return (
        f"machine: {m['cpus']} x {m['cpu_model']}, {m['memory_gib']} GiB, "
        f"Python {m['python']}, aicloud {m['aicloud']}"
    )


# -- statistics -------------------------------------------------------------------------------


def percentile(values: list[float], q: float) -> float:
    """The ``q``-th percentile (0-100), interpolated between closest ranks."""
    ordered = sorted(values)
    rank = (len(ordered) - 1) * q / 100
    low = int(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def summary(values: list[float]) -> dict:
    """p50, p90, p99, min and max of ``values`` (seconds), in milliseconds."""
    ms = [v * 1000 for v in values]
    return {
        "n": len(ms),
        "p50_ms": round(statistics.median(ms), 3),
        "p90_ms": round(percentile(ms, 90), 3),
        "p99_ms": round(percentile(ms, 99), 3),
        "min_ms": round(min(ms), 3),
        "max_ms": round(max(ms), 3),
    }


# -- server -----------------------------------------------------------------------------------


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Server:
    """A ``jupyter server`` with aicloud on loopback, all of its state under ``home``."""

    home: Path
    extra_args: tuple[str, ...] = ()
    port: int = field(default_factory=free_port)
    process: subprocess.Popen | None = None

    @property
    def root_dir(self) -> Path:
        """The server's root directory (jobs run here)."""
        return self.home / "root"

    @property
    def data_dir(self) -> Path:
        """aicloud's data directory: ``aicloud.db`` and ``runs/``."""
        return self.home / "data"

    @property
    def db_url(self) -> str:
        """The store the server will open (the default under ``data_dir``)."""
        return f"sqlite:///{self.data_dir / 'aicloud.db'}"

    @property
    def api_url(self) -> str:
        """Base URL of the aicloud API."""
        return f"http://127.0.0.1:{self.port}/aicloud/api/v1/"

    def run_dir(self, job_id: str) -> Path:
        """A job's run directory (its log, metrics, status files, checkpoints)."""
        return self.data_dir / "runs" / job_id

    def prepare(self) -> None:
        """Create the directories the server and the store need."""
        for name in ("root", "data", "jupyter/config", "jupyter/data", "jupyter/runtime"):
            (self.home / name).mkdir(parents=True, exist_ok=True)

    def start(self, timeout: float = 60) -> None:
        """Start the server and wait until the aicloud API answers."""
        env = {
            **os.environ,
            "JUPYTER_CONFIG_DIR": str(self.home / "jupyter/config"),
            "JUPYTER_DATA_DIR": str(self.home / "jupyter/data"),
            "JUPYTER_RUNTIME_DIR": str(self.home / "jupyter/runtime"),
        }
        argv = [
            JUPYTER,
            "server",
            "--no-browser",
            "--allow-root",
            f"--port={self.port}",
            "--ServerApp.ip=127.0.0.1",
            "--ServerApp.port_retries=0",
            f"--ServerApp.root_dir={self.root_dir}",
            f"--IdentityProvider.token={TOKEN}",
            f"--AICloudApp.data_dir={self.data_dir}",
            f"--AICloudApp.db_url={self.db_url}",
            *self.extra_args,
        ]
        with open(self.home / "server.log", "ab") as log:
            self.process = subprocess.Popen(
                argv, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )
        self._wait_ready(timeout)

    def _wait_ready(self, timeout: float) -> None:
        headers = {"Authorization": f"token {TOKEN}"}
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"server exited with {self.process.returncode}:{self.log()}")
            with contextlib.suppress(httpx.TransportError):
                code = httpx.get(self.api_url + "status", headers=headers).status_code
                if code == 200:
                    return
                # Extensions load before the server listens: a 404 means aicloud failed to load.
                raise RuntimeError(f"aicloud's API answers {code}; is it loaded?{self.log()}")
            time.sleep(0.1)
        raise TimeoutError(f"server did not answer within {timeout} s:{self.log()}")

    def log(self, lines: int = 40) -> str:
        """The tail of the server's log, for error messages."""
        text = (self.home / "server.log").read_text(errors="replace")
        return "\n" + "\n".join(text.splitlines()[-lines:])

    def client(self) -> httpx.Client:
        """A keep-alive HTTP client for the aicloud API."""
        return httpx.Client(
            base_url=self.api_url, headers={"Authorization": f"token {TOKEN}"}, timeout=60
        )

    def stop(self) -> None:
        """SIGTERM the server (SIGKILL after 20 s), then kill every process it left."""
        if self.process is None:
            return
        try:
            left = psutil.Process(self.process.pid).children(recursive=True)
        except psutil.NoSuchProcess:
            left = []
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.process.pid, signal.SIGKILL)
        for child in left:
            with contextlib.suppress(psutil.NoSuchProcess):
                child.kill()
        psutil.wait_procs(left, timeout=5)
        self.process = None


def tree_cpu_seconds(root: psutil.Process) -> float:
    """CPU seconds (user + system) used so far by ``root`` and its live descendants."""
    total = 0.0
    for process in [root, *root.children(recursive=True)]:
        with contextlib.suppress(psutil.Error):
            times = process.cpu_times()
            total += times.user + times.system
    return total


def wait_quiet(pid: int, max_load: float = 0.05, window: float = 1.0, timeout: float = 60) -> float:
    """Wait until ``pid`` and its descendants use under ``max_load`` cores; seconds waited.

    A fresh server does start-up work in the background for a few seconds (the warm notebook
    pool, JupyterLab's ``npm prefix -g``); measuring during it would charge it to the job.
    """
    root = psutil.Process(pid)
    began = time.monotonic()
    while time.monotonic() - began < timeout:
        before = tree_cpu_seconds(root)
        time.sleep(window)
        if (tree_cpu_seconds(root) - before) / window < max_load:
            break
    return time.monotonic() - began


@contextlib.contextmanager
def running_server(
    home: Path, extra_args: tuple[str, ...] = (), settle: bool = False
) -> Iterator[Server]:
    """A started :class:`Server` under ``home``, stopped (with all it started) on the way out.

    ``settle``: also wait until the server's start-up work in the background is done.
    """
    server = Server(home=home, extra_args=extra_args)
    server.prepare()
    try:
        server.start()
        if settle:
            wait_quiet(server.process.pid)
        yield server
    finally:
        server.stop()
        kill_job_leftovers(server.data_dir)


def kill_job_leftovers(data_dir: Path) -> None:
    """SIGKILL any process whose environment points into ``data_dir`` (jobs outlive servers)."""
    marker = str(data_dir)
    victims = []
    for process in psutil.process_iter():
        with contextlib.suppress(psutil.Error):
            if process.pid != os.getpid() and marker in process.environ().get(
                "AICLOUD_RUN_DIR", ""
            ):
                process.kill()
                victims.append(process)
    psutil.wait_procs(victims, timeout=5)


# -- jobs -------------------------------------------------------------------------------------


def read_stamp(stamp: Path, timeout: float = 30) -> float:
    """The start time the command wrote to ``stamp``, once it is there."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(FileNotFoundError, ValueError):
            return float(stamp.read_text())
        time.sleep(0.002)
    raise TimeoutError(f"{stamp} was not written within {timeout} s")


def parse_time(value: str) -> float:
    """An API timestamp (ISO 8601, Z) as seconds since the epoch."""
    return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()


def wait_terminal(
    client: httpx.Client, job_id: str, timeout: float = 30, interval: float = 0.02
) -> dict | None:
    """The job's model once it has ended, or None if it is still active after ``timeout``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = client.get(f"jobs/{job_id}").raise_for_status().json()
        if job["status"] in TERMINAL:
            return job
        time.sleep(interval)
    return None


def wait_ended(client: httpx.Client, job_id: str, timeout: float = 30) -> dict:
    """The job's model once it has ended; raise unless it succeeded."""
    job = wait_terminal(client, job_id, timeout)
    if job is None:
        raise TimeoutError(f"job {job_id} did not end within {timeout} s")
    if job["status"] != "succeeded":
        raise RuntimeError(f"job {job_id} {job['status']}: {job['reason']}")
    return job


def submit_job(client: httpx.Client, spec: dict) -> str:
    """``POST /jobs``; the new job's id, or an error that quotes the server's answer."""
    response = client.post("jobs", json=spec)
    if response.status_code != 201:
        raise RuntimeError(f"POST /jobs answered {response.status_code}: {response.text}")
    return response.json()["id"]


def cancel_and_wait(client: httpx.Client, job_id: str, timeout: float = 30) -> dict | None:
    """Cancel a job (ignoring one that already ended) and wait for it to end."""
    with contextlib.suppress(httpx.HTTPError):
        client.post(f"jobs/{job_id}/cancel")
    return wait_terminal(client, job_id, timeout)


# -- processes --------------------------------------------------------------------------------


def clean_env(drop: tuple[str, ...] = ()) -> dict[str, str]:
    """This process's environment without ``drop``: a base for launched processes."""
    return {k: v for k, v in os.environ.items() if k not in drop}


def stop_group(process: subprocess.Popen, grace: float = 10) -> None:
    """SIGTERM a process (its whole group if it leads one), then SIGKILL what is left.

    SIGKILL after ``grace`` seconds for whatever is left, including descendants that moved to
    sessions of their own (torchrun starts its workers in new sessions).
    """
    try:
        left = psutil.Process(process.pid).children(recursive=True)
        leader = os.getpgid(process.pid) == process.pid
    except (psutil.NoSuchProcess, ProcessLookupError):
        left, leader = [], False
    if process.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            if leader:
                os.killpg(process.pid, signal.SIGTERM)
            else:
                process.terminate()
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(timeout=grace)
    with contextlib.suppress(ProcessLookupError, PermissionError):
        if leader:
            os.killpg(process.pid, signal.SIGKILL)
        elif process.poll() is None:
            process.kill()
    with contextlib.suppress(subprocess.TimeoutExpired):
        process.wait(timeout=5)
    for child in left:
        with contextlib.suppress(psutil.NoSuchProcess):
            child.kill()
    psutil.wait_procs(left, timeout=5)


def on_sigterm(signum, frame):
    """Turn SIGTERM into SystemExit so that the server is stopped on the way out."""
    raise SystemExit(128 + signum)


def handle_signals() -> None:
    """SIGTERM and SIGHUP end the benchmark through ``finally`` blocks, like Ctrl-C does."""
    signal.signal(signal.SIGTERM, on_sigterm)
    signal.signal(signal.SIGHUP, on_sigterm)


def save_results(results: dict, out: Path) -> None:
    """Write a benchmark's results as JSON to ``out`` and say where, with the wall time."""
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2) + "\n")
    print(f"\nwall time {results['wall_seconds']} s; JSON in {out}")
