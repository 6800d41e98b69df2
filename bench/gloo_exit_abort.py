"""How often a 2-process gloo DDP run aborts at exit, under CPU load, with and without the fix.

torch 2.13 + gloo can kill a rank at exit with ``terminate called without an active exception``
(SIGABRT) after all its work is done: a gloo worker thread releases the last collective, whose
captured thread-local state holds a Python object, and takes the GIL while the interpreter is
finalizing (see ``aicloud.runtime._destroy_at_exit``). The race needs the worker thread to be
descheduled at the wrong moment, so this loads the CPUs with busy-loop processes and runs
``torchrun --standalone --nproc-per-node 2`` on a small DDP script many times, interleaving
the variants so that they see the same load:

- ``stock``: plain ``init_process_group("gloo")`` ... ``destroy_process_group()``;
- ``aicloud-nowait``: ``aicloud.runtime.init_distributed()`` with the wait for gloo's worker
  threads switched off (``wait_for_gloo_workers`` replaced by a no-op): aicloud before the fix;
- ``aicloud``: ``aicloud.runtime.init_distributed()`` as shipped.

A run counts as an abort when torchrun fails and a rank printed the libstdc++ message or died
by SIGABRT (exit code -6). Any other failure is counted apart and its output kept.

Run: ``.venv/bin/python bench/gloo_exit_abort.py [--runs 30] [--load 3] [--variants ...]``;
``--slow-gloo`` puts gloo's worker threads under ``SCHED_IDLE`` once the model is built, so
that the busy loops delay them: the same race, more often (6 of 15 stock runs here, not 1-4 of 30).
JSON goes to ``bench/out/gloo_exit_abort.json`` (``--json`` to choose another file). About
6-30 s per run on 2 shared, loaded cores.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _common import handle_signals, machine

OUT = Path(__file__).parent / "out"
ABORT_TEXT = "terminate called without an active exception"

BUILT = "opt = torch.optim.SGD(model.parameters(), lr=0.1)\n"
SLOW_GLOO = """import os
for tid in os.listdir("/proc/self/task"):
    with open(f"/proc/self/task/{tid}/comm") as f:
        if f.read().strip() == "pt_gloo_runloop":
            os.sched_setscheduler(int(tid), os.SCHED_IDLE, os.sched_param(0))
"""
TRAIN = """
model = DistributedDataParallel(nn.Linear(8, 1))
opt = torch.optim.SGD(model.parameters(), lr=0.1)
for step in range(20):
    x = torch.randn(32, 8)
    loss = (model(x) ** 2).mean()
    opt.zero_grad()
    loss.backward()
    opt.step()
dist.destroy_process_group()
"""
HEADER = """
import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel
"""
SCRIPTS = {
    "stock": HEADER + 'dist.init_process_group("gloo")\n' + TRAIN,
    "aicloud-nowait": HEADER
    + "from aicloud import runtime\n"
    + "runtime.wait_for_gloo_workers = lambda *a, **k: True  # aicloud before the fix\n"
    + "runtime.init_distributed()\n"
    + TRAIN,
    "aicloud": HEADER + "from aicloud import runtime\nruntime.init_distributed()\n" + TRAIN,
}


def run_once(script: Path, workdir: Path) -> dict:
    """One torchrun of ``script``; its outcome and output."""
    started = time.monotonic()
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node=2"]
    done = subprocess.run(
        [*torchrun, str(script)],
        cwd=workdir,
        capture_output=True,
        text=True,
        timeout=300,
    )
    output = done.stdout + done.stderr
    aborted = done.returncode != 0 and (ABORT_TEXT in output or "exitcode  : -6" in output)
    outcome = "ok" if done.returncode == 0 else "abort" if aborted else "other"
    return {"outcome": outcome, "seconds": time.monotonic() - started, "output": output}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=30, help="runs of each variant")
    parser.add_argument("--load", type=int, default=3, help="busy-loop processes alongside")
    parser.add_argument(
        "--slow-gloo",
        action="store_true",
        help="run gloo's worker threads under SCHED_IDLE (widens the race: more aborts)",
    )
    parser.add_argument("--variants", nargs="+", choices=list(SCRIPTS), default=list(SCRIPTS))
    parser.add_argument("--json", type=Path, default=OUT / "gloo_exit_abort.json")
    args = parser.parse_args()

    handle_signals()  # SIGTERM/SIGHUP still stop the load processes
    OUT.mkdir(exist_ok=True)
    counts = {name: {"ok": 0, "abort": 0, "other": 0} for name in args.variants}
    others: list[str] = []
    loaders = [
        subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(args.load)
    ]
    started = time.monotonic()
    try:
        with tempfile.TemporaryDirectory(prefix="gloo-exit-") as tmp:
            for name in args.variants:
                script = SCRIPTS[name]
                if args.slow_gloo:
                    script = script.replace(BUILT, BUILT + SLOW_GLOO)
                (Path(tmp) / f"repro_{name}.py").write_text(script)
            for index in range(args.runs):
                for name in args.variants:
                    result = run_once(Path(tmp) / f"repro_{name}.py", Path(tmp))
                    counts[name][result["outcome"]] += 1
                    if result["outcome"] == "other":
                        others.append(f"{name} run {index + 1}:\n{result['output'][-3000:]}")
                    print(
                        f"run {index + 1:3d} {name:15s} {result['outcome']:5s} "
                        f"{result['seconds']:.1f}s",
                        flush=True,
                    )
    finally:
        for loader in loaders:
            loader.kill()
            loader.wait()
    elapsed = time.monotonic() - started
    print(f"\n{'variant':15s} {'runs':>5s} {'aborts':>7s} {'other':>6s}")
    for name, count in counts.items():
        print(f"{name:15s} {sum(count.values()):5d} {count['abort']:7d} {count['other']:6d}")
    for text in others:
        print("\n--- other failure ---\n" + text)
    report = {
        "runs_per_variant": args.runs,
        "load_processes": args.load,
        "slow_gloo": args.slow_gloo,
        "machine": machine(),
        "load_average": list(os.getloadavg()),
        "seconds": round(elapsed, 1),
        "counts": counts,
        "other_failures": others,
    }
    args.json.write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
