"""What launching a training job through aicloud costs, against launching it by hand.

The same 2-process training script runs bare and through aicloud (a real ``jupyter server``
with aicloud on loopback, the job submitted with ``POST /jobs``), in interleaved pairs whose
order alternates:

- torch DDP (gloo, CPU): bare ``torchrun --standalone --nproc-per-node 2`` against
  ``{"kind": "train", "framework": "torch"}``;
- TensorFlow MultiWorkerMirroredStrategy: two bare processes with hand-built ``TF_CONFIG``
  against ``{"framework": "tensorflow"}`` (skipped, with a message, while aicloud has no
  TensorFlow launcher).

The script writes its own timestamps (start, first step done, last step done) and thread
settings, so both sides are measured the same way from just before ``Popen``/``POST``. Each
framework first runs one short, uncounted pair with no thread variables set, which warms the
page cache and shows the thread count each launcher picks by itself; the measured pairs set
the same thread count explicitly on both sides.

Run: ``.venv/bin/python bench/train_overhead.py`` (part of ``make bench``); JSON goes to
``bench/out/train_overhead.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import httpx

from _common import (
    Server,
    cancel_and_wait,
    describe_machine,
    free_port,
    handle_signals,
    load_average,
    machine,
    now_iso,
    parse_time,
    running_server,
    save_results,
    stop_group,
    submit_job,
    wait_terminal,
)
from aicloud.errors import InvalidSpec
from aicloud.launchers import launcher_for
from aicloud.launchers.base import threads_per_process
from aicloud.spec import JobSpec

HERE = Path(__file__).resolve().parent
WORKLOADS = HERE / "workloads"
OUT = HERE / "out" / "train_overhead.json"
TORCHRUN = str(Path(sys.executable).with_name("torchrun"))
THREAD_VARIABLES = ("OMP_NUM_THREADS", "TF_NUM_INTRAOP_THREADS", "TF_NUM_INTEROP_THREADS")
PROCS = 2
RUN_TIMEOUT = 180
POLL_INTERVAL = 5.0  # end times come from `finished_at`; each poll takes CPU from the job
GOAL_FIRST_STEP_S = 0.3
GOAL_RATIO = 0.98

STAGES = {  # what the script records, in order, as seconds since the launch
    "script_started_s": "script started (s)",
    "imported_s": "framework imported (s)",
    "joined_s": "group joined (s)",
    "first_step_s": "first step done (s)",
}
LOAD = {  # rank 0 until its first step: its own CPU time, and time it waited for a CPU
    "first_step_cpu_s": "rank 0 CPU time (s)",
    "first_step_wait_s": "rank 0 run-queue wait (s)",
}

Launch = Callable[[Path, list[str], dict[str, str]], tuple[float, float]]


# -- launching --------------------------------------------------------------------------------


def wait_all(processes: list[subprocess.Popen], timeout: float) -> None:
    """Wait for every process; raise if one fails or the time runs out."""
    deadline = time.monotonic() + timeout
    for process in processes:
        code = process.wait(timeout=max(0.1, deadline - time.monotonic()))
        if code != 0:
            raise RuntimeError(f"{process.args[:3]}... exited with {code}")


def run_bare(
    argvs: list[list[str]], envs: list[dict[str, str]], cwd: Path, new_session: bool
) -> tuple[float, float]:
    """Start the processes in ``cwd`` and wait for them; return (began, ended).

    ``new_session``: each in a session of its own, else in this one. With the kernel's
    autogroup scheduling the CPU is shared fairly between sessions, so this must match how
    aicloud starts the same processes (all of a job's in the supervisor's session).
    """
    log = cwd / "bare.log"
    processes = []
    try:
        with open(log, "ab") as out:
            began = time.time()
            for argv, env in zip(argvs, envs, strict=True):
                processes.append(
                    subprocess.Popen(
                        argv,
                        env=env,
                        cwd=cwd,
                        stdin=subprocess.DEVNULL,
                        stdout=out,
                        stderr=subprocess.STDOUT,
                        start_new_session=new_session,
                    )
                )
        wait_all(processes, RUN_TIMEOUT)
        return began, time.time()
    except BaseException as e:  # Ctrl-C and SIGTERM too: leave nothing running
        for process in processes:
            stop_group(process)
        if isinstance(e, Exception):
            raise RuntimeError(f"bare run failed ({e}); log {log}:\n{tail(log)}") from e
        raise


def run_job(client: httpx.Client, server: Server, spec: dict) -> tuple[float, float]:
    """Submit ``spec`` and wait until it succeeded; return (just before POST, ``finished_at``).

    Polls slowly: on 2 cores, polling every 20 ms would take CPU from the job being measured.
    """
    began = time.time()
    job_id = submit_job(client, spec)
    job = None
    try:
        job = wait_terminal(client, job_id, RUN_TIMEOUT, interval=POLL_INTERVAL)
    finally:
        if job is None:  # timed out or interrupted: leave nothing running
            cancel_and_wait(client, job_id)
    if job is None:
        raise TimeoutError(f"aicloud job {job_id} did not end within {RUN_TIMEOUT} s")
    if job["status"] != "succeeded":
        log = server.run_dir(job_id) / "output.log"
        raise RuntimeError(f"aicloud job {job_id} {job['status']}: {job['reason']}\n{tail(log)}")
    return began, parse_time(job["finished_at"])


def tail(path: Path, lines: int = 30) -> str:
    """The last lines of a log file, for error messages."""
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def torch_bare(root: Path, args: list[str], env: dict[str, str]) -> tuple[float, float]:
    """``torchrun --standalone --nproc-per-node 2 torch_ddp.py ARGS``, ``env`` added."""
    argv = [TORCHRUN, "--standalone", f"--nproc-per-node={PROCS}", "torch_ddp.py", *args]
    return run_bare([argv], [{**os.environ, **env}], root, new_session=True)


def tf_bare(root: Path, args: list[str], env: dict[str, str]) -> tuple[float, float]:
    """Two ``python tf_mwms.py ARGS`` workers with a hand-built ``TF_CONFIG`` each.

    Both in one session, as a shell would start them and as aicloud does (the supervisor's).
    """
    workers = [f"127.0.0.1:{free_port()}" for _ in range(PROCS)]
    envs = [
        {
            **os.environ,
            **env,
            "TF_CONFIG": json.dumps(
                {"cluster": {"worker": workers}, "task": {"type": "worker", "index": i}}
            ),
        }
        for i in range(PROCS)
    ]
    argv = [sys.executable, "tf_mwms.py", *args]
    return run_bare([argv] * PROCS, envs, root, new_session=False)


def aicloud_launch(
    client: httpx.Client, server: Server, framework: str, script: str, resources: dict | None = None
) -> Launch:
    """A launch function that submits ``script`` as a 2-process train job."""

    def launch(root: Path, args: list[str], env: dict[str, str]) -> tuple[float, float]:
        spec = {
            "kind": "train",
            "framework": framework,
            "script": script,
            "args": args,
            "resources": {"nodes": 1, "procs_per_node": PROCS, **(resources or {})},
            "env": env,
            "tags": ["bench", "train-overhead"],
        }
        return run_job(client, server, spec)

    return launch


# -- measuring --------------------------------------------------------------------------------


def one_run(
    launch: Launch, root: Path, out: Path, steps: int, env: dict[str, str], extra: tuple = ()
) -> dict:
    """One run: launch, wait, read the script's record; times relative to the launch."""
    args = ["--out", str(out), "--steps", str(steps), *extra]
    began, ended = launch(root, args, env)
    record = json.loads(out.read_text())
    steps_per_s = (record["steps"] - 1) / (record["last_step"] - record["first_step"])
    return {
        "script_started_s": record["started"] - began,
        "imported_s": record["imported"] - began,
        "joined_s": record["joined"] - began,
        "first_step_s": record["first_step"] - began,
        "first_step_cpu_s": record["first_step_cpu"],
        "first_step_wait_s": record["first_step_runqueue_wait"] or 0.0,
        "steps_per_s": steps_per_s,
        "ended_s": ended - began,
        "threads": {k: v for k, v in record.items() if "thread" in k},
        "samples_per_s": steps_per_s * record["samples_per_step"],
    }


def measure(name: str, sides: dict[str, Launch], root: Path, args: argparse.Namespace) -> dict:
    """A thread probe, then ``args.pairs`` interleaved pairs (order alternating)."""
    steps = args.tf_steps if name == "tensorflow" else args.torch_steps
    fixed = {v: str(args.threads) for v in THREAD_VARIABLES}
    result: dict = {"steps": steps, "threads_set": args.threads, "defaults": {}, "runs": {}}
    for side, launch in sides.items():  # uncounted: warms caches, shows each side's default
        probe = one_run(launch, root, root / f"{name}-{side}-probe.json", 20, {})
        result["defaults"][side] = probe["threads"]
    runs: dict[str, list[dict]] = {side: [] for side in sides}
    for i in range(args.pairs):
        order = list(sides) if i % 2 == 0 else list(reversed(sides))
        for side in order:
            run = one_run(sides[side], root, root / f"{name}-{side}-{i}.json", steps, fixed)
            runs[side].append(run)
            print(
                f"  {name} pair {i + 1}/{args.pairs} {side:<7}: first step "
                f"{run['first_step_s']:.2f} s, {run['steps_per_s']:.1f} steps/s",
                flush=True,
            )
    result["runs"] = runs
    result["summary"] = summarize(runs)
    return result


def summarize(runs: dict[str, list[dict]]) -> dict:
    """Medians per side, the differences and ratios the goals are about."""
    medians = {
        side: {
            key: statistics.median(run[key] for run in side_runs)
            for key in (*STAGES, *LOAD, "steps_per_s", "ended_s")
        }
        for side, side_runs in runs.items()
    }
    paired = [
        a["first_step_s"] - b["first_step_s"]
        for a, b in zip(runs["aicloud"], runs["bare"], strict=True)
    ]
    bare, ours = medians["bare"], medians["aicloud"]
    return {
        "medians": medians,
        "first_step_added_s": ours["first_step_s"] - bare["first_step_s"],
        "first_step_added_paired_median_s": statistics.median(paired),
        "steps_per_s_ratio": ours["steps_per_s"] / bare["steps_per_s"],
        "ended_added_s": ours["ended_s"] - bare["ended_s"],
        "threads_equal": all(
            a["threads"] == b["threads"] for a, b in zip(runs["aicloud"], runs["bare"], strict=True)
        ),
        "threads": runs["bare"][0]["threads"],
    }


def tensorflow_launcher_missing() -> str | None:
    """Why aicloud cannot run a TensorFlow train job here, or None if it can."""
    try:
        launcher_for(JobSpec(kind="train", framework="tensorflow", script="tf_mwms.py"))
    except InvalidSpec as e:
        return e.message
    return None


# -- report -----------------------------------------------------------------------------------


def print_framework(name: str, r: dict) -> None:
    """The table for one framework."""
    if "skipped" in r:
        print(f"\n{name}: SKIPPED - {r['skipped']}")
        return
    s, m = r["summary"], r["summary"]["medians"]
    n = len(r["runs"]["bare"])
    print(f"\n{name}: {n} pairs, {r['steps']} steps, medians")
    print(f"{'':<34}{'bare':>10}{'aicloud':>10}{'added':>10}")
    for key, label in (*STAGES.items(), ("ended_s", "job ended (s)"), *LOAD.items()):
        added = m["aicloud"][key] - m["bare"][key]
        print(f"{label:<34}{m['bare'][key]:>10.2f}{m['aicloud'][key]:>10.2f}{added:>+10.2f}")
    print(f"{'steps/s':<34}{m['bare']['steps_per_s']:>10.1f}{m['aicloud']['steps_per_s']:>10.1f}")
    added, ratio = s["first_step_added_s"], s["steps_per_s_ratio"]
    print(
        f"time to first step added: {added:+.2f} s (paired median "
        f"{s['first_step_added_paired_median_s']:+.2f} s; goal <= {GOAL_FIRST_STEP_S} s: "
        f"{'met' if added <= GOAL_FIRST_STEP_S else 'NOT met'})"
    )
    print(
        f"steps/s ratio aicloud/bare: {ratio:.3f} (goal >= {GOAL_RATIO}: "
        f"{'met' if ratio >= GOAL_RATIO else 'NOT met'})"
    )
    print(f"threads by default: {r['defaults']}")
    same = "same on both sides" if s["threads_equal"] else "DIFFERENT between sides"
    print(f"threads in the measured runs: {s['threads']} ({same})")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Command-line options; the defaults are the documented benchmark."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pairs", type=int, default=5, help="measured pairs per framework")
    parser.add_argument("--torch-steps", type=int, default=350, help="steps per torch run")
    parser.add_argument("--tf-steps", type=int, default=250, help="steps per TensorFlow run")
    parser.add_argument(
        "--threads",
        type=int,
        default=threads_per_process(PROCS),
        help="OMP_NUM_THREADS (and TF's) set on both sides (default: cores // 2)",
    )
    parser.add_argument("--framework", choices=("torch", "tensorflow", "both"), default="both")
    parser.add_argument("--out", type=Path, default=OUT, help="where the JSON goes")
    parser.add_argument(
        "--server-arg",
        action="append",
        default=[],
        metavar="FLAG",
        help="an extra flag for the aicloud server (repeatable), e.g. "
        "--server-arg=--AICloudApp.notebook_pool_size=0",
    )
    return parser.parse_args(argv)


