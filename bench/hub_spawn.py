"""Spawn to ready on the local hub: user servers with aicloud against bare jupyterhub-singleuser.

Two real hubs (spawner_config/jupyterhub_config.py with configurable-http-proxy), one after the
other. In the first, servers run as the hub config makes them: jupyterhub-singleuser with
JupyterLab and aicloud's forwarder. In the second, the same servers with every aicloud
extension disabled (``--ServerApp.jpserver_extensions=aicloud.hub.forward=False``). For each,
``--spawns`` new users are spawned one at a time, timing the REST call to the moment the hub
reports the server ready; the ratio of the medians is the overhead of aicloud on spawn.
Most of a spawn is the hub's jittered readiness poll, so medians of several runs matter.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._common import describe_machine, load_average, machine, now_iso, save_results
from tests.hub_helpers import LocalHub

BARE = """
c.Spawner.args = [a for a in c.Spawner.args if "aicloud" not in a] + [
    "--ServerApp.jpserver_extensions=aicloud=False",
    "--ServerApp.jpserver_extensions=aicloud.hub.forward=False",
]
"""


def spawn_times(label: str, extra_config: str, spawns: int) -> list[float]:
    """Seconds from spawn request to ready, for ``spawns`` new users on a fresh hub."""
    state = Path(tempfile.mkdtemp(prefix=f"hub-bench-{label}-"))
    hub = LocalHub(state=state, extra_config=extra_config)
    times = []
    try:
        hub.start()
        for i in range(spawns):
            name = f"{label}{i}"
            started = time.perf_counter()
            response = hub.spawn(name, {"profile": "cpu-small"})
            if response.status_code >= 400:
                raise RuntimeError(f"spawn of {name}: {response.status_code} {response.text}")
            times.append(time.perf_counter() - started)
            hub.stop_server(name)
    finally:
        hub.stop()
        shutil.rmtree(state, ignore_errors=True)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--spawns", type=int, default=7, help="spawns per variant")
    parser.add_argument("--out", type=Path, default=Path("bench/out/hub_spawn.json"))
    args = parser.parse_args()
    wall = time.perf_counter()
    load = load_average()
    aicloud = spawn_times("aicloud", "", args.spawns)
    bare = spawn_times("bare", BARE, args.spawns)
    results = {
        "date": now_iso(),
        "machine": machine(),
        "load_average_at_start": load,
        "spawns": args.spawns,
        "aicloud_seconds": [round(t, 3) for t in aicloud],
        "bare_seconds": [round(t, 3) for t in bare],
        "aicloud_median": round(statistics.median(aicloud), 3),
        "bare_median": round(statistics.median(bare), 3),
    }
    results["ratio"] = round(results["aicloud_median"] / results["bare_median"], 2)
    results["wall_seconds"] = round(time.perf_counter() - wall, 1)
    print(describe_machine(results["machine"]), f"load {load}")
    print(f"{'variant':<10} {'median s':>9} {'min s':>7} {'max s':>7}")
    for label, times in (("aicloud", aicloud), ("bare", bare)):
        print(f"{label:<10} {statistics.median(times):9.2f} {min(times):7.2f} {max(times):7.2f}")
    print(f"ratio (aicloud / bare, medians): {results['ratio']}")
    save_results(results, args.out)


if __name__ == "__main__":
    main()
