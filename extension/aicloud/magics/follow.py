"""Follow a job from a cell: every rank's output as it is printed, status, progress and metrics.

A thread reads the log stream (``GET /jobs/{id}/logs?follow=true``) and queues whole lines; the
follower hands them to a display at once and polls the job and its metrics twice a second. It
runs in the cell (``--wait``: a kernel interrupt detaches, or cancels with the setting; the cell
awaits it in a thread, see :mod:`aicloud.magics.awaiting`, so the monitor's Cancel button works)
or in the background (``--no-wait`` under a widget frontend).
"""

from __future__ import annotations

import queue
import re
import sys
import threading
import time
from datetime import datetime, timezone
from typing import Any, Protocol

from aicloud.client import AICloudClient
from aicloud.magics.awaiting import interrupted

TERMINAL = ("succeeded", "failed", "cancelled")
POLL_SECONDS = 0.5
RANK_LINE = re.compile(rb"^\[rank(\d+)\]:")
_END = object()


class Display(Protocol):
    """Where a follower shows what it sees (plain text, or the JobMonitor widget)."""

    def lines(self, text: str) -> None: ...

    def update(self, job: dict, metrics: dict) -> None: ...

    def note(self, text: str) -> None: ...


def elapsed(job: dict, now: datetime | None = None) -> float:
    """Seconds since the job started (until it finished), 0 before it starts."""
    if not job.get("started_at"):
        return 0.0
    start = datetime.fromisoformat(job["started_at"].replace("Z", "+00:00"))
    end = job.get("finished_at")
    stop = datetime.fromisoformat(end.replace("Z", "+00:00")) if end else None
    return max(0.0, ((stop or now or datetime.now(timezone.utc)) - start).total_seconds())


def describe_metrics(latest: dict | None) -> str:
    """``loss=0.31 acc=0.9`` from a metrics point (time, rank, step and total left out)."""
    if not latest:
        return ""
    hidden = {"time", "rank", "restart", "step", "total"}
    return " ".join(
        f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}"
        for k, v in latest.items()
        if k not in hidden
    )


class PlainDisplay:
    """Text for frontends without widgets (papermill, nbconvert): status changes, progress."""

    def __init__(self, job_id: str, out=None, every_seconds: float = 5.0):
        self.job_id = job_id
        self.out = out or sys.stdout
        self.every = every_seconds
        self._status: str | None = None
        self._progress_at = 0.0
        self._step = None

    def lines(self, text: str) -> None:
        self.out.write(text)
        self.out.flush()

    def note(self, text: str) -> None:
        self.lines(f"aicloud: {text}\n")

    def update(self, job: dict, metrics: dict) -> None:
        if job["status"] != self._status:
            self._status = job["status"]
            reason = (
                f" ({job['reason']})" if job.get("reason") and job["status"] != "running" else ""
            )
            self.note(f"job {self.job_id} {job['status']}{reason}")
        progress, now = metrics.get("progress"), time.monotonic()
        if (
            progress
            and progress["step"] != self._step
            and (now - self._progress_at >= self.every or progress["fraction"] >= 1.0)
        ):
            self._progress_at, self._step = now, progress["step"]
            extra = describe_metrics(metrics.get("latest"))
            self.note(
                f"progress {progress['step']}/{progress['total']} ({progress['fraction']:.0%})"
                + (f" {extra}" if extra else "")
            )


class Follower:
    """Streams one job's output to a display and tracks its status and metrics."""

    def __init__(self, client: AICloudClient, job_id: str, ranks: list[int] | None = None):
        self.client = client
        self.job_id = job_id
        self.ranks = ranks
        self.lines: queue.Queue = queue.Queue()
        self.metrics: dict[str, Any] = {"latest": None, "progress": None, "points": []}
        self._next_point = 0
        self._stream_client: AICloudClient | None = None
        self._stop = threading.Event()
        self.job: dict | None = None

    # -- the log thread -----------------------------------------------------------------------

    def _keep(self, line: bytes) -> bool:
        match = RANK_LINE.match(line)
        return match is None or int(match[1]) in self.ranks

    def _read_logs(self) -> None:
        rank = self.ranks[0] if self.ranks and len(self.ranks) == 1 else None
        pending = b""
        try:
            self._stream_client = AICloudClient(self.client.connection)
            filtered_here = self.ranks is not None and len(self.ranks) > 1
            for chunk in self._stream_client.follow_logs(self.job_id, rank=rank):
                if self._stop.is_set():
                    return
                pending += chunk
                if not filtered_here:  # whole lines as they came (the server filters one rank)
                    end = pending.rfind(b"\n") + 1
                    if end:
                        self.lines.put(pending[:end].decode(errors="replace"))
                        pending = pending[end:]
                    continue
                *complete, pending = pending.split(b"\n")
                kept = [line for line in complete if self._keep(line)]
                if kept:
                    self.lines.put(b"\n".join(kept).decode(errors="replace") + "\n")
            if pending:
                self.lines.put(pending.decode(errors="replace") + "\n")
        except Exception as e:  # the stream closed by a detach, or the service went away
            if not self._stop.is_set():
                self.lines.put(RuntimeError(f"log stream ended: {e}"))
        finally:
            self.lines.put(_END)

    def start_stream(self) -> None:
        """Start reading the log in a thread."""
        threading.Thread(
            target=self._read_logs, name=f"aicloud-logs-{self.job_id}", daemon=True
        ).start()

    def stop(self) -> None:
        """Stop reading (a detach); the job is left alone."""
        self._stop.set()
        if self._stream_client is not None:
            self._stream_client.close()

    # -- polling ------------------------------------------------------------------------------

    def poll(self) -> dict:
        """Refresh the job and its metrics."""
        self.job = self.client.get(self.job_id)
        fresh = self.client.metrics(self.job_id, since=self._next_point)
        self._next_point = fresh["next"]
        if fresh["latest"] is not None:
            self.metrics = {"latest": fresh["latest"], "progress": fresh["progress"]}
        self.metrics["points"] = fresh["points"]  # only the new ones (the live curve adds them)
        return self.job

    def follow(self, display: Display) -> dict:
        """Show everything until the job ends and its log is drained; return the job."""
        self.start_stream()
        display.update(self.poll(), self.metrics)
        next_poll = time.monotonic() + POLL_SECONDS
        ended = False
        while not ended:
            if interrupted():
                raise KeyboardInterrupt
            timeout = max(0.0, next_poll - time.monotonic())
            try:
                item = self.lines.get(timeout=timeout)
            except queue.Empty:
                item = None
            if item is _END:
                ended = True
            elif isinstance(item, Exception):
                display.note(str(item))
            elif item is not None:
                display.lines(item)
            if ended or time.monotonic() >= next_poll:
                display.update(self.poll(), self.metrics)
                next_poll = time.monotonic() + POLL_SECONDS
        while self.job["status"] not in TERMINAL:  # the stream broke off early
            if interrupted():
                raise KeyboardInterrupt
            time.sleep(POLL_SECONDS)
            display.update(self.poll(), self.metrics)
        return self.job

    def follow_in_background(self, display: Display, done=None) -> threading.Thread:
        """:meth:`follow` in a thread; ``done(job)`` when it ends."""

        def run() -> None:
            try:
                job = self.follow(display)
            except Exception as e:
                display.note(f"stopped following: {e}")
                return
            if done is not None:
                done(job)

        thread = threading.Thread(target=run, name=f"aicloud-follow-{self.job_id}", daemon=True)
        thread.start()
        return thread
