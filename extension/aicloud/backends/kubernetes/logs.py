"""Every pod's log into the attempt's one log file, line by line, behind rank prefixes.

One follower per pod streams ``GET .../pods/<name>/log?follow=true&timestamps=true``. Whole
lines are appended to the attempt's log (the file the job service's logs API reads), so the
logs of all ranks stream back exactly as on the local backend. Memory is bounded: a follower
holds at most :data:`MAX_LINE` bytes of an unfinished line (longer lines are split). If a
stream breaks while the pod runs, the follower reconnects and skips what it already wrote, by
timestamp; the last timestamp is kept beside the log so that a restarted service resumes.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

MAX_LINE = 64 * 1024
CHUNK = 16 * 1024
_TIMESTAMP = re.compile(rb"^(\d{4}-\d\d-\d\dT[\d:.]+Z) ")


def split_timestamp(line: bytes) -> tuple[str | None, bytes]:
    """``(timestamp, rest)`` of a line that the API prefixed with its RFC 3339 time."""
    match = _TIMESTAMP.match(line)
    if not match:
        return None, line
    return match[1].decode(), line[match.end() :]


def _normalise(timestamp: str) -> str:
    """Timestamps of different precision compare as text once padded to nanoseconds."""
    head, _, fraction = timestamp.rstrip("Z").partition(".")
    return f"{head}.{fraction.ljust(9, '0')[:9]}Z"


class LogWriter:
    """Appends whole lines to the attempt's log; one per attempt, shared by its followers."""

    def __init__(self, path: Path):
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        self._file = open(path, "ab")  # noqa: SIM115 (kept open while the attempt runs)

    def write(self, prefix: bytes, line: bytes) -> None:
        """One line, with ``prefix`` and a newline."""
        self._file.write(prefix + line.rstrip(b"\n") + b"\n")
        self._file.flush()

    def close(self) -> None:
        """Close the file."""
        self._file.close()


OpenStream = Callable[[int | None], Awaitable[Any]]  # since_seconds -> aiohttp response


class PodLogFollower:
    """Follows one pod's log into a :class:`LogWriter`."""

    def __init__(
        self, writer: LogWriter, prefix: str, open_stream: OpenStream, cursor: Path, log=None
    ):
        self.writer = writer
        self.prefix = prefix.encode()
        self.open_stream = open_stream
        self.cursor = cursor
        self.log = log
        self.last = self._read_cursor()
        self.pod_done = False  # set by the controller when the pod has terminated

    def _read_cursor(self) -> str | None:
        try:
            return self.cursor.read_text().strip() or None
        except FileNotFoundError:
            return None

    def _since_seconds(self) -> int | None:
        if self.last is None:
            return None
        from datetime import datetime, timezone

        then = datetime.strptime(self.last[:19], "%Y-%m-%dT%H:%M:%S").replace(tzinfo=timezone.utc)
        return max(1, int((datetime.now(timezone.utc) - then).total_seconds()) + 2)

    def _emit(self, line: bytes) -> None:
        timestamp, text = split_timestamp(line)
        if timestamp is not None:
            stamp = _normalise(timestamp)
            if self.last is not None and stamp <= self.last:
                return  # written before a reconnect
            self.last = stamp
        self.writer.write(self.prefix, text)

    async def _follow_once(self) -> None:
        response = await self.open_stream(self._since_seconds())
        pending = b""
        try:
            while chunk := await response.content.read(CHUNK):
                pending += chunk
                while (end := pending.find(b"\n")) != -1:
                    self._emit(pending[:end])
                    pending = pending[end + 1 :]
                while len(pending) > MAX_LINE:  # an endless line: write it in pieces
                    self._emit(pending[:MAX_LINE])
                    pending = pending[MAX_LINE:]
            if pending:
                self._emit(pending)
        finally:
            response.release()
            if self.last is not None:
                self.cursor.parent.mkdir(parents=True, exist_ok=True)
                self.cursor.write_text(self.last)

    async def run(self) -> None:
        """Follow until the pod has ended and its log is read; reconnect on a broken stream."""
        delay = 0.5
        while True:
            try:
                await self._follow_once()
                delay = 0.5
            except asyncio.CancelledError:
                raise
            except Exception as e:  # the API went away, the pod is not ready: try again
                if self.log is not None:
                    self.log.debug("aicloud: log stream of %s: %s", self.cursor.name, e)
                if self.pod_done:
                    return
            if self.pod_done:
                return
            await asyncio.sleep(delay)
            delay = min(delay * 2, 5.0)


async def drain(tasks: list[asyncio.Task], timeout: float) -> None:
    """Wait up to ``timeout`` seconds for followers of ended pods to write their last lines."""
    if tasks:
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(asyncio.gather(*tasks, return_exceptions=True), timeout)
