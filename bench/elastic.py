"""Elastic recovery of torch jobs run by aicloud, when a worker process is SIGKILLed mid-run.

Each run submits a 2-process train job (``max_restarts`` 3) through a real ``jupyter server``
with aicloud on loopback. The job checkpoints every step; once it has reported step 3, the
benchmark SIGKILLs the worker with ``RANK=1`` (a child of the torchrun agent, found with
psutil). A run has recovered when the job succeeded after a restart and its final parameters
match those of an uninterrupted run (training is deterministic: fixed seed, data a function of
the step, fixed shards).

1. ``--runs`` (20) runs of a script that joins with ``aicloud.runtime.init_distributed()``;
2. for contrast, ``--contrast-runs`` (10) of the same script joining with a plain
   ``init_process_group("gloo")`` (stock torchrun behaviour). A run that has not ended within
   ``--run-timeout`` seconds is a hang: it is cancelled and counts as not recovered.

Reports recovered/total, the time from the kill to the first resumed step (median), and the
largest parameter difference from the uninterrupted run.

Run: ``.venv/bin/python bench/elastic.py`` (part of ``make bench``); JSON goes to
``bench/out/elastic.json``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import signal
import statistics
import sys
import tempfile
import time
from pathlib import Path

import httpx
import numpy as np
import psutil

from _common import (
    Server,
    cancel_and_wait,
    describe_machine,
    handle_signals,
    load_average,
    machine,
    now_iso,
    running_server,
    save_results,
    submit_job,
    wait_terminal,
)

HERE = Path(__file__).resolve().parent
SCRIPT = "torch_elastic.py"
OUT = HERE / "out" / "elastic.json"
KILL_AT_STEP = 3
TOLERANCE = 1e-6


# -- one run ----------------------------------------------------------------------------------


def submit(client: httpx.Client, args: argparse.Namespace, init: str, final: Path) -> str:
    """Submit the elastic job; return its id."""
    spec = {
        "kind": "train",
        "framework": "torch",
        "script": SCRIPT,
        "args": ["--steps", str(args.steps), "--init", init, "--final", str(final)],
        "resources": {"nodes": 1, "procs_per_node": 2},
        "max_restarts": args.max_restarts,
        "timeout_seconds": args.run_timeout,
        "tags": ["bench", "elastic", init],
    }
    return submit_job(client, spec)


def metrics(server: Server, job_id: str) -> list[dict]:
    """The points the job reported so far (``metrics.jsonl``), complete lines only."""
    try:
        text = (server.run_dir(job_id) / "metrics.jsonl").read_text()
    except FileNotFoundError:
        return []
    return [json.loads(line) for line in text.splitlines(keepends=True) if line.endswith("\n")]


def wait_for_step(server: Server, job_id: str, step: int, timeout: float) -> None:
    """Wait until the job has reported ``step``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if any(p.get("step", 0) >= step for p in metrics(server, job_id)):
            return
        time.sleep(0.02)
    raise TimeoutError(f"job {job_id} did not reach step {step} within {timeout} s")


def find_worker(server: Server, job_id: str, rank: int) -> psutil.Process:
    """The job's worker with ``RANK=rank``: a child of a torchrun agent, found by environment."""
    for process in psutil.Process(server.process.pid).children(recursive=True):
        with contextlib.suppress(psutil.Error):
            env = process.environ()
            if env.get("AICLOUD_JOB_ID") != job_id or env.get("RANK") != str(rank):
                continue
            if "torch.distributed.run" in " ".join(process.parent().cmdline()):
                return process
    raise LookupError(f"no worker with RANK={rank} in job {job_id}")


def agent_restarts(server: Server, job_id: str) -> int:
    """How many times torchrun restarted the workers: its log directory has one per round."""
    rounds = {path.name for path in server.run_dir(job_id).glob("torchrun/*/node-*/*/attempt_*")}
    return max(0, len(rounds) - 1)


