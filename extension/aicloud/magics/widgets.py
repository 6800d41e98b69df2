"""JobMonitor: a job's status, progress, metrics as a live curve, elapsed time and Cancel.

Fed by the magics' follower (status from ``GET /jobs/{id}``, progress and metrics from
``GET /jobs/{id}/metrics``, i.e. ``aicloud.runtime.report``). Needs ipywidgets 8; the magics
use plain text instead where no frontend renders widgets.
"""

from __future__ import annotations

import html
import threading
import time
from urllib.parse import urlencode

import ipywidgets as w

from aicloud.magics.curve import MetricsCurve
from aicloud.magics.follow import describe_metrics, elapsed

STATUS_COLOURS = {
    "queued": "#6b7280",
    "starting": "#2563eb",
    "running": "#2563eb",
    "succeeded": "#16a34a",
    "failed": "#dc2626",
    "cancelled": "#92400e",
}
MAX_LOG_CHARS = 200_000
FLUSH_SECONDS = 0.1
CHART_SECONDS = 1.0  # redraw the curve at most this often (each redraw is a full render)
TERMINAL = ("succeeded", "failed", "cancelled")


def page_link(job_id: str) -> str:
    """A link to the job's page in JupyterLab's main area.

    The URL is only a query (``?aicloud-job=<id>``): it resolves against the page the notebook
    is open in, whatever the hub's base URL, and the sidebar extension's router opens the page.
    """
    query = html.escape(urlencode({"aicloud-job": job_id}))
    return (
        f'<a class="aicloud-job-page-link" href="?{query}" target="_blank" '
        'rel="noopener" title="charts, resource use, outputs and the whole log">open job page</a>'
    )


class JobMonitor(w.VBox):
    """One job, live. ``log_here`` puts the log inside the widget (for background following)."""

    def __init__(self, job_id: str, cancel=None, log_here: bool = False, **kwargs):
        self.job_id = job_id
        self._cancel = cancel
        self.title = w.HTML(f"<b>aicloud</b> {html.escape(job_id)} {page_link(job_id)}")
        self.status = w.HTML("", layout=w.Layout(min_width="9em"))
        self.progress = w.FloatProgress(
            value=0.0, min=0.0, max=1.0, description="", layout=w.Layout(width="40%")
        )
        self.step = w.Label("")
        self.metrics = w.Label("")
        self.elapsed = w.Label("")
        self.cancel_button = w.Button(description="Cancel", button_style="danger", icon="stop")
        self.cancel_button.add_class("aicloud-cancel")
        self.cancel_button.on_click(self._on_cancel)
        self.message = w.Label("")
        self.log_output = w.Output(layout=w.Layout(max_height="20em", overflow="auto"))
        self.curve = MetricsCurve()
        self.chart = w.Output(layout=w.Layout(width="100%", display="none"))
        self.chart.add_class("aicloud-metrics-curve")
        self._charted_at = 0.0
        self._chart_dirty = False
        row = w.HBox(
            [self.title, self.status, self.progress, self.step, self.elapsed, self.cancel_button]
        )
        children = [row, self.metrics, self.chart, self.message]
        if log_here:
            children.append(self.log_output)
        super().__init__(children, **kwargs)
        self.add_class("aicloud-job-monitor")
        self._log_parts: list[str] = []
        self._log_size = 0
        self._log_lock = threading.Lock()
        self._flushed_at = 0.0
        self.status_text = ""

    # -- the Display protocol -----------------------------------------------------------------

    def update(self, job: dict, metrics: dict) -> None:
        """Show the job's status, progress, metrics and elapsed time."""
        status = job["status"]
        self.status_text = status
        colour = STATUS_COLOURS.get(status, "#111")
        self.status.value = (
            f'<span class="aicloud-status" style="color:{colour};font-weight:bold">{status}</span>'
        )
        progress = metrics.get("progress")
        if progress:
            self.progress.value = float(progress["fraction"])
            self.step.value = f"step {progress['step']}/{progress['total']}"
        elif status == "succeeded":
            self.progress.value = 1.0
        self.progress.bar_style = {"succeeded": "success", "failed": "danger"}.get(status, "")
        self.metrics.value = describe_metrics(metrics.get("latest"))
        self._draw(metrics.get("points") or [], force=status in TERMINAL)
        seconds = int(elapsed(job))
        self.elapsed.value = f"{seconds // 60}:{seconds % 60:02d}"
        if status in TERMINAL:
            self.cancel_button.disabled = True
            if job.get("reason") and status != "succeeded":
                self.message.value = f"{status}: {job['reason']}"
            self._flush(force=True)

    def _draw(self, points: list[dict], force: bool = False) -> None:
        """Add new points to the curve and redraw it, about once a second."""
        self._chart_dirty |= self.curve.add(points)
        now = time.monotonic()
        if not self._chart_dirty or (not force and now - self._charted_at < CHART_SECONDS):
            return
        self._charted_at, self._chart_dirty = now, False
        output = {"output_type": "display_data", "data": self.curve.bundle(), "metadata": {}}
        self.chart.outputs = (output,)
        self.chart.layout.display = ""

    def lines(self, text: str) -> None:
        """Append log text to the widget's output area, a few times a second at most."""
        with self._log_lock:
            self._log_parts.append(text)
        self._flush()

    def note(self, text: str) -> None:
        """A one-line message under the progress bar."""
        self.message.value = text

    def _flush(self, force: bool = False) -> None:
        now = time.monotonic()
        if not force and now - self._flushed_at < FLUSH_SECONDS:
            return
        with self._log_lock:
            text, self._log_parts = "".join(self._log_parts), []
        self._flushed_at = now
        if not text:
            return
        self._log_size += len(text)
        if (
            self._log_size > MAX_LOG_CHARS
        ):  # keep the widget small; the whole log stays on the server
            kept = self.log_output.outputs[len(self.log_output.outputs) // 2 :]
            self.log_output.outputs = kept
            self._log_size = sum(len(o.get("text", "")) for o in kept)
        self.log_output.append_stdout(text)

    # -- Cancel -------------------------------------------------------------------------------

    def _on_cancel(self, _button) -> None:
        self.cancel_button.disabled = True
        self.message.value = "cancelling..."
        try:
            job = self._cancel(self.job_id) if self._cancel else None
        except Exception as e:
            self.message.value = f"cancel failed: {e}"
            self.cancel_button.disabled = False
            return
        if job is not None:
            self.update(job, {})
            self.message.value = f"cancelled job {self.job_id}"
