"""Benchmark of the aicloud REST API against a real ``jupyter server`` process.

Measures, in one run:

1. read latency (p50, p99) with 10,000 jobs in the store: a first page, a deep page and a get,
   next to ``GET /status`` (the floor: HTTP, auth and JSON, no database);
2. submit-to-running: from just before ``POST /jobs`` until the job's command has started (the
   command writes its own start time to a file), against a bare ``subprocess.Popen`` of the same
   command and against ``Popen`` of aicloud's supervisor running it, as ratios.

Everything lives in a temporary directory; the server and every process it started are stopped
on the way out, errors included. Results go to stdout and to ``bench/out/api.json``.

Run: ``.venv/bin/python bench/api.py`` (or ``make bench``).
"""

from __future__ import annotations

import argparse
import getpass
import json
import os
import shlex
import signal
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timedelta
from pathlib import Path

import httpx
from sqlalchemy import insert
from sqlalchemy.orm import Session

from _common import (
    Server,
    machine,
    on_sigterm,
    parse_time,
    read_stamp,
    save_results,
    summary,
    wait_ended,
)
from aicloud.backends.local import SUPERVISOR
from aicloud.launchers import LaunchPlan
from aicloud.store import Attempt, Job, JobTag, make_engine, migrate, utcnow

OUT = Path(__file__).resolve().parent / "out" / "api.json"
PAGE = 50
PY_STAMP = "import sys, time; open(sys.argv[1], 'w').write(repr(time.time()))"


# -- seeding ----------------------------------------------------------------------------------


def job_rows(n: int, owner: str, runs_dir: Path) -> tuple[list[dict], list[dict], list[dict]]:
    """Rows for ``n`` ended jobs (one attempt each, a tag on every tenth), newest last."""
    start = utcnow() - timedelta(seconds=n + 60)
    jobs, attempts, tags = [], [], []
    for i in range(n):
        job_id = f"job-seed{i:08d}"
        created = start + timedelta(seconds=i)
        status = "failed" if i % 7 == 0 else "succeeded"
        exit_code = 1 if status == "failed" else 0
        reason = f"exited with code {exit_code}"
        code = "user_error" if exit_code else "succeeded"
        spec = {"name": f"seed {i}", "command": ["sh", "-c", f"echo {i}"]}
        if i % 10 == 0:
            spec["tags"] = ["seed"]
            tags.append({"job_id": job_id, "tag": "seed"})
        ended = created + timedelta(milliseconds=500)
        jobs.append(
            {
                "id": job_id,
                "name": spec["name"],
                "owner": owner,
                "kind": "command",
                "framework": "none",
                "backend": "local",
                "status": status,
                "reason_code": code,
                "reason": reason,
                "spec": spec,
                "idempotency_token": None,
                "created_at": created,
                "started_at": created,
                "finished_at": ended,
                "exit_code": exit_code,
                "run_dir": str(runs_dir / job_id),
                "attempt_count": 1,
                "not_before": None,
            }
        )
        attempts.append(
            {
                "job_id": job_id,
                "number": 1,
                "status": status,
                "started_at": created,
                "finished_at": ended,
                "exit_code": exit_code,
                "reason_code": code,
                "reason": reason,
                "handle": {},
            }
        )
    return jobs, attempts, tags


def seed(db_url: str, n: int, owner: str, runs_dir: Path) -> tuple[list[str], float]:
    """Migrate the store and bulk-insert ``n`` ended jobs; return their ids and the time taken."""
    began = time.perf_counter()
    engine = make_engine(db_url)
    migrate(engine)
    jobs, attempts, tags = job_rows(n, owner, runs_dir)
    with Session(engine) as session:
        session.execute(insert(Job), jobs)
        session.execute(insert(Attempt), attempts)
        if tags:
            session.execute(insert(JobTag), tags)
        session.commit()
    engine.dispose()
    return [row["id"] for row in jobs], time.perf_counter() - began


# -- reads ------------------------------------------------------------------------------------


def timed_get(client: httpx.Client, url: str, params: dict | None = None) -> float:
    """Seconds for one GET, body read; raise on an error status."""
    began = time.perf_counter()
    response = client.get(url, params=params)
    elapsed = time.perf_counter() - began
    response.raise_for_status()
    return elapsed


def deep_label(n_jobs: int) -> str:
    """The name of the deep-page request: a page halfway down the list."""
    return f"list limit={PAGE} offset={n_jobs // 2}"