def max_difference(final: Path, reference: np.ndarray | None) -> float | None:
    """The largest absolute parameter difference from the reference, if both exist."""
    if reference is None or not final.exists():
        return None
    return float(np.max(np.abs(np.load(final) - reference)))


def one_run(
    client: httpx.Client, server: Server, args: argparse.Namespace, init: str, index: int
) -> dict:
    """Submit, wait for step 3, kill rank 1, wait for the end; what happened."""
    final = server.home / f"final-{init}-{index}.npy"
    began = time.monotonic()
    job_id = submit(client, args, init, final)
    job, killed, error = None, None, None
    try:
        wait_for_step(server, job_id, KILL_AT_STEP, args.run_timeout)
        worker = find_worker(server, job_id, rank=1)
        killed = time.time()
        os.kill(worker.pid, signal.SIGKILL)
        job = wait_terminal(client, job_id, args.run_timeout + 10, interval=0.25)
    except (TimeoutError, LookupError) as e:  # counts as not recovered
        error = str(e)
    finally:
        if job is None:  # a hang, or interrupted: leave nothing running
            job = cancel_and_wait(client, job_id) or {"status": "stuck", "reason": "?"}
    points = metrics(server, job_id)
    return {
        "job_id": job_id,
        "wall_s": time.monotonic() - began,
        "status": job["status"],
        "reason": error or job["reason"],
        "killed_at_step": max((p.get("step", 0) for p in points if p["restart"] == 0), default=0),
        "restarts": agent_restarts(server, job_id),
        **resume_times(points, killed),
        "final": str(final),
    }


def resume_times(points: list[dict], killed: float | None) -> dict:
    """After the kill: when the restarted workers were up, and their first step was done."""
    after = [p for p in points if p["restart"] > 0] if killed else []
    up = [p for p in after if "resumed_from" in p]
    steps = [p for p in after if "step" in p]
    return {
        "resumed_from": int(up[0]["resumed_from"]) if up else None,
        "kill_to_restarted_s": up[0]["time"] - killed if up else None,
        "kill_to_first_step_s": steps[0]["time"] - killed if steps else None,
    }


def reference_run(client: httpx.Client, server: Server, args: argparse.Namespace) -> np.ndarray:
    """An uninterrupted run's final parameters."""
    final = server.home / "final-reference.npy"
    job_id = submit(client, args, "aicloud", final)
    job = None
    try:
        job = wait_terminal(client, job_id, args.run_timeout + 10, interval=0.25)
    finally:
        if job is None:
            cancel_and_wait(client, job_id)
    if job is None or job["status"] != "succeeded":
        log = (server.run_dir(job_id) / "output.log").read_text(errors="replace")
        raise RuntimeError(f"the uninterrupted run did not succeed: {job}\n{log[-3000:]}")
    return np.load(final)


# -- series -----------------------------------------------------------------------------------


def series(
    client: httpx.Client,
    server: Server,
    args: argparse.Namespace,
    init: str,
    runs: int,
    reference: np.ndarray,
) -> dict:
    """``runs`` killed runs in a row; each judged against the reference."""
    results = []
    for i in range(runs):
        run = one_run(client, server, args, init, i)
        run["max_diff"] = max_difference(Path(run["final"]), reference)
        run["recovered"] = (
            run["status"] == "succeeded"
            and run["restarts"] >= 1
            and run["max_diff"] is not None
            and run["max_diff"] <= TOLERANCE
        )
        results.append(run)
        print(f"  {init} run {i + 1}/{runs}: {describe_run(run)}", flush=True)
    return {"runs": results, "summary": summarize(results)}


def describe_run(run: dict) -> str:
    """One line per run for the progress output."""
    if not run["recovered"]:
        return (
            f"NOT recovered: {run['status']} ({run['reason']}), restarts {run['restarts']}, "
            f"{run['wall_s']:.0f} s in all"
        )
    return (
        f"recovered from step {run['resumed_from']} (killed after {run['killed_at_step']}), "
        f"restarts {run['restarts']}, kill to first step {run['kill_to_first_step_s']:.2f} s, "
        f"max diff {run['max_diff']:.1e}, {run['wall_s']:.0f} s in all"
    )


