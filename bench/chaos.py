"""Fault injection on a real aicloud server: server, supervisor kills, cut cancels, full disk.

Every job runs ``workloads/chaos_worker.py``, which appends ``start``/``term``/``end`` lines
(pid, attempt, rank, time, exit code) to a marker file outside the server's data dir, and
notes at start any live process of the same job from another attempt. From those files the
benchmark knows how many times each job really ran, whether two runs overlapped and how each
run really ended, and compares that with the job's final status in the API. It uses only the
public surfaces: ``jupyter server`` (started and SIGKILLed on one data dir), the REST API,
files and /proc.

Rounds (each ends with a fresh server and a bounded wait until every job is terminal):

- ``launch``: SIGKILL the server at a uniformly random delay in [0, 200 ms] after a 201.
- ``running``: SIGKILL the server while its jobs run (and others end while it is down).
- ``supervisor``: SIGKILL the supervisor of attempt 1 (command and torch jobs, ``max_retries``
  1); attempt 1 sleeps 60 s, so any of its processes left alive is found.
- ``cancel``: cancel jobs that ignore SIGTERM, then SIGKILL the server within 150 ms.
- ``disk``: the data dir on a 4 MiB tmpfs, filled while jobs run, then freed.

Counts: double runs (more runs than attempts allowed, two runs of one attempt, or a run that
started while another attempt's process lived), surviving processes (tagged with the job's
``AICLOUD_JOB_ID``, or its supervisor, alive after the job is terminal), wrong statuses (final
status against the last run's real outcome; a job of the kill rounds that ended without ever
running; a supervisor kill that got no retry), lost cancels (the cancel reached the job, which
then ran to the end) and stuck jobs (not terminal in time). Exit 1 if any is non-zero.

    .venv/bin/python bench/chaos.py [--kills 200] [--supervisor-kills 20] [--cancels 20]
        [--quick] [--seed N] [--skip-disk]
"""

from __future__ import annotations

import argparse
import contextlib
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import psutil

from _common import (
    TERMINAL,
    Server,
    describe_machine,
    free_port,
    handle_signals,
    kill_job_leftovers,
    load_average,
    machine,
    now_iso,
    save_results,
)

HERE = Path(__file__).resolve().parent
WORKER = HERE / "workloads" / "chaos_worker.py"
OUT = HERE / "out" / "chaos.json"
SERVER_ARGS = (
    "--AICloudApp.notebook_pool_size=0",
    "--LocalBackend.cancel_grace_seconds=1",
)
COUNTS = ("double_runs", "survivors", "wrong_statuses", "lost_cancels", "stuck")


@dataclass
class Run:
    """One process start seen in a marker file (one rank of one attempt)."""

    pid: int
    attempt: str
    rank: str
    start: float
    others: str
    end: float | None = None
    code: int | None = None
    term: bool = False


@dataclass
class Tracked:
    """A job the benchmark submitted, with what it expects of it."""

    id: str
    marker: Path
    ranks: int = 1
    max_retries: int = 0
    must_run: bool = True  # a job that ends without ever running is a wrong status
    supervisor_killed: bool = False
    cancel_answer: str | None = None  # "200", "409", "cut" (no answer: the server died)
    final: dict | None = None
    problems: list[str] = field(default_factory=list)


