"""Resource use of a job's attempts, as their supervisors sampled it, read from the run directory.

The local backend's supervisor (:class:`aicloud.backends.supervise.UsageSampler`) appends a
point every few seconds to ``attempt-<N>.usage.jsonl``: ``{"t", "attempt", "cpu_percent",
"rss_bytes", "gpus": [...]}``. The files outlive the service, so usage survives a restart. The
job owns its run directory, so a line is used only if it ended and has that shape; a line cut
short by a kill counts but is left out (as with metrics).
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from typing import Any

from aicloud.runs import attempt_file, open_run_file

DEFAULT_INTERVAL = 2.0


def usage_file(attempt: int) -> str:
    """The name of attempt ``attempt``'s usage file in the run directory."""
    return attempt_file(attempt, "usage.jsonl")


def nvml_module_dir() -> str | None:
    """The folder that holds ``pynvml`` (nvidia-ml-py) for the supervisor, if installed."""
    found = importlib.util.find_spec("pynvml")
    if found is None or found.origin is None:
        return None
    return str(Path(found.origin).parent)


def _number(value: Any) -> bool:
    return type(value) in (int, float)


def _gpu_point(gpu: Any) -> dict[str, Any] | None:
    if not isinstance(gpu, dict) or type(gpu.get("index")) is not int:
        return None
    utilization = gpu.get("utilization_percent")
    return {
        "index": gpu["index"],
        "utilization_percent": float(utilization) if _number(utilization) else None,
        "memory_used_bytes": int(gpu.get("memory_used_bytes") or 0),
        "memory_total_bytes": int(gpu.get("memory_total_bytes") or 0),
    }


def usage_point(line: str) -> dict[str, Any] | None:
    """A line of a usage file as the sampler writes it, or None."""
    try:
        point = json.loads(line)
    except ValueError:
        return None
    if not isinstance(point, dict):
        return None
    fields = (point.get("t"), point.get("cpu_percent"), point.get("rss_bytes"))
    if not all(_number(v) for v in fields) or type(point.get("attempt")) is not int:
        return None
    gpus = point.get("gpus") if isinstance(point.get("gpus"), list) else []
    return {
        "t": float(point["t"]),
        "attempt": point["attempt"],
        "cpu_percent": float(point["cpu_percent"]),
        "rss_bytes": int(point["rss_bytes"]),
        "gpus": [g for g in map(_gpu_point, gpus) if g is not None],
    }


def read_usage(
    run_dir: str | Path, attempts: int, since: int = 0, limit: int = 1000
) -> tuple[list[dict[str, Any]], int]:
    """Points of attempts 1 to ``attempts`` in order, from point ``since`` on (at most
    ``limit``), and the index to continue from.

    Indexes count the ended lines of all attempts' files together; thinning a long attempt's
    file (see the sampler) shifts the later ones, so a reader far behind may skip some.
    """
    points: list[dict[str, Any]] = []
    seen, following = 0, since
    for number in range(1, attempts + 1):
        try:
            f = open_run_file(run_dir, usage_file(number), "r", errors="replace")
        except FileNotFoundError:
            continue
        with f:
            for line in f:
                if not line.endswith("\n"):
                    break  # being written, or cut short by a kill
                seen += 1
                if seen <= since:
                    continue
                if len(points) >= limit:
                    return points, following
                if (point := usage_point(line)) is not None:
                    points.append(point)
                following = seen
    return points, min(following, seen)