def summarize(runs: list[dict]) -> dict:
    """Recovered/total, median resume times, largest difference, outcomes."""
    ok = [r for r in runs if r["recovered"]]
    outcomes: dict[str, int] = {}
    for r in runs:
        key = "recovered" if r["recovered"] else f"{r['status']}: {r['reason']}"
        outcomes[key] = outcomes.get(key, 0) + 1

    def median(key: str) -> float | None:
        values = [r[key] for r in ok if r[key] is not None]
        return statistics.median(values) if values else None

    return {
        "recovered": len(ok),
        "total": len(runs),
        "recovered_at_first_restart": sum(r["restarts"] == 1 for r in ok),
        "median_kill_to_restarted_s": median("kill_to_restarted_s"),
        "median_kill_to_first_step_s": median("kill_to_first_step_s"),
        "max_kill_to_first_step_s": max((r["kill_to_first_step_s"] for r in ok), default=None),
        "max_diff": max((r["max_diff"] for r in ok), default=None),
        "restarts_used": sorted(r["restarts"] for r in runs),
        "outcomes": outcomes,
    }


# -- report -----------------------------------------------------------------------------------


def print_summary(name: str, s: dict) -> None:
    """Recovered/total and the times for one series."""
    print(
        f"\n{name}: recovered {s['recovered']}/{s['total']} "
        f"({s['recovered_at_first_restart']} at the first restart)"
    )
    if s["recovered"]:
        print(
            f"  kill -> restarted workers up: median {s['median_kill_to_restarted_s']:.2f} s; "
            f"kill -> first resumed step: median {s['median_kill_to_first_step_s']:.2f} s "
            f"(max {s['max_kill_to_first_step_s']:.2f} s)"
        )
        print(f"  max parameter difference from the uninterrupted run: {s['max_diff']:.2e}")
    print(f"  restarts used per run: {s['restarts_used']}")
    for outcome, count in s["outcomes"].items():
        print(f"  {count} x {outcome}")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Command-line options; the defaults are the documented benchmark."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=20, help="killed runs with init_distributed")
    parser.add_argument(
        "--contrast-runs", type=int, default=10, help="killed runs with plain init (0: skip)"
    )
    parser.add_argument("--steps", type=int, default=15, help="training steps per run")
    parser.add_argument("--max-restarts", type=int, default=3, help="the jobs' max_restarts")
    parser.add_argument(
        "--run-timeout", type=int, default=40, help="seconds before a run counts as a hang"
    )
    parser.add_argument("--out", type=Path, default=OUT, help="where the JSON goes")
    return parser.parse_args(argv)


def run(args: argparse.Namespace, home: Path) -> dict:
    """Start a server, run the reference and both series; the server is stopped on the way out."""
    results = {
        "date": now_iso(),
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "machine": machine(),
        "load_before": load_average(),
        "settings": {k: v for k, v in vars(args).items() if k != "out"},
    }
    with running_server(home, settle=True) as server, server.client() as client:
        shutil.copy(HERE / "workloads" / SCRIPT, server.root_dir / SCRIPT)
        reference = reference_run(client, server, args)
        results["init_distributed"] = series(client, server, args, "aicloud", args.runs, reference)
        if args.contrast_runs:
            results["plain_init"] = series(
                client, server, args, "plain", args.contrast_runs, reference
            )
    results["load_after"] = load_average()
    return results


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark, print the summary, write the JSON."""
    args = parse_args(argv)
    handle_signals()
    began = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="aicloud-bench-elastic-") as tmp:
        results = run(args, Path(tmp))
    results["wall_seconds"] = round(time.perf_counter() - began, 1)
    print("\n" + describe_machine(results["machine"]))
    print(f"load average before {results['load_before']}, after {results['load_after']}")
    print_summary("aicloud.runtime.init_distributed()", results["init_distributed"]["summary"])
    if "plain_init" in results:
        print_summary('plain init_process_group("gloo")', results["plain_init"]["summary"])
    save_results(results, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