class Chaos:
    """One server home, the jobs of one round, and every process to clean up."""

    def __init__(self, home: Path, rng: random.Random) -> None:
        self.home = home
        self.rng = rng
        self.markers = home / "markers"
        self.markers.mkdir(parents=True, exist_ok=True)
        self.server = Server(home=home / "server", extra_args=SERVER_ARGS)
        self.server.prepare()
        self.client: httpx.Client | None = None
        self.jobs: list[Tracked] = []
        self.server_groups: set[int] = set()
        self.kills = 0

    # -- server ---------------------------------------------------------------------------

    def start(self) -> None:
        self.server.port = free_port()
        self.server.start(timeout=90)
        self.server_groups.add(self.server.process.pid)
        if self.client is not None:
            self.client.close()
        self.client = self.server.client()
        self.client.timeout = httpx.Timeout(30)

    def crash(self) -> None:
        """SIGKILL the server process alone, as a crash would."""
        if self.server.process is None:
            return
        self.server.process.kill()
        self.server.process.wait()
        self.server.process = None
        self.kills += 1

    def ensure_up(self) -> None:
        if self.server.process is None or self.server.process.poll() is not None:
            self.server.process = None
            self.start()

    # -- jobs -----------------------------------------------------------------------------

    def submit(
        self,
        *,
        code: int,
        sleep1: float,
        sleep2: float = 0.3,
        torch: bool = False,
        trap: bool = False,
        chatty: bool = False,
        max_retries: int = 0,
        must_run: bool = True,
    ) -> Tracked | None:
        """POST a worker job; None unless the server answered 201."""
        marker = self.markers / f"{len(self.jobs)}-{os.getpid()}.log"
        args = [str(marker), str(code), str(sleep1), str(sleep2), "1" if trap else "0"]
        args.append("1" if chatty else "0")
        spec: dict = {"name": "chaos", "max_retries": max_retries, "tags": ["chaos"]}
        if torch:
            script = self.server.root_dir / WORKER.name  # a script must lie in the root
            if not script.exists():
                shutil.copy(WORKER, script)
            spec |= {
                "kind": "train",
                "framework": "torch",
                "script": WORKER.name,
                "args": args,
                "resources": {"procs_per_node": 2},
            }
        else:
            spec |= {"kind": "command", "command": [sys.executable, "-I", "-S", str(WORKER), *args]}
        try:
            response = self.client.post("jobs", json=spec)
        except httpx.HTTPError:
            return None
        if 400 <= response.status_code < 500:  # the benchmark's own mistake: say it
            raise RuntimeError(f"the server refused a chaos job: {response.text}")
        if response.status_code != 201:
            return None
        job = Tracked(
            id=response.json()["id"],
            marker=marker,
            ranks=2 if torch else 1,
            max_retries=max_retries,
            must_run=must_run,
        )
        self.jobs.append(job)
        return job

    def wait_started(self, jobs: list[Tracked], attempt: str = "1", timeout: float = 20) -> bool:
        """Wait until every rank of ``attempt`` of ``jobs`` has written its start line."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if all(
                len({r.rank for r in read_runs(j.marker) if r.attempt == attempt}) >= j.ranks
                for j in jobs
            ):
                return True
            time.sleep(0.02)
        return False

    def wait_terminal(self, timeout: float) -> None:
        """Poll every job until it is terminal, at most ``timeout`` seconds in all."""
        deadline = time.monotonic() + timeout
        pending = [j for j in self.jobs if j.final is None or j.final["status"] not in TERMINAL]
        while pending and time.monotonic() < deadline:
            for job in list(pending):
                with contextlib.suppress(httpx.HTTPError, ValueError):
                    model = self.client.get(f"jobs/{job.id}").json()
                    job.final = model
                    if model.get("status") in TERMINAL:
                        pending.remove(job)
            if pending:
                time.sleep(0.2)

    # -- processes ------------------------------------------------------------------------

    def job_processes(self) -> dict[str, list[psutil.Process]]:
        """Live processes of this round's jobs: tagged with AICLOUD_JOB_ID, or supervisors."""
        ids = {j.id for j in self.jobs}
        found: dict[str, list[psutil.Process]] = {}
        for process in psutil.process_iter(["cmdline"]):
            if process.pid == os.getpid():
                continue
            with contextlib.suppress(psutil.Error):
                if process.status() == psutil.STATUS_ZOMBIE:
                    continue
                job_id = process.environ().get("AICLOUD_JOB_ID")
                if job_id not in ids:
                    cmdline = " ".join(process.info["cmdline"] or [])
                    if "supervise.py" not in cmdline:
                        continue
                    job_id = next((i for i in ids if f"/{i}/" in cmdline), None)
                if job_id is not None:
                    found.setdefault(job_id, []).append(process)
        return found

    def supervisor_of(self, job: Tracked, attempt: int) -> psutil.Process | None:
        for process in psutil.process_iter(["cmdline"]):
            with contextlib.suppress(psutil.Error):
                cmdline = " ".join(process.info["cmdline"] or [])
                if (
                    "supervise.py" in cmdline
                    and f"/{job.id}/" in cmdline
                    and f"attempt-{attempt}." in cmdline
                    and process.status() != psutil.STATUS_ZOMBIE
                ):
                    return process
        return None

    def kill_everything(self) -> None:
        """SIGKILL what the round's jobs and servers left (after counting)."""
        victims = [p for ps in self.job_processes().values() for p in ps]
        for process in victims:
            with contextlib.suppress(psutil.Error):
                process.kill()
        psutil.wait_procs(victims, timeout=5)
        for group in self.server_groups:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(group, signal.SIGKILL)
        kill_job_leftovers(self.server.data_dir)

    # -- judging --------------------------------------------------------------------------

    def finish_round(self, timeout: float) -> dict:
        """Restart the server, wait for every job, count, and clean up."""
        with contextlib.suppress(Exception):
            self.crash_free_restart()
        self.wait_terminal(timeout)
        time.sleep(1.0)  # a supervisor exits just after its status is read
        alive = self.job_processes()
        counts = dict.fromkeys(COUNTS, 0)
        cut = 0
        for job in self.jobs:
            for name in judge(job, alive.get(job.id, [])):
                counts[name] += 1
            cut += job.cancel_answer == "cut"
        self.kill_everything()
        return {
            **counts,
            "jobs": len(self.jobs),
            "server_kills": self.kills,
            "supervisor_kills": sum(j.supervisor_killed for j in self.jobs),
            "cancels_cut": cut,
            "problems": [f"{j.id}: {p}" for j in self.jobs for p in j.problems][:50],
        }

    def crash_free_restart(self) -> None:
        if self.server.process is not None and self.server.process.poll() is None:
            self.crash()
            self.kills -= 1  # the restart between rounds is not a measured kill
        self.server.process = None
        self.start()

    def close(self) -> None:
        if self.client is not None:
            self.client.close()
        if self.server.process is not None:
            self.server.stop()
        self.kill_everything()