def run(args: argparse.Namespace, home: Path) -> dict:
    """Start a server, measure each framework; the server is stopped on the way out."""
    results = {
        "date": now_iso(),
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "machine": machine(),
        "load_before": load_average(),
    }
    server_args = tuple(args.server_arg)
    with (
        running_server(home, server_args, settle=True) as server,
        server.client() as client,
    ):
        root = server.root_dir
        for script in ("torch_ddp.py", "tf_mwms.py"):
            shutil.copy(WORKLOADS / script, root / script)
        if args.framework in ("torch", "both"):
            sides = {
                "bare": torch_bare,
                "aicloud": aicloud_launch(client, server, "torch", "torch_ddp.py"),
            }
            results["torch"] = measure("torch", sides, root, args)
        if args.framework in ("tensorflow", "both"):
            missing = tensorflow_launcher_missing()
            if missing:
                why = f"aicloud has no TensorFlow launcher yet ({missing})"
                results["tensorflow"] = {"skipped": why}
                print(f"\nTensorFlow part SKIPPED: {why}", flush=True)
            else:
                sides = {
                    "bare": tf_bare,
                    "aicloud": aicloud_launch(client, server, "tensorflow", "tf_mwms.py"),
                }
                results["tensorflow"] = measure("tensorflow", sides, root, args)
    results["load_after"] = load_average()
    return results


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark, print the tables, write the JSON."""
    args = parse_args(argv)
    handle_signals()
    for name in THREAD_VARIABLES:  # each side sets them, or shows its default
        os.environ.pop(name, None)
    began = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="aicloud-bench-train-") as tmp:
        results = run(args, Path(tmp))
    results["wall_seconds"] = round(time.perf_counter() - began, 1)
    print("\n" + describe_machine(results["machine"]))
    print(f"load average before {results['load_before']}, after {results['load_after']}")
    for name in ("torch", "tensorflow"):
        if name in results:
            print_framework(name, results[name])
    save_results(results, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
