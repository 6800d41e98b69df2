"""Live output of jobs into a cell: latency from a worker's print to the kernel, and the cost
of streaming to a training loop.

1. **Latency.** A job prints a wall-clock stamp every 20 ms (a 1-process ``command`` job, and a
   2-rank torch job under torchrun). This process follows it exactly as ``%%aicloud train``
   does (``aicloud.magics.follow.Follower``: the chunked ``GET /logs?follow=true`` stream, line
   splitting, rank filters) and records when each line arrives. Reports p50/p99 of arrival
   minus stamp; the goal is at most 0.5 s.
2. **Overhead.** A job runs a fixed CPU training loop (torch matmuls on ONE thread, so that the
   other core is left to the log pipeline) and times itself in three variants: ``quiet`` (no
   output), ``printing`` 10,000 lines/s that nobody follows, and ``followed``: the same
   printing while this process follows the stream live. Each round runs the three once, in an
   order that rotates from round to round; the report gives the medians of the per-round
   ratios (followed / printing is the cost of streaming; followed / quiet adds the job's own
   printing). The goal is under 2 %. Every variant polls the job as a cell does (twice a
   second), so the log stream is the only difference between ``printing`` and ``followed``.
   For each run it also accounts the CPU time of each part of the pipeline: the worker (its
   own ``os.times()``), the supervisor and launcher (the server's reaped-children time minus
   the worker's), the server (its own threads) and the follower (this process).

    .venv/bin/python bench/log_streaming.py [--rounds 9] [--lines 300] [--steps 400]
        [--framework command|torch|tensorflow] [--ranks 0] [--skip-latency]
"""

from __future__ import annotations

import argparse
import contextlib
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path

import psutil

from _common import (
    TOKEN,
    handle_signals,
    load_average,
    machine,
    now_iso,
    running_server,
    save_results,
    summary,
)
from aicloud.client import AICloudClient, Connection
from aicloud.magics.follow import POLL_SECONDS, TERMINAL, Follower

STAMPER = """
import time
for i in range({lines}):
    print("stamp", repr(time.time()), flush=True)
    time.sleep(0.02)
"""

LOOP = """
import os, time
import torch
torch.set_num_threads(1)
a = torch.randn(192, 192)
stream, steps, rate = {stream}, {steps}, {rate}
line = "x" * 60
for _ in range(20):
    a @ a
printed = 0
start = time.perf_counter()
for step in range(steps):
    for _ in range(20):
        b = a @ a
    if stream:
        # `rate` lines/s: as many lines as are due by now.
        due = int((time.perf_counter() - start) * rate) - printed
        for _ in range(max(0, due)):
            print(line, step)
        printed += max(0, due)
elapsed = time.perf_counter() - start
cpu = os.times()
print("LOOP", repr(elapsed), "lines", printed, "cpu", repr(cpu.user + cpu.system), flush=True)
"""

VARIANTS = ("quiet", "printing", "followed")


class Recorder:
    """A follower display that records when stamped lines arrive, and the loop's timing.

    It counts lines and looks for ``LOOP`` with ``str`` methods over the whole chunk, so that
    the display itself costs little at 10,000 lines/s; only stamped lines are parsed one by one.
    """

    def __init__(self, stamps: bool = False):
        self.stamps = stamps
        self.delays: list[float] = []
        self.count = 0
        self.loop: str | None = None

    def lines(self, text: str) -> None:
        now = time.time()
        self.count += text.count("\n")
        if self.stamps:
            for line in text.splitlines():
                body = line.split("]:", 1)[-1]
                if body.startswith("stamp "):
                    self.delays.append(now - float(body.split()[1]))
        at = text.find("LOOP ")
        if at >= 0:
            self.loop = text[at : text.find("\n", at)]

    def update(self, job: dict, metrics: dict) -> None:
        """Status and progress are not measured here."""

    def note(self, text: str) -> None:
        print("  note:", text, file=sys.stderr)


def connect(server) -> AICloudClient:
    """A client of the service, as the magics build one."""
    return AICloudClient(Connection(f"http://127.0.0.1:{server.port}/", TOKEN, "bench"))


def follow(server, spec: dict, ranks: list[int] | None = None) -> Recorder:
    """Submit ``spec`` and follow it like a cell does; return what was recorded."""
    with connect(server) as client:
        job = client.submit(spec)
        display = Recorder(stamps=True)
        Follower(client, job["id"], ranks=ranks).follow(display)
        ended = client.get(job["id"])
        if ended["status"] != "succeeded":
            raise RuntimeError(f"{spec.get('name')}: {ended['status']}: {ended['reason']}")
        return display


def measure_latency(server, lines: int) -> dict:
    """p50/p99 of print-to-follower delays, for a command job and a 2-rank torch job."""
    latency = {}
    for label, spec in (
        ("command, 1 process", {"kind": "command"}),
        (
            "torch, 2 ranks",
            {"kind": "train", "framework": "torch", "resources": {"procs_per_node": 2}},
        ),
    ):
        display = follow(server, {**spec, "name": "stamps", "source": STAMPER.format(lines=lines)})
        latency[label] = summary(display.delays)
        print(f"latency {label}: {latency[label]}", flush=True)
    return latency