def read_runs(marker: Path) -> list[Run]:
    """The runs a marker file records, in start order."""
    runs: dict[int, Run] = {}
    with contextlib.suppress(FileNotFoundError):
        for line in marker.read_text().splitlines():
            parts = line.split()
            if len(parts) < 5:
                continue
            kind, pid = parts[0], int(parts[1])
            if kind == "start":
                runs[pid] = Run(pid, parts[2], parts[3], float(parts[4]), parts[5])
            elif pid in runs and kind == "end":
                runs[pid].end, runs[pid].code = float(parts[4]), int(parts[5])
            elif pid in runs and kind == "term":
                runs[pid].term = True
    return sorted(runs.values(), key=lambda r: r.start)


def judge(job: Tracked, alive: list[psutil.Process]) -> list[str]:
    """The counts this job adds: compare its final status with what its runs really did."""
    found: list[str] = []
    status = (job.final or {}).get("status")
    runs = read_runs(job.marker)
    rank0 = [r for r in runs if r.rank == "0"]

    def problem(count: str, why: str) -> None:
        if count not in found:
            found.append(count)
        job.problems.append(f"{count}: {why} (status {status}, runs {len(rank0)})")

    if status not in TERMINAL:
        problem("stuck", "not terminal in time")
        return found
    if len(rank0) > job.max_retries + 1:
        problem("double_runs", f"{len(rank0)} runs, {job.max_retries + 1} allowed")
    attempts = [r.attempt for r in rank0]
    if len(set(attempts)) < len(attempts):
        problem("double_runs", f"attempt started twice: {attempts}")
    if any(r.others != "-" for r in runs):
        problem("double_runs", "a run started while another attempt's process lived")
    if alive:
        names = ",".join(f"{p.pid}" for p in alive)
        problem("survivors", f"{len(alive)} processes alive after {status}: {names}")
    live_pids = {p.pid for p in alive}

    if not rank0:
        if status == "cancelled" or (not job.must_run and status == "failed"):
            return found
        problem("wrong_statuses", "ended without ever running")
        return found
    last = rank0[-1]
    last_ranks = [r for r in runs if r.attempt == last.attempt]
    if job.supervisor_killed and job.max_retries and len(rank0) < 2:
        problem("wrong_statuses", "supervisor killed with a retry left, but no retry ran")
        return found
    cancel_reached = job.cancel_answer == "200" or any(r.term for r in runs)
    if any(r.pid in live_pids and r.end is None for r in last_ranks):
        problem("wrong_statuses", "terminal while its process still runs")
    elif all(r.end is not None for r in last_ranks):
        real = "succeeded" if all(r.code == 0 for r in last_ranks) else "failed"
        if cancel_reached and status != "cancelled":
            problem("lost_cancels", f"cancel reached the job, which then {real}")
        elif status != real:
            problem("wrong_statuses", f"process {real}")
    else:  # a rank of the last attempt was killed
        if cancel_reached or job.cancel_answer == "cut":
            if status != "cancelled":
                problem("wrong_statuses", "cancelled and killed, but not reported cancelled")
        elif status not in ("failed", "cancelled"):
            problem("wrong_statuses", "killed, but reported succeeded")
    return found


# -- rounds -------------------------------------------------------------------------------


