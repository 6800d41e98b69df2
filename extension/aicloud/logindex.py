"""Pages of a job's log by line: an offset index per log file, built once and extended.

``GET /jobs/{id}/log-lines`` shows a log of a million lines a page at a time, filtered by rank
(the ``[rank<N>]:`` prefix that distributed launchers put before each line) and by a
case-insensitive substring. The index holds where each line ends (numpy, 8 bytes a line) and
grows with the file: only the bytes added since the last look are scanned. Filtered views
(the matching line numbers) are cached by (file size, rank, text), so paging through one
costs a slice. The file is read through :func:`aicloud.runs.open_run_file` (the job owns it)
and mapped, not read into memory.
"""

from __future__ import annotations

import mmap
import os
import re
import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from aicloud.runs import LOG_NAME, open_run_file

NEWLINE = ord("\n")
RANK_PREFIX = re.compile(rb"^\[rank(\d{1,7})\]:")
MAX_LINE_BYTES = 65536  # a longer line is cut there in a page (a progress bar without \n)
CACHED_FILES = 16
CACHED_VIEWS = 32


def _same(data: np.ndarray, byte: int) -> np.ndarray:
    """Where ``data`` holds ``byte``, an ASCII letter in either case."""
    if not (65 <= byte <= 90 or 97 <= byte <= 122):
        return data == byte
    return (data == (byte | 0x20)) | (data == (byte & ~0x20))


@dataclass
class Page:
    """One page of a (filtered) log: how many lines match, and these."""

    total: int
    start: int
    lines: list[dict]


@dataclass
class LineIndex:
    """The ends of the complete lines of one log file (each end is one past its newline)."""

    inode: tuple[int, int]
    ends: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    size: int = 0  # bytes of the file seen so far
    views: OrderedDict = field(default_factory=OrderedDict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def scanned(self) -> int:
        """Where the last complete line ends: the scan of new bytes starts here."""
        return int(self.ends[-1]) if len(self.ends) else 0

    def extend(self, data: np.ndarray, size: int) -> None:
        """Index the lines that ended since the last look (``data`` is the whole file)."""
        if size <= self.scanned:
            self.size = size
            return
        fresh = np.flatnonzero(data[self.scanned : size] == NEWLINE) + (self.scanned + 1)
        if len(fresh):
            self.ends = np.concatenate([self.ends, fresh.astype(np.int64)])
        self.size = size
        self.views.clear()  # a view's lines are those of one size

    def line_count(self) -> int:
        """Complete lines, plus a last one that has not ended yet."""
        return len(self.ends) + (1 if self.size > self.scanned else 0)

    def starts(self) -> np.ndarray:
        """Where each line starts."""
        starts = np.empty(self.line_count(), np.int64)
        if len(starts):
            starts[0] = 0
            starts[1:] = self.ends[: len(starts) - 1]
        return starts

    def bounds(self, number: int) -> tuple[int, int]:
        """Byte range of line ``number`` without its newline."""
        start = int(self.ends[number - 1]) if number else 0
        if number < len(self.ends):
            return start, int(self.ends[number]) - 1
        return start, self.size

    def rank_lines(self, data: np.ndarray, rank: int) -> np.ndarray:
        """Numbers of the lines that start with ``[rank<rank>]:``."""
        prefix = np.frombuffer(f"[rank{rank}]:".encode(), np.uint8)
        starts = self.starts()
        keep = starts + len(prefix) <= self.size
        candidates = starts[keep]
        match = np.ones(len(candidates), bool)
        for offset, byte in enumerate(prefix):  # a newline in the way never matches a byte
            match &= data[candidates + offset] == byte
        return np.flatnonzero(keep)[match]

    def text_lines(self, data: np.ndarray, text: str) -> np.ndarray:
        """Numbers of the lines that hold ``text`` (ASCII letters in any case).

        Vectorized: the positions of the first byte, narrowed by each following one.
        """
        needle = text.encode()
        if not needle or len(needle) > self.size:
            return np.zeros(0, np.int64)
        found = np.flatnonzero(_same(data[: self.size - len(needle) + 1], needle[0]))
        for offset, byte in enumerate(needle[1:], 1):
            found = found[_same(data[found + offset], byte)]
        lines = np.searchsorted(self.ends, found, side="right").astype(np.int64)
        return lines[np.r_[True, lines[1:] != lines[:-1]]] if len(lines) else lines

    def view(self, data: np.ndarray, rank: int | None, text: str | None):
        """The line numbers matching the filter (None: every line), cached per size."""
        if rank is None and not text:
            return None
        key = (self.size, rank, text)
        if key in self.views:
            self.views.move_to_end(key)
            return self.views[key]
        lines = self.rank_lines(data, rank) if rank is not None else None
        if text:
            found = self.text_lines(data, text)
            lines = found if lines is None else lines[np.isin(lines, found, assume_unique=True)]
        self.views[key] = lines
        while len(self.views) > CACHED_VIEWS:
            self.views.popitem(last=False)
        return lines


_indexes: OrderedDict[str, LineIndex] = OrderedDict()
_indexes_lock = threading.Lock()


def _index_for(path: str, inode: tuple[int, int]) -> LineIndex:
    """The cached index of the log at ``path``; a new one if the file was replaced."""
    with _indexes_lock:
        index = _indexes.get(path)
        if index is None or index.inode != inode:
            index = _indexes[path] = LineIndex(inode)
        _indexes.move_to_end(path)
        while len(_indexes) > CACHED_FILES:
            _indexes.popitem(last=False)
        return index


def _line_model(raw: memoryview, index: LineIndex, number: int, ranked: bool) -> dict:
    start, end = index.bounds(number)
    data = bytes(raw[start : min(end, start + MAX_LINE_BYTES)])
    rank = None
    if ranked and (prefix := RANK_PREFIX.match(data)) is not None:
        rank = int(prefix.group(1))
        data = data[prefix.end() :]
    return {"n": number, "rank": rank, "text": data.decode(errors="replace")}


def read_lines(
    run_dir: str | Path,
    start: int,
    count: int,
    rank: int | None = None,
    text: str | None = None,
    ranked: bool = True,
) -> Page:
    """``count`` lines of the log from line ``start`` of those that match; ``start`` -1: the
    last ``count``. ``ranked``: lines carry ``[rank<N>]:`` prefixes (split off into ``rank``).
    """
    try:
        f = open_run_file(run_dir, LOG_NAME)
    except FileNotFoundError:
        return Page(0, 0, [])
    with f:
        info = os.fstat(f.fileno())
        index = _index_for(str(Path(run_dir) / LOG_NAME), (info.st_dev, info.st_ino))
        if info.st_size == 0:
            return Page(0, 0, [])
        with (
            mmap.mmap(f.fileno(), info.st_size, access=mmap.ACCESS_READ) as mapped,
            index.lock,
        ):
            raw = memoryview(mapped)
            try:
                data = np.frombuffer(raw, np.uint8)
                if info.st_size < index.size:  # cut shorter in place: start over
                    index.ends, index.size = np.zeros(0, np.int64), 0
                    index.views.clear()
                index.extend(data, info.st_size)
                view = index.view(data, rank, text)
                total = index.line_count() if view is None else len(view)
                if start < 0:
                    start = max(0, total - count)
                chosen = (
                    range(start, min(total, start + count))
                    if view is None
                    else view[start : start + count].tolist()
                )
                lines = [_line_model(raw, index, n, ranked) for n in chosen]
            finally:
                del data
                raw.release()
    return Page(total, start, lines)