# -- the overhead of streaming ------------------------------------------------------------------


def loop_spec(variant: str, framework: str, steps: int, rate: int) -> dict:
    """The loop job of one variant: 1 process, 1 thread, as a command or a 1-rank train job."""
    source = LOOP.format(stream=variant != "quiet", steps=steps, rate=rate)
    spec = {"name": f"loop-{variant}", "source": source, "env": {"OMP_NUM_THREADS": "1"}}
    if framework == "command":
        return {**spec, "kind": "command"}
    return {**spec, "kind": "train", "framework": framework, "resources": {"procs_per_node": 1}}


def wait_polling(client: AICloudClient, job_id: str) -> dict:
    """Wait for the job as a follower does, without the log: job and metrics twice a second."""
    while True:
        job = client.get(job_id)
        client.metrics(job_id)
        if job["status"] in TERMINAL:
            return job
        time.sleep(POLL_SECONDS)


def children(pid: int) -> set[int]:
    """Pids of the children of ``pid``, zombies (ended, not yet reaped) included."""
    found = set()
    for task in Path(f"/proc/{pid}/task").iterdir():  # a child belongs to the thread that forked
        with contextlib.suppress(OSError):
            found.update(int(p) for p in (task / "children").read_text().split())
    return found


def server_cpu(server_pid: int) -> tuple[float, float]:
    """The server's own CPU seconds, and those of the children it reaped (supervisors)."""
    times = psutil.Process(server_pid).cpu_times()
    return times.user + times.system, times.children_user + times.children_system


def thread_cpu() -> float:
    """CPU seconds of the calling thread."""
    usage = resource.getrusage(resource.RUSAGE_THREAD)
    return usage.ru_utime + usage.ru_stime


def run_loop(server, variant: str, args) -> dict:
    """One loop job: its own timing, and the CPU each part of the pipeline spent on it."""
    spec = loop_spec(variant, args.framework, args.steps, args.rate)
    before = children(server.process.pid)  # the warm kernel pool's, say
    own0, reaped0 = server_cpu(server.process.pid)
    process0, main0, wall0 = time.process_time(), thread_cpu(), time.monotonic()
    with connect(server) as client:
        job = client.submit(spec)
        if variant == "followed":
            display = Recorder()
            Follower(client, job["id"], ranks=args.ranks).follow(display)
            ended = client.get(job["id"])
        else:
            display = None
            ended = wait_polling(client, job["id"])
    process1, main1, wall1 = time.process_time(), thread_cpu(), time.monotonic()
    if ended["status"] != "succeeded":
        raise RuntimeError(f"{spec['name']}: {ended['status']}: {ended['reason']}")
    deadline = time.monotonic() + 10  # until the server has reaped the job's supervisor
    while children(server.process.pid) - before and time.monotonic() < deadline:
        time.sleep(0.05)
    own1, reaped1 = server_cpu(server.process.pid)
    log = (server.run_dir(job["id"]) / "output.log").read_text(errors="replace")
    loop_line = next(line for line in log.splitlines() if "LOOP " in line)
    fields = loop_line.split("LOOP ", 1)[1].split()
    seconds, lines, worker = float(fields[0]), int(fields[2]), float(fields[4])
    result = {
        "variant": variant,
        "loop_s": seconds,
        "lines": lines,
        "job_wall_s": round(wall1 - wall0, 3),
        "cpu_s": {
            "worker": round(worker, 3),
            "supervisor_and_launcher": round(reaped1 - reaped0 - worker, 3),
            "server": round(own1 - own0, 3),
            "follower_reader_thread": round((process1 - process0) - (main1 - main0), 3),
            "follower_main_thread": round(main1 - main0, 3),
        },
    }
    if display is not None:
        result["lines_seen"] = display.count
        if display.loop is None:
            raise RuntimeError("the follower did not see the loop's timing line")
    return result


def order_of(number: int) -> list[str]:
    """The variants' order in round ``number``: rotated so that each takes every position."""
    shift = number % len(VARIANTS)
    return list(VARIANTS[shift:] + VARIANTS[:shift])


def describe_cpu(run: dict) -> str:
    """CPU seconds of each part of the pipeline during one job (start-up included)."""
    return ", ".join(f"{k} {v:.2f}" for k, v in run["cpu_s"].items())


def streaming_cost(runs: dict) -> dict:
    """What following adds to each part, in % of one core while the loop runs.

    (CPU seconds when followed - when printing unfollowed) / the followed loop's seconds.
    """
    followed, printing = runs["followed"], runs["printing"]
    return {
        part: (followed["cpu_s"][part] - printing["cpu_s"][part]) / followed["loop_s"] * 100
        for part in followed["cpu_s"]
    }