def outcome(rng: random.Random) -> int:
    return rng.choice((0, 0, 1, 3))


def round_launch(chaos: Chaos, kills: int, per_life: int = 2) -> None:
    """Kills at U(0, 200 ms) after the last 201 of each server life."""
    rng = chaos.rng
    while chaos.kills < kills:
        chaos.ensure_up()
        for _ in range(per_life):
            chaos.submit(code=outcome(rng), sleep1=rng.uniform(0.1, 1.5))
        time.sleep(rng.uniform(0, 0.2))
        chaos.crash()


def round_running(chaos: Chaos, kills: int, per_life: int = 2) -> None:
    """Kills while jobs run: after their start, at U(0, 300 ms); older jobs end meanwhile."""
    rng = chaos.rng
    while chaos.kills < kills:
        chaos.ensure_up()
        jobs = [
            chaos.submit(code=outcome(rng), sleep1=rng.uniform(0.3, 3)) for _ in range(per_life)
        ]
        chaos.wait_started([j for j in jobs if j is not None], timeout=10)
        time.sleep(rng.uniform(0, 0.3))
        chaos.crash()


def round_supervisor(chaos: Chaos, kills: int, batch: int = 4) -> None:
    """SIGKILL attempt 1's supervisor, half command jobs, half torch jobs (max_retries 1)."""
    rng = chaos.rng
    chaos.ensure_up()
    done = 0
    while done < kills:
        torch = done >= (kills + 1) // 2
        size = min(batch, kills - done, 2 if torch else batch)
        jobs = [
            chaos.submit(code=outcome(rng), sleep1=60, sleep2=0.3, torch=torch, max_retries=1)
            for _ in range(size)
        ]
        jobs = [j for j in jobs if j is not None]
        chaos.wait_started(jobs, timeout=60)
        for job in jobs:
            supervisor = chaos.supervisor_of(job, 1)
            if supervisor is None:
                job.problems.append("no supervisor of attempt 1 found to kill")
                continue
            with contextlib.suppress(psutil.Error):
                supervisor.kill()
                job.supervisor_killed = True
        done += size
        chaos.wait_terminal(60)


def round_cancel(chaos: Chaos, cancels: int, per_life: int = 2) -> None:
    """Cancel jobs that ignore SIGTERM, then SIGKILL the server at U(0, 150 ms)."""
    rng = chaos.rng
    done = 0
    while done < cancels:
        chaos.ensure_up()
        jobs = [chaos.submit(code=0, sleep1=5, trap=True) for _ in range(per_life)]
        jobs = [j for j in jobs if j is not None]
        chaos.wait_started(jobs, timeout=10)
        threads = []
        for job in jobs:

            def cancel(job: Tracked = job, port: int = chaos.server.port) -> None:
                url = chaos.server.api_url
                try:
                    with httpx.Client(headers=chaos.client.headers, timeout=30) as c:
                        job.cancel_answer = str(c.post(f"{url}jobs/{job.id}/cancel").status_code)
                except httpx.HTTPError:
                    job.cancel_answer = "cut"

            threads.append(threading.Thread(target=cancel, daemon=True))
            threads[-1].start()
        time.sleep(rng.uniform(0, 0.15))
        chaos.crash()
        for thread in threads:
            thread.join(30)
        done += len(jobs)


def round_disk(chaos: Chaos, jobs: int) -> dict:
    """The data dir on a 4 MiB tmpfs, filled while jobs run and print, then freed."""
    rng = chaos.rng
    info: dict = {"posts_while_full": {}}
    chaos.ensure_up()
    batch = [chaos.submit(code=outcome(rng), sleep1=3, chatty=True) for _ in range(jobs)]
    chaos.wait_started([j for j in batch if j is not None], timeout=30)
    fill = chaos.server.data_dir / "fill"
    with open(fill, "wb") as f, contextlib.suppress(OSError):
        while True:
            f.write(b"\0" * 65536)
            f.flush()
    info["filled_bytes"] = fill.stat().st_size
    for _ in range(2):  # jobs submitted while the disk is full may fail, never lie
        try:
            code = chaos.client.post(
                "jobs", json={"command": [sys.executable, "-I", "-S", str(WORKER), "x"]}
            ).status_code
        except httpx.HTTPError as error:
            code = type(error).__name__
        info["posts_while_full"][str(code)] = info["posts_while_full"].get(str(code), 0) + 1
    for job in batch:
        if job is not None:
            job.must_run = False
    time.sleep(3)
    info["server_alive_while_full"] = (
        chaos.server.process is not None and chaos.server.process.poll() is None
    )
    fill.unlink()
    return info


