"""Notebook jobs through aicloud's warm pool, against the ``papermill`` CLI.

The notebook is trivial: a ``parameters`` cell and one ``print``. Every run gets a fresh kernel,
on both sides. In one run this measures:

1. latency: from just before ``POST /jobs`` until the job has succeeded (its ``finished_at``,
   set by the server when it sees the attempt end), with the pool on, against the wall time
   of one ``papermill`` CLI run; the two interleave, which also gives the pool time to refill.
   Optionally (``--plain-runs``) the same through a server without a pool, for reference. The
   aicloud runs are broken down with timestamps the service records anyway: job claimed,
   supervisor up, first and last cell (the progress reports), supervisor done;
2. throughput: ``--runs`` jobs submitted at once (they run concurrently; the pool keeps
   ``--pool-size`` runners warm and replaces each as it takes a run), from the first ``POST``
   until the last job's ``finished_at``, against the same number of sequential CLI runs.

Goals (from the issue): median latency <= 1.0 s; throughput >= 2x the sequential CLI.
Everything lives in a temporary directory and every process is stopped on the way out. The
table goes to stdout, the numbers to ``bench/out/notebook_jobs.json``.

Run: ``.venv/bin/python bench/notebook_jobs.py [--help]``.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import nbformat
from nbformat.v4 import new_code_cell, new_notebook

from _common import (
    Server,
    describe_machine,
    handle_signals,
    load_average,
    machine,
    now_iso,
    parse_time,
    running_server,
    save_results,
    submit_job,
    summary,
    wait_terminal,
)
from aicloud.launchers import notebook_pool

HERE = Path(__file__).resolve().parent
OUT = HERE / "out" / "notebook_jobs.json"
PAPERMILL = str(Path(sys.executable).with_name("papermill"))
NOTEBOOK = "trivial.ipynb"
GOAL_LATENCY_S = 1.0
GOAL_THROUGHPUT = 2.0
RUN_TIMEOUT = 300


def write_notebook(folder: Path) -> Path:
    """A parameters cell and one print, for the python3 kernel."""
    notebook = new_notebook(
        cells=[
            new_code_cell('name = "world"', metadata={"tags": ["parameters"]}),
            new_code_cell('print(f"hello {name}")'),
        ]
    )
    notebook.metadata["kernelspec"] = {
        "name": "python3",
        "display_name": "Python 3",
        "language": "python",
    }
    path = folder / NOTEBOOK
    nbformat.write(notebook, path)
    return path


# -- papermill CLI ----------------------------------------------------------------------------


def papermill_run(notebook: Path, out: Path, i: int) -> float:
    """Seconds for one ``papermill`` CLI run (a fresh process and kernel)."""
    argv = [PAPERMILL, str(notebook), str(out / f"cli-{i}.ipynb"), "-p", "name", f"run{i}"]
    argv += ["-k", "python3", "--no-progress-bar", "--log-level", "WARNING"]
    began = time.time()
    done = subprocess.run(argv, capture_output=True, text=True, timeout=RUN_TIMEOUT)
    elapsed = time.time() - began
    if done.returncode != 0:
        raise RuntimeError(f"papermill failed ({done.returncode}): {done.stderr[-2000:]}")
    return elapsed


def papermill_sequential(notebook: Path, out: Path, runs: int) -> float:
    """Wall seconds for ``runs`` CLI runs, one after another."""
    began = time.time()
    for i in range(runs):
        papermill_run(notebook, out, 10_000 + i)
    return time.time() - began


# -- aicloud ----------------------------------------------------------------------------------


def spec(i: int) -> dict:
    """A notebook job for run ``i``."""
    return {"kind": "notebook", "notebook": NOTEBOOK, "parameters": {"name": f"run{i}"}}


def ended(client: httpx.Client, job_id: str) -> dict:
    """The job once it has ended; raise unless it succeeded."""
    job = wait_terminal(client, job_id, timeout=RUN_TIMEOUT, interval=0.01)
    if job is None or job["status"] != "succeeded":
        raise RuntimeError(f"job {job_id}: {job and (job['status'], job['reason'])}")
    return job


def stages(server: Server, job: dict, began: float) -> dict:
    """Seconds from ``began`` to each step the service recorded for the job."""
    run_dir = server.run_dir(job["id"])
    status = json.loads((run_dir / "attempt-1.status.json").read_text())
    points = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    return {
        "claimed": parse_time(job["started_at"]) - began,
        "supervisor_up": status["started_at"] - began,
        "first_cell_started": points[0]["time"] - began,
        "last_cell_done": points[-1]["time"] - began,
        "supervisor_done": status["finished_at"] - began,
        "succeeded": parse_time(job["finished_at"]) - began,
    }


def aicloud_run(client: httpx.Client, server: Server, i: int) -> dict:
    """One job, fired and followed to its end; its stages."""
    began = time.time()
    job = ended(client, submit_job(client, spec(i)))
    result = stages(server, job, began)
    (claim,) = server.run_dir(job["id"]).glob("attempt-1.*.claim")  # what the supervisor ran
    result["pooled"] = "notebook_client.py" in " ".join(json.loads(claim.read_text())["argv"][0])
    return result


def aicloud_burst(client: httpx.Client, runs: int) -> dict:
    """``runs`` jobs submitted at once; seconds from the first POST to the last end."""
    began = time.time()
    ids = [submit_job(client, spec(20_000 + i)) for i in range(runs)]
    posted = time.time() - began
    jobs = [ended(client, job_id) for job_id in ids]
    observed = time.time() - began
    last = max(parse_time(job["finished_at"]) for job in jobs)
    return {"posted_s": posted, "wall_s": last - began, "observed_s": observed}


def wait_for_pool(server: Server, timeout: float = 120) -> None:
    """Until the pool listens (it warms up right after the server starts)."""
    path = notebook_pool.socket_path(server.data_dir)
    deadline = time.monotonic() + timeout
    while not path.exists():
        if time.monotonic() > deadline:
            raise TimeoutError(f"no notebook pool at {path} after {timeout} s")
        time.sleep(0.1)


def server_args(pool_size: int) -> tuple[str, ...]:
    """The server's options: the pool (no start delay), everything else at its default."""
    return (f"--AICloudApp.notebook_pool_size={pool_size}", "--AICloudApp.notebook_pool_delay=0")