def measure_reads(client: httpx.Client, ids: list[str], n: int) -> dict:
    """Latencies of the read endpoints, interleaved round-robin so noise hits all alike."""
    deep = len(ids) // 2
    requests = {
        "status (floor)": lambda i: ("status", None),
        f"list limit={PAGE}": lambda i: ("jobs", {"limit": PAGE}),
        deep_label(len(ids)): lambda i: ("jobs", {"limit": PAGE, "offset": deep}),
        "get job": lambda i: (f"jobs/{ids[(i * 7919) % len(ids)]}", None),
    }
    page = client.get("jobs", params={"limit": PAGE, "offset": deep}).json()
    if page["total"] != len(ids) or len(page["jobs"]) != PAGE:
        raise RuntimeError(f"expected {len(ids)} jobs, the server lists {page['total']}")
    for i in range(10):  # warm-up: connections, caches, SQLAlchemy statement cache
        for make in requests.values():
            timed_get(client, *make(i))
    samples: dict[str, list[float]] = {name: [] for name in requests}
    for i in range(n):
        for name, make in requests.items():
            samples[name].append(timed_get(client, *make(i)))
    return {name: summary(values) for name, values in samples.items()}


# -- submit to running ------------------------------------------------------------------------


def sh_argv(stamp: Path) -> list[str]:
    """``sh -c 'date +%s.%N > STAMP'``: the cheapest command that says when it ran."""
    return ["sh", "-c", f"date +%s.%N > {shlex.quote(str(stamp))}"]


def python_argv(stamp: Path) -> list[str]:
    """``python -c`` that writes ``time.time()`` to ``stamp`` once the interpreter is up."""
    return [sys.executable, "-c", PY_STAMP, str(stamp)]


def run_bare(argv: list[str], stamp: Path, work: Path) -> dict:
    """Seconds from just before a bare ``Popen`` until the command started."""
    began = time.time()
    child = subprocess.Popen(argv, stdin=subprocess.DEVNULL)
    started = read_stamp(stamp)
    child.wait(timeout=30)
    return {"command_started": started - began}


def run_supervised(argv: list[str], stamp: Path, work: Path) -> dict:
    """The same under aicloud's supervisor, its plan on stdin, as the local backend does."""
    status = work / f"{stamp.name}.status.json"
    claim = work / f"{stamp.name}.claim"
    supervisor = [sys.executable, "-I", "-S", str(SUPERVISOR), "--claim", str(claim)]
    supervisor += ["--log", str(work / "log"), "--status", str(status), "--timeout", "0"]
    began = time.time()
    plan = LaunchPlan.single(argv, dict(os.environ), work).to_json()
    child = subprocess.Popen(supervisor, stdin=subprocess.PIPE, start_new_session=True)
    with child.stdin:
        child.stdin.write(json.dumps({**plan, "banner": ""}).encode())
    started = read_stamp(stamp)
    child.wait(timeout=30)
    up = json.loads(status.read_text())["started_at"]
    return {"supervisor_up": up - began, "command_started": started - began}


def run_aicloud(client: httpx.Client, server: Server, argv: list[str], stamp: Path) -> dict:
    """One submit: seconds from just before ``POST /jobs`` to each step, up to the command."""
    began = time.time()
    response = client.post("jobs", json={"command": argv, "tags": ["bench"]})
    answered = time.time()
    response.raise_for_status()
    job_id = response.json()["id"]
    started = read_stamp(stamp)
    job = wait_ended(client, job_id)
    status_file = server.data_dir / "runs" / job_id / "attempt-1.status.json"
    supervised = json.loads(status_file.read_text())["started_at"]
    return {
        "post_answered": answered - began,
        "claimed": parse_time(job["started_at"]) - began,
        "supervisor_up": supervised - began,
        "command_started": started - began,
    }


def measure_submit(client: httpx.Client, server: Server, make_argv, n: int, work: Path) -> dict:
    """``n`` interleaved rounds of bare, supervised and aicloud runs, after one warm-up round."""
    work.mkdir(parents=True, exist_ok=True)
    runners = {
        "bare": run_bare,
        "supervised": run_supervised,
        "aicloud": lambda argv, stamp, _: run_aicloud(client, server, argv, stamp),
    }
    samples: dict[str, dict[str, list[float]]] = {name: {} for name in runners}
    for i in range(n + 1):
        for name, runner in runners.items():
            stamp = work / f"{name}-{i}"
            steps = runner(make_argv(stamp), stamp, work)
            for step, value in steps.items():
                if i > 0:
                    samples[name].setdefault(step, []).append(value)
    result = {
        name: {step: summary(values) for step, values in steps.items()}
        for name, steps in samples.items()
    }
    result["ratios"] = submit_ratios(result)
    return result


