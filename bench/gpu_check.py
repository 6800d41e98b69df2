"""GPU check: a 2-process NCCL DDP job through aicloud against bare ``torchrun``.

For a machine with at least 2 CUDA GPUs (and a CUDA build of torch); elsewhere it says so and
exits 0 (``--require-gpu``: exit 1). The same MLP training script (``workloads/torch_ddp.py
--device cuda``, one GPU per process) runs bare (``torchrun --standalone --nproc-per-node 2``)
and as ``{"kind": "train", "framework": "torch", "resources": {"procs_per_node": 2,
"accelerator": "nvidia.com/gpu", "accelerator_count": 2}}`` through a real ``jupyter server``
with aicloud on loopback, in interleaved pairs. Prints throughput (samples/s) side by side,
the ratio, and the time to the first step.

Run: ``.venv/bin/python bench/gpu_check.py`` (part of ``make bench``); JSON goes to
``bench/out/gpu_check.json``.
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
from pathlib import Path

from _common import (
    describe_machine,
    handle_signals,
    load_average,
    machine,
    now_iso,
    running_server,
    save_results,
)
from aicloud.launchers.base import threads_per_process
from train_overhead import THREAD_VARIABLES, WORKLOADS, aicloud_launch, one_run, torch_bare

OUT = Path(__file__).resolve().parent / "out" / "gpu_check.json"
GPUS = 2
RESOURCES = {"accelerator": "nvidia.com/gpu", "accelerator_count": GPUS}


def probe_gpus() -> dict:
    """What torch sees, asked in a child process so that this one holds no CUDA context."""
    code = (
        "import json, torch; n = torch.cuda.device_count(); print(json.dumps({'count': n, "
        "'torch': torch.__version__, 'cuda': torch.version.cuda, "
        "'names': [torch.cuda.get_device_name(i) for i in range(n)]}))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True
    )
    found = json.loads(done.stdout.strip().splitlines()[-1])
    found["build"] = f"torch {found['torch']}, CUDA {found['cuda'] or 'none (a CPU-only build)'}"
    return found


def measure(args: argparse.Namespace, home: Path) -> dict:
    """Interleaved pairs of bare and aicloud runs (order alternating), after one warm-up pair."""
    device = "cpu" if args.cpu_plumbing else "cuda"
    extra = ("--device", device, "--width", str(args.width), "--batch", str(args.batch))
    env = {"OMP_NUM_THREADS": str(threads_per_process(GPUS))}
    runs: dict[str, list[dict]] = {"bare": [], "aicloud": []}
    with running_server(home, settle=True) as server, server.client() as client:
        root = server.root_dir
        shutil.copy(WORKLOADS / "torch_ddp.py", root / "torch_ddp.py")
        sides = {
            "bare": torch_bare,
            # A machine without GPUs refuses the accelerator request (400), rightly.
            "aicloud": aicloud_launch(
                client, server, "torch", "torch_ddp.py", None if args.cpu_plumbing else RESOURCES
            ),
        }
        for i in range(args.pairs + 1):
            order = list(sides) if i % 2 == 0 else list(reversed(sides))
            for side in order:
                out = root / f"{side}-{i}.json"
                run = one_run(sides[side], root, out, args.steps, env, extra)
                if i > 0:  # pair 0 warms up: CUDA context, NCCL, caches
                    runs[side].append(run)
                print(
                    f"  pair {i}/{args.pairs} {side:<7}: first step {run['first_step_s']:.2f} s, "
                    f"{run['samples_per_s']:.0f} samples/s" + (" (warm-up)" if i == 0 else ""),
                    flush=True,
                )
    return runs


def summarize(runs: dict[str, list[dict]]) -> dict:
    """Median samples/s and time to first step per side, and their ratio and difference."""
    medians = {
        side: {
            key: statistics.median(r[key] for r in side_runs)
            for key in ("samples_per_s", "first_step_s")
        }
        for side, side_runs in runs.items()
    }
    return {
        "medians": medians,
        "samples_per_s_ratio": medians["aicloud"]["samples_per_s"]
        / medians["bare"]["samples_per_s"],
        "first_step_added_s": medians["aicloud"]["first_step_s"] - medians["bare"]["first_step_s"],
    }


def print_report(results: dict) -> None:
    """Throughput side by side, the ratio, the time to first step."""
    s, m = results["summary"], results["summary"]["medians"]
    print("\n" + describe_machine(results["machine"]))
    print(f"GPUs: {', '.join(results['gpus']) or 'none'}; {results['torch']}")
    print(f"\n{results['pairs']} pairs, {results['steps']} steps, medians")
    print(f"{'':<24}{'bare':>12}{'aicloud':>12}")
    for key, label, digits in (
        ("samples_per_s", "samples/s", 0),
        ("first_step_s", "first step done (s)", 2),
    ):
        print(f"{label:<24}{m['bare'][key]:>12.{digits}f}{m['aicloud'][key]:>12.{digits}f}")
    print(f"samples/s ratio aicloud/bare: {s['samples_per_s_ratio']:.3f}")
    print(f"time to first step added: {s['first_step_added_s']:+.2f} s")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Command-line options; the defaults are the documented check."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pairs", type=int, default=3, help="measured pairs")
    parser.add_argument("--steps", type=int, default=500, help="steps per run")
    parser.add_argument("--width", type=int, default=2048, help="MLP width")
    parser.add_argument("--batch", type=int, default=512, help="samples per GPU and step")
    parser.add_argument("--require-gpu", action="store_true", help="exit 1 without 2 GPUs")
    parser.add_argument(
        "--cpu-plumbing",
        action="store_true",
        help="no GPU: run the same flow on CPU (gloo) to check the plumbing, not for numbers",
    )
    parser.add_argument("--out", type=Path, default=OUT, help="where the JSON goes")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Check for GPUs, run the pairs, print the table, write the JSON."""
    args = parse_args(argv)
    gpus = probe_gpus()
    if gpus["count"] < GPUS and not args.cpu_plumbing:
        print(
            f"gpu_check: SKIPPED - needs {GPUS} CUDA GPUs, torch sees {gpus['count']} "
            f"({gpus['build']}). "
            "Run it on a machine with 2 or more NVIDIA GPUs and a CUDA build of torch."
        )
        return 1 if args.require_gpu else 0
    handle_signals()
    for name in THREAD_VARIABLES:
        os.environ.pop(name, None)
    began = time.perf_counter()
    results = {
        "date": now_iso(),
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "machine": machine(),
        "gpus": gpus["names"],
        "torch": gpus["build"],
        "load_before": load_average(),
        "pairs": args.pairs,
        "steps": args.steps,
    }
    with tempfile.TemporaryDirectory(prefix="aicloud-bench-gpu-") as tmp:
        results["runs"] = measure(args, Path(tmp))
    results["summary"] = summarize(results["runs"])
    results["wall_seconds"] = round(time.perf_counter() - began, 1)
    print_report(results)
    save_results(results, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