# -- measurements -----------------------------------------------------------------------------


def measure_pooled(home: Path, notebook: Path, args: argparse.Namespace) -> dict:
    """Latency rounds (aicloud with the pool, then one CLI run) and the burst."""
    samples: dict[str, list[float]] = {}
    cli: list[float] = []
    with running_server(home, server_args(args.pool_size)) as server:
        write_notebook(server.root_dir)
        wait_for_pool(server)
        with server.client() as client:
            for i in range(args.warmup):
                aicloud_run(client, server, i)
                papermill_run(notebook, home, i)
            for i in range(args.latency_runs):
                run = aicloud_run(client, server, 100 + i)
                if not run.pop("pooled"):
                    raise RuntimeError("a job did not go through the pool")
                for step, value in run.items():
                    samples.setdefault(step, []).append(value)
                cli.append(papermill_run(notebook, home, 100 + i))
            time.sleep(3)  # let the pool refill before the burst
            burst = aicloud_burst(client, args.runs)
    return {
        "aicloud": {step: summary(values) for step, values in samples.items()},
        "aicloud_samples_s": {step: [round(v, 3) for v in vs] for step, vs in samples.items()},
        "papermill_cli": summary(cli),
        "papermill_cli_samples_s": [round(v, 3) for v in cli],
        "burst": burst,
    }


def measure_plain(home: Path, runs: int) -> dict:
    """Latency through a server without a pool (each job starts its own runner)."""
    samples: dict[str, list[float]] = {}
    with running_server(home, server_args(0)) as server:
        write_notebook(server.root_dir)
        with server.client() as client:
            aicloud_run(client, server, 0)  # warm the page cache
            for i in range(runs):
                run = aicloud_run(client, server, 200 + i)
                if run.pop("pooled"):
                    raise RuntimeError("a job went through a pool")
                for step, value in run.items():
                    samples.setdefault(step, []).append(value)
    return {step: summary(values) for step, values in samples.items()}


