"""``GET /jobs/{id}/usage``: the supervisor samples an attempt's process tree into its run
directory; the samples survive a kill -9 of the service, and a half-written line is skipped.

Real servers (``live_server_factory``, sampling every 0.2 s) and a real job: a parent that
spins a core and a child that holds 80 MB, so that the tree, not one process, is measured.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from tests.conftest import wait_for

INTERVAL = "0.2"
HOLD = 80 * 2**20
SOURCE = f"""
import subprocess, sys, time
child = subprocess.Popen([sys.executable, "-c",
    "import time; block = bytearray({HOLD}); block[::4096] = b'x' * len(block[::4096]); "
    "time.sleep(60)"])
end = time.time() + 60
while time.time() < end:
    sum(range(10000))
"""


def start(factory):
    return factory(extra_args=(f"--LocalBackend.usage_interval_seconds={INTERVAL}",))


def usage(api, job_id: str, **params) -> dict:
    answer = api.get(f"jobs/{job_id}/usage", params=params)
    assert answer.status_code == 200, answer.text
    return answer.json()


def test_usage_is_sampled_over_the_tree_and_survives_a_kill_9(live_server_factory):
    server = start(live_server_factory)
    with server.api() as api:
        job = api.post("jobs", json={"source": SOURCE, "timeout_seconds": 50}).json()
        job_id = job["id"]

        def held():  # the child holds its block, the parent spins
            points = usage(api, job_id)["points"]
            return points if points and points[-1]["rss_bytes"] > HOLD else None

        points = wait_for(held, timeout=40, interval=0.2)
        first = usage(api, job_id)
        assert first["interval_seconds"] == float(INTERVAL)
        assert first["next"] == len(first["points"]) >= len(points)
        point = first["points"][-1]
        assert point["attempt"] == 1 and point["gpus"] == []
        # One core spins (100 = one core); on a loaded machine it gets what it gets.
        busiest = max(p["cpu_percent"] for p in first["points"])
        assert 5 < busiest <= 100 * (os.cpu_count() or 1) * 1.1, first["points"]
        times = [p["t"] for p in first["points"]]
        assert times == sorted(times)
        later = usage(api, job_id, since=first["next"])
        assert all(p["t"] > times[-1] for p in later["points"])

    server.stop(kill=True)  # the supervisor keeps sampling while no service runs
    restarted = start(live_server_factory)
    with restarted.api() as api:
        grown = wait_for(
            lambda: (u := usage(api, job_id))["next"] > first["next"] + 3 and u, timeout=30
        )
        assert grown["points"][: len(first["points"])] == first["points"]
        assert api.post(f"jobs/{job_id}/cancel").status_code == 200

        # A line cut short by a kill: skipped, the points before and after it still served.
        samples = Path(restarted.data_dir) / "runs" / job_id / "attempt-1.usage.jsonl"
        ended = usage(api, job_id, limit=10000)
        with open(samples, "a") as f:
            f.write('{"t": 1, "attempt": 1, "cpu_per')
        assert usage(api, job_id, limit=10000) == ended  # still being written: not yet counted
        with open(samples, "a") as f:
            f.write("\n" + json.dumps({**ended["points"][-1], "t": 2.5}) + "\n")
        after = usage(api, job_id, limit=10000)
        assert after["points"] == [*ended["points"], {**ended["points"][-1], "t": 2.5}]
        assert after["next"] == ended["next"] + 2  # the broken line counts, but is left out

        # Paging: limit and since walk the same sequence.
        half = usage(api, job_id, limit=3)
        assert half["points"] == after["points"][:3] and half["next"] == 3
        assert usage(api, job_id, since=after["next"])["points"] == []
        assert usage(api, job_id, since=10**9)["next"] == after["next"]

        for params, field in [({"since": -1}, "since"), ({"limit": 0}, "limit")]:
            answer = api.get(f"jobs/{job_id}/usage", params=params)
            assert answer.status_code == 400 and answer.json()["message"].startswith(field)
        assert api.get("jobs/job-000000000000/usage").status_code == 404


def test_a_long_attempt_keeps_a_bounded_thinned_file(tmp_path):
    """Past ``keep`` points the older half is thinned: the span stays, the file stays small."""
    from aicloud.backends.supervise import UsageSampler
    from aicloud.usage import read_usage, usage_file

    path = tmp_path / usage_file(1)
    sampler = UsageSampler({"file": str(path), "attempt": 1, "keep": 10}, [])
    for n in range(100):
        point = {"t": float(n), "attempt": 1, "cpu_percent": 1.0, "rss_bytes": n, "gpus": []}
        sampler.record(json.dumps(point).encode() + b"\n")
    points, following = read_usage(tmp_path, 1, 0, 1000)
    times = [p["t"] for p in points]
    assert len(points) <= 10 and following == len(points)
    assert times[0] == 0.0 and times[-1] == 99.0  # the whole span
    assert times == sorted(times) and times[-5:] == [95.0, 96.0, 97.0, 98.0, 99.0]


def test_a_gpu_jobs_samples_carry_its_leased_gpus(live_server_factory, monkeypatch):
    """Without NVML the supervisor asks ``nvidia-smi`` (here the FAKE one of tests/fakes, two
    H100s): the samples name only the GPU the job leased."""
    fakes = Path(__file__).parent / "fakes"
    monkeypatch.setenv("PATH", f"{fakes}{os.pathsep}{os.environ['PATH']}")
    server = start(live_server_factory)
    with server.api() as api:
        spec = {
            "command": ["sleep", "30"],
            "resources": {"accelerator": "nvidia.com/gpu", "accelerator_count": 1},
        }
        first = api.post("jobs", json=spec).json()
        second = api.post("jobs", json=spec).json()
        try:
            for job, index in ((first, 0), (second, 1)):
                points = wait_for(lambda j=job: usage(api, j["id"])["points"], timeout=30)
                assert points[-1]["gpus"] == [
                    {
                        "index": index,
                        "utilization_percent": 0.0,
                        "memory_used_bytes": 0,
                        "memory_total_bytes": 81559 * 2**20,
                    }
                ]
        finally:
            for job in (first, second):
                api.post(f"jobs/{job['id']}/cancel")