def measure_overhead(server, args) -> dict:
    """Interleaved rounds of the three variants; medians of the per-round ratios."""
    rounds = []
    for number in range(args.rounds):
        runs = {v: run_loop(server, v, args) for v in order_of(number)}
        seconds = {v: runs[v]["loop_s"] for v in VARIANTS}
        ratios = {
            "followed_vs_printing": seconds["followed"] / seconds["printing"] - 1,
            "followed_vs_quiet": seconds["followed"] / seconds["quiet"] - 1,
            "printing_vs_quiet": seconds["printing"] / seconds["quiet"] - 1,
        }
        load = load_average()
        rounds.append({"order": order_of(number), "runs": runs, "ratios": ratios, "load": load})
        print(
            f"round {number + 1} ({'/'.join(order_of(number))}): "
            + ", ".join(f"{v} {seconds[v]:.3f} s" for v in VARIANTS)
            + f"; followed/printing {ratios['followed_vs_printing']:+.1%}"
            + f", followed/quiet {ratios['followed_vs_quiet']:+.1%}; load {load[0]}",
            flush=True,
        )
        cost = streaming_cost(runs)
        rounds[-1]["streaming_cost_percent_of_a_core"] = cost
        print(f"  cpu s, followed: {describe_cpu(runs['followed'])}", flush=True)
        print(f"  cpu s, printing: {describe_cpu(runs['printing'])}", flush=True)
        print(
            "  following adds (% of a core): "
            + ", ".join(f"{k} {v:+.1f}" for k, v in cost.items()),
            flush=True,
        )
        seen, printed = runs["followed"].get("lines_seen", 0), runs["followed"]["lines"]
        if args.ranks is None and seen < printed:
            raise RuntimeError(f"the follower saw {seen} lines of the {printed} printed")
    medians = {
        f"median_{name}_percent": round(
            statistics.median(r["ratios"][name] for r in rounds) * 100, 2
        )
        for name in ("followed_vs_printing", "followed_vs_quiet", "printing_vs_quiet")
    }
    cpu = {
        variant: {
            part: round(statistics.median(r["runs"][variant]["cpu_s"][part] for r in rounds), 3)
            for part in rounds[0]["runs"][variant]["cpu_s"]
        }
        for variant in VARIANTS
    }
    cost = {
        part: round(
            statistics.median(r["streaming_cost_percent_of_a_core"][part] for r in rounds), 2
        )
        for part in rounds[0]["streaming_cost_percent_of_a_core"]
    }
    loop = {
        v: round(statistics.median(r["runs"][v]["loop_s"] for r in rounds), 3) for v in VARIANTS
    }
    return {
        "rounds": rounds,
        "median_loop_s": loop,
        "median_cpu_s": cpu,
        "median_streaming_cost_percent_of_a_core": cost,
        **medians,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=9, help="rounds of the three loop variants")
    parser.add_argument("--lines", type=int, default=300, help="stamped lines per latency job")
    parser.add_argument("--steps", type=int, default=400, help="loop steps (20 matmuls each)")
    parser.add_argument("--rate", type=int, default=10_000, help="lines per second printed")
    parser.add_argument(
        "--framework",
        choices=("command", "torch", "tensorflow"),
        default="command",
        help="run the loop as a command job, or as a 1-rank train job (rank-prefixed lines)",
    )
    parser.add_argument(
        "--ranks",
        type=lambda text: [int(r) for r in text.split(",")],
        default=None,
        help="follow only these ranks (as %%aicloud train --ranks does)",
    )
    parser.add_argument("--skip-latency", action="store_true", help="only the overhead part")
    parser.add_argument(
        "--out", type=Path, default=Path(__file__).parent / "out" / "log_streaming.json"
    )
    args = parser.parse_args()
    handle_signals()
    started = time.monotonic()
    results = {
        "date": now_iso(),
        "machine": machine(),
        "load_before": load_average(),
        "settings": {k: v for k, v in vars(args).items() if k != "out"},
    }
    print(f"load average before: {results['load_before']}", flush=True)
    with (
        tempfile.TemporaryDirectory(prefix="aicloud-bench-logs-") as home,
        running_server(Path(home), settle=True) as server,
    ):
        if not args.skip_latency:
            results["latency"] = measure_latency(server, args.lines)
        if args.rounds > 0:
            results["overhead"] = measure_overhead(server, args)
    results["load_after"] = load_average()
    results["wall_seconds"] = round(time.monotonic() - started, 1)
    if "overhead" in results:
        overhead = results["overhead"]
        print(f"median loop seconds: {overhead['median_loop_s']}")
        for variant, parts in overhead["median_cpu_s"].items():
            print(
                f"median CPU s per {variant} job: "
                + ", ".join(f"{k} {v}" for k, v in parts.items())
            )
        cost = overhead["median_streaming_cost_percent_of_a_core"]
        print(
            "median CPU that following adds, % of one core while the loop runs: "
            + ", ".join(f"{k} {v:+}" for k, v in cost.items())
        )
        print(
            "median slow-down of the loop from following its "
            f"{args.rate:,} lines/s live: {overhead['median_followed_vs_printing_percent']} % "
            f"(vs printing unfollowed), {overhead['median_followed_vs_quiet_percent']} % "
            f"(vs a quiet loop); printing alone {overhead['median_printing_vs_quiet_percent']} %"
        )
    print(f"load average after: {results['load_after']}")
    save_results(results, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