def run(args: argparse.Namespace, home: Path) -> dict:
    """All measurements; servers are stopped by the caller's context managers."""
    notebook = write_notebook(home)
    results = {
        "date": now_iso(),
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "machine": machine(),
        "load_before": load_average(),
        "pool_size": args.pool_size,
        "runs": args.runs,
        "latency_runs": args.latency_runs,
    }
    results.update(measure_pooled(home / "pooled", notebook, args))
    results["papermill_sequential_s"] = papermill_sequential(notebook, home, args.runs)
    if args.plain_runs:
        results["aicloud_without_pool"] = measure_plain(home / "plain", args.plain_runs)
    results["load_after"] = load_average()
    latency = results["aicloud"]["succeeded"]["p50_ms"] / 1000
    cli = results["papermill_cli"]["p50_ms"] / 1000
    results["ratios"] = {
        "latency cli/aicloud p50": round(cli / latency, 2),
        "throughput aicloud/cli": round(
            results["papermill_sequential_s"] / results["burst"]["wall_s"], 2
        ),
    }
    results["goals"] = {
        f"median latency <= {GOAL_LATENCY_S} s": latency <= GOAL_LATENCY_S,
        f"throughput >= {GOAL_THROUGHPUT}x": results["ratios"]["throughput aicloud/cli"]
        >= GOAL_THROUGHPUT,
    }
    return results


# -- report -----------------------------------------------------------------------------------

LABELS = {
    "claimed": "job claimed (started_at)",
    "supervisor_up": "supervisor up",
    "first_cell_started": "first cell started",
    "last_cell_done": "last cell done",
    "supervisor_done": "supervisor done (HTML, kernel shut)",
    "succeeded": "job succeeded (finished_at)",
}


def print_report(r: dict) -> None:
    """The tables, ratios and goals."""
    print(describe_machine(r["machine"]))
    print(f"load average before {r['load_before']}, after {r['load_after']}")
    print(f"\nlatency, {r['latency_runs']} runs each (seconds from just before POST / Popen)")
    print(f"{'':<40}{'p50 s':>8}{'p90 s':>8}")
    rows = [(f"aicloud, pool of {r['pool_size']}: {LABELS[k]}", v) for k, v in r["aicloud"].items()]
    rows.append(("papermill CLI, whole run", r["papermill_cli"]))
    for name, values in r.get("aicloud_without_pool", {}).items():
        rows.append((f"aicloud, no pool: {LABELS[name]}", values))
    for label, s in rows:
        print(f"{label:<52}{s['p50_ms'] / 1000:>8.3f}{s['p90_ms'] / 1000:>8.3f}")
    b = r["burst"]
    print(f"\nthroughput, {r['runs']} runs (pool of {r['pool_size']})")
    print(f"  aicloud, submitted at once: {b['wall_s']:.2f} s (POSTs took {b['posted_s']:.2f} s)")
    print(f"  papermill CLI, sequential:  {r['papermill_sequential_s']:.2f} s")
    for name, value in r["ratios"].items():
        print(f"  ratio {name}: {value}")
    for goal, met in r["goals"].items():
        print(f"  goal {goal}: {'met' if met else 'NOT met'}")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Command-line options; the defaults are the documented benchmark."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pool-size", type=int, default=2, help="warm runners (default 2)")
    parser.add_argument("--runs", type=int, default=20, help="runs in the throughput test")
    parser.add_argument("--latency-runs", type=int, default=10, help="latency rounds")
    parser.add_argument("--warmup", type=int, default=2, help="uncounted rounds first")
    parser.add_argument(
        "--plain-runs", type=int, default=5, help="latency runs without a pool (0: skip)"
    )
    parser.add_argument("--out", type=Path, default=OUT, help="where the JSON goes")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark, print the tables, write the JSON."""
    args = parse_args(argv)
    handle_signals()
    began = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="aicloud-bench-nb-") as tmp:
        results = run(args, Path(tmp))
    results["wall_seconds"] = round(time.perf_counter() - began, 1)
    print_report(results)
    save_results(results, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
