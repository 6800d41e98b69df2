"""The live curve of a job's reported metrics, as a Vega-Lite chart JupyterLab renders itself.

:class:`MetricsCurve` gathers the points the follower reads (``aicloud.runtime.report``) and
builds a Vega-Lite v5 document: one line per metric (and per rank beyond rank 0), against the
step when the job reports steps, else seconds since the first point; axes, hover values and a
legend that picks series. JupyterLab's built-in Vega renderer draws it (in a notebook, an
ipywidgets ``Output``), so no charting code or library of our own reaches the browser. The
width is fixed: ``"container"`` inside an output area resizes itself without end and hangs the
tab. Storage is bounded: past ``max_points`` a series keeps every other point of its older half.
"""

from __future__ import annotations

import math
from typing import Any

VEGA_LITE = "application/vnd.vegalite.v5+json"
SCHEMA = "https://vega.github.io/schema/vega-lite/v5.json"
#: Point fields that are not metrics (``step`` and ``total`` are progress).
NOT_METRICS = frozenset({"time", "rank", "restart", "step", "total"})
MAX_POINTS = 2000


class MetricsCurve:
    """The points of every reported metric, thinned past ``max_points`` per series."""

    def __init__(self, max_points: int = MAX_POINTS):
        self.max_points = max_points
        self.series: dict[str, list[tuple[float, float]]] = {}
        self.uses_steps: bool | None = None
        self._first_time: float | None = None
        self.points_seen = 0

    def add(self, points: list[dict[str, Any]]) -> bool:
        """Take new metric points; whether any of them carried a value to draw."""
        drew = False
        for point in points:
            if self.uses_steps is None:
                self.uses_steps = "step" in point
            if self._first_time is None:
                self._first_time = float(point.get("time", 0.0))
            x = self._x(point)
            if x is None:
                continue
            rank = point.get("rank") or 0
            for name, value in point.items():
                if name in NOT_METRICS or not _finite_number(value):
                    continue
                label = name if rank == 0 else f"{name} [rank {rank}]"
                self._append(label, (x, float(value)))
                drew = True
            self.points_seen += 1
        return drew

    def _x(self, point: dict[str, Any]) -> float | None:
        if self.uses_steps:
            step = point.get("step")
            return float(step) if _finite_number(step) else None
        return round(float(point.get("time", 0.0)) - (self._first_time or 0.0), 3)

    def _append(self, label: str, xy: tuple[float, float]) -> None:
        values = self.series.setdefault(label, [])
        values.append(xy)
        if len(values) > self.max_points:
            half = len(values) // 2
            values[:half] = values[:half:2]

    @property
    def x_title(self) -> str:
        return "step" if self.uses_steps else "seconds"

    def __len__(self) -> int:
        return sum(len(v) for v in self.series.values())

    def vega_lite(self, title: str = "") -> dict[str, Any]:
        """The Vega-Lite document of every series so far."""
        values = [
            {"x": x, "value": y, "series": label}
            for label, points in self.series.items()
            for x, y in points
        ]
        legend = {
            "name": "pick",
            "select": {"type": "point", "fields": ["series"]},
            "bind": "legend",
        }
        return {
            "$schema": SCHEMA,
            "title": title,
            "width": 520,
            "height": 180,
            "data": {"values": values},
            "params": [legend],
            "mark": {"type": "line", "point": len(values) <= 60, "tooltip": True},
            "encoding": {
                "x": {"field": "x", "type": "quantitative", "title": self.x_title},
                "y": {"field": "value", "type": "quantitative", "title": "value"},
                "color": {"field": "series", "type": "nominal", "title": None},
                "opacity": {"condition": {"param": "pick", "value": 1}, "value": 0.15},
                "tooltip": [
                    {"field": "series", "type": "nominal"},
                    {"field": "x", "type": "quantitative", "title": self.x_title},
                    {"field": "value", "type": "quantitative", "format": ".4g"},
                ],
            },
            "usermeta": {"embedOptions": {"renderer": "svg", "actions": False}},
        }

    def bundle(self, title: str = "") -> dict[str, Any]:
        """A display bundle: the chart, and a line of text where no renderer draws it."""
        latest = ", ".join(f"{label}={pts[-1][1]:.4g}" for label, pts in self.series.items())
        return {VEGA_LITE: self.vega_lite(title), "text/plain": f"metrics: {latest}"}


def _finite_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
