"""Load for ``bench/serving.py``: ``wrk`` POSTing one fixed infer body, and what it measured.

``wrk`` (C, an event loop per thread) is the load generator, so that the client is never what
limits the servers: ``serving_servers/floor.py`` shows how far it goes on this machine. Each
cell is one ``wrk --latency`` run after a warm-up run; its req/s, p50 and p99 come from wrk's
report, the CPU that wrk and the server used from their process times.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import psutil

from _common import tree_cpu_seconds

LUA = Path(__file__).parent / "serving_servers" / "oip.lua"
UNITS_MS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60_000.0}
LATENCY = re.compile(r"^\s+(50|99)(?:\.0+)?%\s+([\d.]+)(us|ms|s|m)\s*$", re.MULTILINE)
RATE = re.compile(r"^Requests/sec:\s+([\d.]+)", re.MULTILINE)
TOTAL = re.compile(r"^\s+(\d+) requests in", re.MULTILINE)
NON_2XX = re.compile(r"Non-2xx or 3xx responses:\s+(\d+)")
SOCKET_ERRORS = re.compile(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)")


@dataclass
class Cell:
    """One measured run: throughput, latency, failures and the CPU each side used."""

    rps: float
    p50_ms: float
    p99_ms: float
    requests: int
    errors: int  # non-2xx answers plus socket errors (connect, read, write, timeout)
    wrk_cores: float  # CPU seconds of wrk per second of wall time
    server_cores: float  # the same for the server's process tree
    load1: float  # the machine's 1-minute load average when the cell began

    @property
    def cpu_ms_per_request(self) -> float:
        """The server's CPU time per answered request: what a request costs, whatever share
        of the cores the server got on a shared machine."""
        return 1000 * self.server_cores / self.rps if self.rps else 0.0

    def model(self) -> dict:
        """The JSON form."""
        fields = {**asdict(self), "cpu_ms_per_request": self.cpu_ms_per_request}
        return {k: round(v, 3) if isinstance(v, float) else v for k, v in fields.items()}


def ensure_wrk() -> str:
    """wrk's path; installed with apt-get when missing and this is root, else a fix-it error."""
    found = shutil.which("wrk")
    if found:
        return found
    if os.geteuid() == 0 and shutil.which("apt-get"):
        print("installing wrk (apt-get install -y wrk)", flush=True)
        install = ["apt-get", "install", "-y", "-q", "wrk"]
        if subprocess.run(install).returncode != 0:  # a machine that never ran apt-get update
            subprocess.run(["apt-get", "update", "-q"], check=True)
            subprocess.run(install, check=True)
        found = shutil.which("wrk")
    if not found:
        raise SystemExit("bench/serving.py needs wrk: apt-get install wrk (Debian, Ubuntu)")
    return found


def parse_report(text: str) -> dict:
    """req/s (of 2xx answers), p50, p99 (ms), requests and errors from ``wrk --latency``."""
    latencies = {q: float(v) * UNITS_MS[unit] for q, v, unit in LATENCY.findall(text)}
    rate, total = RATE.search(text), TOTAL.search(text)
    if rate is None or total is None or set(latencies) != {"50", "99"}:
        raise RuntimeError(f"cannot read wrk's report:\n{text}")
    non_2xx = NON_2XX.search(text)
    failed = int(non_2xx.group(1)) if non_2xx else 0
    sockets = SOCKET_ERRORS.search(text)
    errors = failed + (sum(int(n) for n in sockets.groups()) if sockets else 0)
    answered = int(total.group(1))
    return {  # req/s of 2xx answers only: a server that answers 503 fast is not fast
        "rps": float(rate.group(1)) * (answered - failed) / answered if answered else 0.0,
        "p50_ms": latencies["50"],
        "p99_ms": latencies["99"],
        "requests": int(total.group(1)),
        "errors": errors,
    }


@dataclass
class Load:
    """What wrk sends: the body file, connections, seconds, threads and auth header."""

    body: Path
    connections: int
    seconds: int
    threads: int = 2
    authorization: str | None = None


def run_wrk(wrk: str, url: str, load: Load, seconds: int) -> tuple[str, float]:
    """One wrk run against ``url``: its report and the CPU seconds it used."""
    env = {**os.environ, "WRK_BODY": str(load.body), "WRK_AUTH": load.authorization or ""}
    threads = min(load.threads, load.connections)
    argv = [wrk, f"-t{threads}", f"-c{load.connections}", f"-d{seconds}s", "--latency"]
    argv += ["--timeout", "10s", "-s", str(LUA), url]
    process = subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    report = process.stdout.read().decode(errors="replace")
    _, status, usage = os.wait4(process.pid, 0)
    process.returncode = os.waitstatus_to_exitcode(status)
    if process.returncode != 0:
        raise RuntimeError(f"wrk exited with {process.returncode}:\n{report}")
    return report, usage.ru_utime + usage.ru_stime


def measure(wrk: str, url: str, load: Load, server_pid: int, warmup: int) -> Cell:
    """A warm-up run, then the measured one, with wrk's and the server's CPU."""
    run_wrk(wrk, url, load, warmup)
    server = psutil.Process(server_pid)
    load1 = os.getloadavg()[0]
    server_before = tree_cpu_seconds(server)
    began = time.monotonic()
    report, wrk_cpu = run_wrk(wrk, url, load, load.seconds)
    wall = time.monotonic() - began
    server_cpu = tree_cpu_seconds(server) - server_before
    return Cell(
        **parse_report(report),
        wrk_cores=wrk_cpu / wall,
        server_cores=server_cpu / wall,
        load1=load1,
    )
