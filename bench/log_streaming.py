"""Live output of jobs into a cell: latency from a worker's print to the kernel, and the cost
of streaming to a training loop.

1. **Latency.** A job prints a wall-clock stamp every 20 ms (a 1-process ``command`` job, and a
   2-rank torch job under torchrun). This process follows it exactly as ``%%aicloud train``
   does (``aicloud.magics.follow.Follower``: the chunked ``GET /logs?follow=true`` stream, line
   splitting, rank filters) and records when each line arrives. Reports p50/p99 of arrival
   minus stamp; the goal is at most 0.5 s.
2. **Overhead.** A job runs a fixed CPU training loop (torch matmuls, 2 threads) and times
   it itself, quiet (no output) or printing 10,000 lines/s while this process follows the
   stream. Quiet and streaming runs alternate ``--rounds`` times; reports the median of the
   paired slow-downs. The goal is under 2 %.

    .venv/bin/python bench/log_streaming.py [--rounds 5] [--lines 300]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

from _common import (
    TOKEN,
    handle_signals,
    load_average,
    machine,
    now_iso,
    running_server,
    save_results,
    summary,
    wait_ended,
)
from aicloud.client import AICloudClient, Connection
from aicloud.magics.follow import Follower

STAMPER = """
import time
for i in range({lines}):
    print("stamp", repr(time.time()), flush=True)
    time.sleep(0.02)
"""

LOOP = """
import os, sys, time
import torch
torch.set_num_threads(2)
a = torch.randn(192, 192)
stream = {stream}
line = "x" * 60
steps, per_step = 400, 0
start = time.perf_counter()
spent = 0.0
for step in range(steps):
    t0 = time.perf_counter()
    for _ in range(20):
        b = a @ a
    if stream:
        # 10,000 lines/s: as many lines as the step's share of a second.
        due = int((time.perf_counter() - start) * 10_000) - per_step
        for _ in range(max(0, due)):
            print(line, step)
        per_step += max(0, due)
    spent += time.perf_counter() - t0
print("LOOP", repr(time.perf_counter() - start), "lines", per_step, flush=True)
"""


class Recorder:
    """A follower display that records when stamped lines arrive, and the loop's timing."""

    def __init__(self):
        self.delays: list[float] = []
        self.count = 0
        self.loop: float | None = None

    def lines(self, text: str) -> None:
        now = time.time()
        for line in text.splitlines():
            self.count += 1
            body = line.split("]:", 1)[-1]
            if body.startswith("stamp "):
                self.delays.append(now - float(body.split()[1]))
            elif body.startswith("LOOP "):
                self.loop = float(body.split()[1])

    def update(self, job: dict, metrics: dict) -> None:
        """Status and progress are not measured here."""

    def note(self, text: str) -> None:
        print("  note:", text, file=sys.stderr)


def follow(server, spec: dict) -> Recorder:
    """Submit ``spec`` and follow it like a cell does; return what was recorded."""
    connection = Connection(f"http://127.0.0.1:{server.port}/", TOKEN, "bench")
    with AICloudClient(connection) as client:
        job = client.submit(spec)
        display = Recorder()
        Follower(client, job["id"]).follow(display)
        ended = client.get(job["id"])
        if ended["status"] != "succeeded":
            raise RuntimeError(f"{spec.get('name')}: {ended['status']}: {ended['reason']}")
        return display


def loop_seconds(server, stream: bool, followed: bool = True) -> float:
    """One loop job's own timing: quiet, or printing 10,000 lines/s (followed live or not)."""
    spec = {
        "name": f"loop-{'stream' if stream else 'quiet'}{'' if followed else '-unfollowed'}",
        "kind": "command",
        "source": LOOP.format(stream=stream),
        "env": {"OMP_NUM_THREADS": "2"},
    }
    if followed:
        display = follow(server, spec)
        if display.loop is None:
            raise RuntimeError("the loop printed no timing")
        return display.loop
    with server.client() as api:
        job_id = api.post("jobs", json=spec).json()["id"]
        job = wait_ended(api, job_id, timeout=600)
        if job["status"] != "succeeded":
            raise RuntimeError(f"{spec['name']}: {job['status']}: {job['reason']}")
    log = (server.run_dir(job_id) / "output.log").read_text()
    return float(next(line for line in log.splitlines() if line.startswith("LOOP ")).split()[1])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=5, help="quiet/streaming pairs")
    parser.add_argument("--lines", type=int, default=300, help="stamped lines per latency job")
    parser.add_argument(
        "--out", type=Path, default=Path(__file__).parent / "out" / "log_streaming.json"
    )
    args = parser.parse_args()
    handle_signals()
    started = time.monotonic()
    results = {"date": now_iso(), "machine": machine(), "load_before": load_average()}
    with (
        tempfile.TemporaryDirectory(prefix="aicloud-bench-logs-") as home,
        running_server(Path(home)) as server,
    ):
        latency = {}
        for label, spec in (
            ("command, 1 process", {"kind": "command"}),
            (
                "torch, 2 ranks",
                {"kind": "train", "framework": "torch", "resources": {"procs_per_node": 2}},
            ),
        ):
            display = follow(
                server, {**spec, "name": "stamps", "source": STAMPER.format(lines=args.lines)}
            )
            latency[label] = summary(display.delays)
            print(f"latency {label}: {latency[label]}")
        results["latency"] = latency

        rounds = []
        for number in range(args.rounds):
            quiet = loop_seconds(server, stream=False)
            printing = loop_seconds(server, stream=True, followed=False)
            streaming = loop_seconds(server, stream=True)
            rounds.append(
                {
                    "quiet_s": quiet,
                    "printing_unfollowed_s": printing,
                    "streaming_followed_s": streaming,
                    "streaming_vs_printing": streaming / printing - 1,
                    "streaming_vs_quiet": streaming / quiet - 1,
                }
            )
            print(
                f"round {number + 1}: quiet {quiet:.3f} s, printing (not followed) "
                f"{printing:.3f} s, streaming to this process {streaming:.3f} s"
            )
        results["overhead"] = {
            "rounds": rounds,
            "median_streaming_vs_printing_percent": round(
                statistics.median(r["streaming_vs_printing"] for r in rounds) * 100, 2
            ),
            "median_streaming_vs_quiet_percent": round(
                statistics.median(r["streaming_vs_quiet"] for r in rounds) * 100, 2
            ),
        }
    results["load_after"] = load_average()
    results["wall_seconds"] = round(time.monotonic() - started, 1)
    overhead = results["overhead"]
    print(
        "median slow-down of the loop from following its 10,000 lines/s live: "
        f"{overhead['median_streaming_vs_printing_percent']} % (vs printing unfollowed), "
        f"{overhead['median_streaming_vs_quiet_percent']} % (vs a quiet loop)"
    )
    save_results(results, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