def submit_ratios(result: dict) -> dict:
    """Command-started ratios: aicloud and supervised Popen over bare Popen, at p50 and p90."""
    started = {name: result[name]["command_started"] for name in ("bare", "supervised", "aicloud")}
    pairs = (("aicloud", "bare"), ("supervised", "bare"), ("aicloud", "supervised"))
    return {
        f"{top}/{bottom} {q}": round(started[top][f"{q}_ms"] / started[bottom][f"{q}_ms"], 2)
        for top, bottom in pairs
        for q in ("p50", "p90")
    }


# -- report -----------------------------------------------------------------------------------


def row(label: str, s: dict, columns: tuple[str, ...]) -> str:
    """One table row: a label and the given summary columns."""
    return f"{label:<36}" + "".join(f"{s[c]:>9.2f}" for c in columns)


def print_report(results: dict) -> None:
    """A small table of every measurement and the ratios."""
    m = results["machine"]
    print(
        f"machine: {m['cpus']} x {m['cpu_model']}, {m['memory_gib']} GiB, "
        f"Python {m['python']}, aicloud {m['aicloud']}"
    )
    print(f"store: {results['jobs']} jobs, seeded in {results['seed_seconds']:.2f} s")
    print(f"\n{'request (' + str(results['requests']) + ' each)':<36}{'p50 ms':>9}{'p99 ms':>9}")
    for name, s in results["reads"].items():
        print(row(name, s, ("p50_ms", "p99_ms")))
    for name, value in results["read_ratios"].items():
        print(f"  ratio {name}: {value}")
    for variant, r in results["submit"].items():
        n = r["bare"]["command_started"]["n"]
        print(f"\nsubmit-to-running, {variant} ({n} runs each)")
        print(f"{'time from just before Popen/POST to':<36}{'p50 ms':>9}{'p90 ms':>9}")
        for runner in ("bare", "supervised", "aicloud"):
            for step, s in r[runner].items():
                print(row(f"{runner}: {step.replace('_', ' ')}", s, ("p50_ms", "p90_ms")))
        for name, value in r["ratios"].items():
            print(f"  ratio {name}: {value}")


def read_ratios(reads: dict, n_jobs: int) -> dict:
    """p50 ratios that do not depend on how fast the machine is."""
    floor = reads["status (floor)"]["p50_ms"]
    first = reads[f"list limit={PAGE}"]["p50_ms"]
    deep = reads[deep_label(n_jobs)]["p50_ms"]
    get = reads["get job"]["p50_ms"]
    return {
        "list/status p50": round(first / floor, 1),
        f"list offset={n_jobs // 2}/list p50": round(deep / first, 2),
        "get/status p50": round(get / floor, 2),
    }


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Command-line options; the defaults are the documented benchmark."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobs", type=int, default=10_000, help="jobs seeded in the store")
    parser.add_argument("--requests", type=int, default=200, help="requests per read kind")
    parser.add_argument("--submits", type=int, default=30, help="rounds for the sh command")
    parser.add_argument(
        "--python-submits", type=int, default=15, help="rounds for python -c (0: skip)"
    )
    parser.add_argument("--out", type=Path, default=OUT, help="where the JSON goes")
    parser.add_argument(
        "--server-arg", action="append", default=[], help="extra jupyter server option"
    )
    return parser.parse_args(argv)


def run(args: argparse.Namespace, home: Path) -> dict:
    """Seed, start the server, measure; the caller stops the server."""
    server = Server(home=home, extra_args=tuple(args.server_arg))
    server.prepare()
    ids, seed_seconds = seed(server.db_url, args.jobs, getpass.getuser(), server.data_dir / "runs")
    results = {
        "date": datetime.now().astimezone().isoformat(timespec="seconds"),
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "machine": machine(),
        "jobs": args.jobs,
        "requests": args.requests,
        "seed_seconds": round(seed_seconds, 3),
        "server_args": args.server_arg,
    }
    try:
        server.start()
        with server.client() as client:
            results["reads"] = measure_reads(client, ids, args.requests)
            results["read_ratios"] = read_ratios(results["reads"], args.jobs)
            submit = {"sh -c 'date +%s.%N > FILE'": (sh_argv, args.submits)}
            if args.python_submits:
                submit["python -c 'write time.time()'"] = (python_argv, args.python_submits)
            results["submit"] = {
                name: measure_submit(client, server, make, n, home / "stamps" / str(k))
                for k, (name, (make, n)) in enumerate(submit.items())
            }
    finally:
        server.stop()
    return results


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark, print the table, write the JSON."""
    args = parse_args(argv)
    signal.signal(signal.SIGTERM, on_sigterm)
    began = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="aicloud-bench-") as tmp:
        results = run(args, Path(tmp))
    results["wall_seconds"] = round(time.perf_counter() - began, 1)
    print_report(results)
    save_results(results, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
