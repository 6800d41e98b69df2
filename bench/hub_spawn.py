"""Spawn to ready on the local hub: user servers with aicloud against bare jupyterhub-singleuser.

One real hub (spawner_config/jupyterhub_config.py with configurable-http-proxy) serves both
variants, interleaved in pairs whose order alternates (A B, B A, ...), after ``--warmup``
uncounted pairs. ``aicloud`` users get servers as the hub config makes them:
jupyterhub-singleuser with JupyterLab and aicloud's forwarder. ``bare`` users get the same
servers with every aicloud server extension disabled (a ``pre_spawn_hook`` keyed on the user
name). Users are new on every spawn, and servers are stopped before the next spawn.

Three times per spawn, and the median of their per-pair ratios (aicloud / bare):

- ``hub``: the spawn REST call to the hub reporting the server ready (what a user waits for).
  It includes the hub's readiness poll: an exponential backoff with random jitter of up to
  5 s between checks, which no JupyterHub setting changes. ``--hub-poll fine`` (the default)
  patches it, in this benchmark's hub config only, to a check every 0–20 ms;
  ``--hub-poll default`` keeps JupyterHub's own.
- ``direct``: the spawn REST call to the server first answering its own ``/api``, polled
  every 10 ms by this script (servers listen on a port fixed for the run).
- ``server``: the server process's start (its start time in /proc, to 10 ms) to that first
  answer: the single-user server's own start-up, free of the hub. (``hub_to_process``, the
  spawn call to the process start, is the hub's and the spawner's share.)

    .venv/bin/python bench/hub_spawn.py [--pairs 8] [--warmup 1] [--hub-poll fine|default]
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx
import psutil

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._common import (
    describe_machine,
    free_port,
    load_average,
    machine,
    now_iso,
    save_results,
)
from tests.hub_helpers import LocalHub

VARIANTS = ("aicloud", "bare")
MEASURES = ("hub", "direct", "server")
DIRECT_POLL = 0.01  # seconds between this script's checks of the server's /api
READY_POLL = 0.02  # seconds between this script's checks of the hub's "ready"

BENCH_CONFIG = """
c.Spawner.port = {port}  # one server at a time: this script knows where to poll it

_hook = c.Spawner.get("pre_spawn_hook")


def _bench_variant(spawner):
    # "bare" users: the same server with every aicloud server extension off.
    if _hook:
        _hook(spawner)
    if spawner.user.name.startswith("bare"):
        spawner.args = [a for a in spawner.args if "aicloud" not in a] + [
            "--ServerApp.jpserver_extensions=aicloud=False",
            "--ServerApp.jpserver_extensions=aicloud.hub.forward=False",
        ]


c.Spawner.pre_spawn_hook = _bench_variant
"""

FINE_POLL_CONFIG = """
# Benchmark only: JupyterHub's readiness poll (utils.wait_for_http_server) waits a random
# 0 to min(5, 0.2 * 2**n) s between checks and has no setting; check every 0-20 ms instead.
import jupyterhub.utils as _hub_utils

_backoff = _hub_utils.exponential_backoff


def _fine_backoff(pass_func, fail_message, **kwargs):
    kwargs.update(start_wait=0.02, scale_factor=1, max_wait=0.02)
    return _backoff(pass_func, fail_message, **kwargs)


_hub_utils.exponential_backoff = _fine_backoff
"""


def wait_hub_ready(hub: LocalHub, name: str, started: float, out: dict) -> None:
    """Ask the hub to spawn ``name``'s server; record when the hub says it is ready."""
    try:
        with hub.admin() as admin:
            admin.post("/hub/api/users", json={"usernames": [name]})
            response = admin.post(f"/hub/api/users/{name}/server", json={"profile": "cpu-small"})
            if response.status_code >= 400:
                raise RuntimeError(f"spawn of {name}: {response.status_code} {response.text}")
            deadline = time.monotonic() + 120
            while time.monotonic() < deadline:
                server = admin.get(f"/hub/api/users/{name}").json()["servers"].get("", {})
                if server.get("ready"):
                    out["hub"] = time.perf_counter() - started
                    return
                time.sleep(READY_POLL)
        raise TimeoutError(f"{name}'s server did not become ready")
    except Exception as e:  # reported by the main thread
        out["error"] = e


def boot_clock() -> float:
    """Seconds since boot: the clock of process start times in /proc."""
    return time.clock_gettime(time.CLOCK_BOOTTIME)


def started_since_boot(pid: int) -> float:
    """When process ``pid`` started, in seconds since boot (to a clock tick, 10 ms).

    psutil's ``create_time()`` adds the boot time, which /proc gives in whole seconds.
    """
    with open(f"/proc/{pid}/stat") as stat:
        ticks = int(stat.read().rsplit(")", 1)[1].split()[19])
    return ticks / os.sysconf("SC_CLK_TCK")


def server_pid(port: int) -> int | None:
    """The process listening on ``port`` on loopback."""
    for connection in psutil.net_connections(kind="tcp"):
        if connection.status == psutil.CONN_LISTEN and connection.laddr.port == port:
            return connection.pid
    return None