# -- main ---------------------------------------------------------------------------------


def mount_tmpfs(path: Path) -> bool:
    path.mkdir(parents=True, exist_ok=True)
    result = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(path)], capture_output=True
    )
    if result.returncode != 0:
        print(f"disk round skipped: mount failed: {result.stderr.decode().strip()}")
    return result.returncode == 0


def run_round(name: str, base: Path, rng: random.Random, body, timeout: float) -> dict:
    began = time.monotonic()
    home = base / name
    chaos = Chaos(home, rng)
    mounted = False
    extra: dict = {}
    try:
        if name == "disk":
            mounted = mount_tmpfs(chaos.server.data_dir)
            if not mounted:
                return {"skipped": True}
        result = body(chaos)
        if isinstance(result, dict):
            extra = result
        counts = chaos.finish_round(timeout)
    finally:
        chaos.close()
        if mounted:
            subprocess.run(["umount", "-l", str(chaos.server.data_dir)], check=False)
    counts |= extra
    counts["seconds"] = round(time.monotonic() - began, 1)
    print(
        f"{name:<11} {counts['jobs']:>5} {counts['server_kills']:>6} "
        f"{counts['supervisor_kills']:>6} {counts['cancels_cut']:>5} "
        + " ".join(f"{counts[c]:>7}" for c in COUNTS)
        + f" {counts['seconds']:>7}",
        flush=True,
    )
    return counts


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--kills", type=int, default=200, help="server kills (rounds 1 and 2)")
    parser.add_argument("--supervisor-kills", type=int, default=20)
    parser.add_argument("--cancels", type=int, default=20, help="cancels cut by a server kill")
    parser.add_argument("--disk-jobs", type=int, default=6)
    parser.add_argument("--quick", action="store_true", help="a small run of each round")
    parser.add_argument("--seed", type=int, default=16)
    parser.add_argument("--skip-disk", action="store_true")
    parser.add_argument("--only", help="comma-separated rounds to run")
    args = parser.parse_args()
    if args.quick:
        args.kills, args.supervisor_kills, args.cancels, args.disk_jobs = 10, 4, 4, 4
    handle_signals()
    rng = random.Random(args.seed)
    began = time.monotonic()
    print(describe_machine(machine()), f"load {load_average()}", f"seed {args.seed}")
    rounds = {
        "launch": (lambda c: round_launch(c, args.kills // 2), 120),
        "running": (lambda c: round_running(c, args.kills - args.kills // 2), 120),
        "supervisor": (lambda c: round_supervisor(c, args.supervisor_kills), 120),
        "cancel": (lambda c: round_cancel(c, args.cancels), 60),
        "disk": (lambda c: round_disk(c, args.disk_jobs), 60),
    }
    if args.skip_disk:
        del rounds["disk"]
    if args.only:
        rounds = {k: v for k, v in rounds.items() if k in args.only.split(",")}
    print(
        f"{'round':<11} {'jobs':>5} {'srvK':>6} {'supK':>6} {'cut':>5} "
        + " ".join(f"{c.split('_')[0][:7]:>7}" for c in COUNTS)
        + f" {'s':>7}"
    )
    results: dict = {"date": now_iso(), "machine": machine(), "args": vars(args), "rounds": {}}
    with tempfile.TemporaryDirectory(prefix="aicloud-chaos-") as tmp:
        for name, (body, timeout) in rounds.items():
            results["rounds"][name] = run_round(name, Path(tmp), rng, body, timeout)
    played = [r for r in results["rounds"].values() if not r.get("skipped")]
    totals = {c: sum(r[c] for r in played) for c in COUNTS}
    for key in ("server_kills", "supervisor_kills", "cancels_cut", "jobs"):
        totals[key] = sum(r[key] for r in played)
    results["totals"] = totals
    results["load_average"] = load_average()
    results["wall_seconds"] = round(time.monotonic() - began, 1)
    for name, r in results["rounds"].items():
        for line in r.get("problems", [])[:8]:
            print(f"  {name}: {line}")
    print(
        f"TOTAL {totals['jobs']} jobs, {totals['server_kills']} server kills, "
        f"{totals['supervisor_kills']} supervisor kills, {totals['cancels_cut']} cut cancels: "
        + ", ".join(f"{c} {totals[c]}" for c in COUNTS)
    )
    save_results(results, OUT)
    return 1 if any(totals[c] for c in COUNTS) else 0


if __name__ == "__main__":
    sys.exit(main())
