"""The in-cell monitor's live curve: Vega-Lite built from reported points, thinned, per rank.

The browser side (JupyterLab's own Vega renderer drawing it in a running job's monitor) is in
``tests/test_magics_browser.py``.
"""

from __future__ import annotations

import altair
import ipywidgets  # noqa: F401  (the monitor needs ipywidgets 8)

from aicloud.magics.curve import VEGA_LITE, MetricsCurve
from aicloud.magics.widgets import JobMonitor


def points(n: int, start: int = 1, **extra) -> list[dict]:
    return [
        {"time": 1000.0 + i, "rank": 0, "step": i, "total": 100, "loss": 1 / i, **extra}
        for i in range(start, start + n)
    ]


def test_one_series_per_metric_against_the_step():
    curve = MetricsCurve()
    assert curve.add(points(3, acc=0.5))
    spec = curve.vega_lite()
    assert spec["encoding"]["x"]["title"] == "step"
    series = {v["series"] for v in spec["data"]["values"]}
    assert series == {"loss", "acc"}
    assert [v["x"] for v in spec["data"]["values"] if v["series"] == "loss"] == [1, 2, 3]
    assert spec["mark"]["tooltip"] is True and spec["params"][0]["bind"] == "legend"


def test_ranks_beyond_zero_are_their_own_series():
    curve = MetricsCurve()
    curve.add([{"time": 1.0, "rank": 0, "step": 1, "loss": 2.0}])
    curve.add([{"time": 1.0, "rank": 1, "step": 1, "loss": 3.0}])
    assert set(curve.series) == {"loss", "loss [rank 1]"}


def test_without_steps_the_x_axis_is_seconds_since_the_first_point():
    curve = MetricsCurve()
    curve.add([{"time": 50.0, "rank": 0, "loss": 1.0}, {"time": 52.5, "rank": 0, "loss": 0.5}])
    assert curve.x_title == "seconds"
    assert curve.series["loss"] == [(0.0, 1.0), (2.5, 0.5)]


def test_progress_alone_draws_nothing():
    """A notebook job reports its cells as progress: that is not a metric to plot."""
    curve = MetricsCurve()
    assert not curve.add([{"time": 1.0, "rank": 0, "step": 3, "total": 9}])
    assert len(curve) == 0


def test_non_finite_and_non_numeric_values_are_left_out():
    curve = MetricsCurve()
    curve.add([{"time": 1.0, "rank": 0, "step": 1, "loss": float("nan"), "ok": True, "acc": 0.5}])
    assert set(curve.series) == {"acc"}


def test_storage_is_bounded_and_keeps_the_latest_points():
    curve = MetricsCurve(max_points=100)
    curve.add(points(1000))
    kept = curve.series["loss"]
    assert len(kept) <= 100
    assert kept[-1][0] == 1000  # the newest point is always there
    assert kept[0][0] == 1  # and the first
    xs = [x for x, _ in kept]
    assert xs == sorted(xs)


def test_the_document_is_valid_vega_lite_v5():
    """Checked against the Vega-Lite v5 schema (Altair's copy), the version JupyterLab renders."""
    curve = MetricsCurve()
    curve.add(points(5, acc=0.25))
    spec = curve.vega_lite()
    assert altair.SCHEMA_VERSION.startswith("v5")
    altair.Chart.from_dict(spec, validate=True)
    altair.Chart.from_dict(MetricsCurve().vega_lite(), validate=True)  # empty, before points


def test_the_monitor_redraws_about_once_a_second_and_always_at_the_end():
    monitor = JobMonitor("job-1")
    job = {"status": "running", "started_at": None}
    monitor.update(job, {"points": points(2)})
    assert monitor.chart.layout.display == ""
    (first,) = monitor.chart.outputs
    assert len(first["data"][VEGA_LITE]["data"]["values"]) == 2
    monitor.update(job, {"points": points(2, start=3)})  # within the second: not yet
    assert len(monitor.chart.outputs[0]["data"][VEGA_LITE]["data"]["values"]) == 2
    monitor.update({"status": "succeeded", "started_at": None}, {"points": []})
    assert len(monitor.chart.outputs[0]["data"][VEGA_LITE]["data"]["values"]) == 4


def test_no_chart_until_there_is_something_to_draw():
    monitor = JobMonitor("job-2")
    monitor.update({"status": "running", "started_at": None}, {"points": []})
    assert monitor.chart.layout.display == "none" and monitor.chart.outputs == ()


def test_the_monitor_links_to_the_job_page_by_a_query_of_the_page_it_is_in():
    monitor = JobMonitor("job-3")
    assert 'href="?aicloud-job=job-3"' in monitor.title.value
    assert 'target="_blank"' in monitor.title.value