def spawn_once(hub: LocalHub, name: str, port: int) -> dict:
    """The three times of one spawn (seconds), then stop the server."""
    out: dict = {}
    deadline = time.monotonic() + 30
    while server_pid(port) is not None and time.monotonic() < deadline:
        time.sleep(0.05)  # the previous server is still going away
    url = f"http://127.0.0.1:{port}/user/{name}/api"
    # The spawn request is made in a thread: the hub answers it only once the server is up.
    boot_started, started = boot_clock(), time.perf_counter()
    waiter = threading.Thread(target=wait_hub_ready, args=(hub, name, started, out))
    waiter.start()
    answered_at, deadline = None, time.monotonic() + 120
    with httpx.Client(timeout=2) as client:
        while "error" not in out and time.monotonic() < deadline:
            with contextlib.suppress(httpx.TransportError):
                if client.get(url).status_code == 200:  # this user's server, not a 404
                    answered_at = time.perf_counter()
                    break
            time.sleep(DIRECT_POLL)
    pid = server_pid(port) if answered_at is not None else None
    created = started_since_boot(pid) if pid else None
    waiter.join()
    if "error" in out:
        raise out["error"]
    if answered_at is None or created is None:
        raise RuntimeError(f"{name}'s server was not seen answering on port {port}")
    direct = answered_at - started
    hub.stop_server(name)
    return {
        "hub": out["hub"],
        "direct": direct,
        "server": boot_started + direct - created,
        "hub_to_process": created - boot_started,
    }


def pair_order(number: int) -> tuple[str, str]:
    """A B in even pairs, B A in odd ones."""
    return VARIANTS if number % 2 == 0 else VARIANTS[::-1]


def run(args) -> dict:
    """Warm-up pairs, then ``args.pairs`` measured pairs on one hub."""
    port = free_port()
    extra = BENCH_CONFIG.format(port=port)
    if args.hub_poll == "fine":
        extra += FINE_POLL_CONFIG
    state = Path(tempfile.mkdtemp(prefix="hub-bench-"))
    hub = LocalHub(state=state, extra_config=extra)
    pairs = []
    try:
        hub.start()
        for number in range(args.warmup + args.pairs):
            pair = {}
            for variant in pair_order(number):
                pair[variant] = spawn_once(hub, f"{variant}{number}", port)
            counted = number >= args.warmup
            if counted:
                pairs.append(pair)
            print(
                f"{'pair' if counted else 'warm-up'} {number - args.warmup + 1 if counted else ''}"
                f" ({'/'.join(pair_order(number))}): "
                + "; ".join(
                    f"{v} " + " ".join(f"{m} {pair[v][m]:.2f}" for m in MEASURES) for v in VARIANTS
                )
                + f"; load {load_average()[0]}",
                flush=True,
            )
        # every aicloud server loaded the forwarder to the hub service, and no bare one did
        loaded = hub.log().count("aicloud.hub.forward | extension was successfully loaded")
        spawned = args.warmup + args.pairs
        print(f"servers that loaded aicloud: {loaded} (aicloud spawns: {spawned})", flush=True)
        if loaded != spawned:
            raise RuntimeError(f"{loaded} servers loaded aicloud, expected {spawned}")
    finally:
        hub.stop()
        shutil.rmtree(state, ignore_errors=True)
    return {"pairs": pairs, "servers_with_aicloud": loaded}


def report(pairs: list[dict]) -> dict:
    """Medians per variant and measure, and medians of the paired ratios and differences."""
    out = {}
    for measure in (*MEASURES, "hub_to_process"):
        medians = {v: statistics.median(p[v][measure] for p in pairs) for v in VARIANTS}
        out[measure] = {
            **{f"{v}_median_s": round(medians[v], 3) for v in VARIANTS},
            **{f"{v}_min_s": round(min(p[v][measure] for p in pairs), 3) for v in VARIANTS},
            **{f"{v}_max_s": round(max(p[v][measure] for p in pairs), 3) for v in VARIANTS},
            "median_paired_ratio": round(
                statistics.median(p["aicloud"][measure] / p["bare"][measure] for p in pairs), 3
            ),
            "median_paired_difference_s": round(
                statistics.median(p["aicloud"][measure] - p["bare"][measure] for p in pairs), 3
            ),
        }
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pairs", type=int, default=8, help="measured aicloud/bare pairs")
    parser.add_argument("--warmup", type=int, default=1, help="uncounted pairs first")
    parser.add_argument(
        "--hub-poll",
        choices=("fine", "default"),
        default="fine",
        help="the hub's readiness poll: every 0-20 ms, or JupyterHub's own backoff",
    )
    parser.add_argument("--out", type=Path, default=Path("bench/out/hub_spawn.json"))
    args = parser.parse_args()
    if args.pairs < 1:
        parser.error("--pairs: at least 1")
    wall = time.perf_counter()
    results = {
        "date": now_iso(),
        "machine": machine(),
        "load_average_at_start": load_average(),
        "settings": {"pairs": args.pairs, "warmup": args.warmup, "hub_poll": args.hub_poll},
    }
    print(describe_machine(results["machine"]), f"load {results['load_average_at_start']}")
    pairs = run(args)["pairs"]
    results["pairs"] = [
        {v: {k: round(t, 3) for k, t in p[v].items()} for v in VARIANTS} for p in pairs
    ]
    results["summary"] = report(pairs)
    results["load_average_at_end"] = load_average()
    results["wall_seconds"] = round(time.perf_counter() - wall, 1)
    print(f"{'measure':<15} {'aicloud s':>9} {'bare s':>7} {'ratio':>6} {'diff s':>7}")
    for measure, row in results["summary"].items():
        print(
            f"{measure:<15} {row['aicloud_median_s']:9.2f} {row['bare_median_s']:7.2f} "
            f"{row['median_paired_ratio']:6.2f} {row['median_paired_difference_s']:+7.2f}"
        )
    print("(medians over the pairs; ratio and diff: medians of the paired aicloud/bare values)")
    print(f"load average at the end: {results['load_average_at_end']}")
    save_results(results, args.out)


if __name__ == "__main__":
    main()
