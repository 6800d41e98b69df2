"""The run directory of a job: its layout, and its files, read without trusting the job.

Layout (the names below; the job service makes the folder, mode 0700)::

    <runs_dir>/<job id>/
        output.log               LOG_NAME: every process's output, rank-prefixed if several
        metrics.jsonl            METRICS_FILE: points from aicloud.runtime.report()
        attempt-<N>.reason       why attempt N failed, in the job's words (a notebook's cell)
        attempt-<N>.restarts     attempt N's elastic restart count
        attempt-<N>.status.json  the local backend's record of attempt N
        checkpoints/             CHECKPOINTS: AICLOUD_CHECKPOINT_DIR
        outputs/                 OUTPUTS: files the API serves (executed notebook, endpoint.json)


A job owns its run directory: it can replace ``output.log``, ``metrics.jsonl``, a status file
or an output with a symlink (to ``/proc/self/environ``, to another user's run directory), a
hard link, a FIFO or a folder. The service reads those files only through this module, which
walks a name one component at a time from a descriptor of the run directory, opens each with
``O_NOFOLLOW``, refuses ``..`` and absolute names, and accepts only a regular file with one
link at the end. A FIFO is opened with ``O_NONBLOCK``, so that it is refused and not waited on.
"""

from __future__ import annotations

import contextlib
import json
import os
import stat
from pathlib import Path
from typing import IO

from aicloud.errors import UnsafeRunFile

LOG_NAME = "output.log"
METRICS_FILE = "metrics.jsonl"
CHECKPOINTS = "checkpoints"
OUTPUTS = "outputs"

_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_FILE_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC
RUN_DIR_MODE = 0o700


def _parts(name: str) -> list[str]:
    """The components of a relative ``name``; refuses absolute names, ``.`` and ``..``."""
    parts = name.split("/")
    if not name or "\0" in name or any(part in ("", ".", "..") for part in parts):
        raise UnsafeRunFile(f"{name!r} is not a file name inside a run directory")
    return parts


def _refused(name: str, what: str) -> UnsafeRunFile:
    return UnsafeRunFile(f"{name} in the job's run directory {what}; the service does not read it")


def _open_dir(run_dir: str | Path, parts: list[str], name: str) -> int:
    """A descriptor of the folder ``parts`` inside ``run_dir``, no symlink followed.

    The run directory's own last component must not be a symlink either (a job could
    replace it); the folders above it are the operator's and are taken as they are.
    """
    fd = os.open(run_dir, _DIR_FLAGS)
    try:
        for part in parts:
            child = os.open(part, _DIR_FLAGS, dir_fd=fd)
            os.close(fd)
            fd = child
    except OSError as e:
        os.close(fd)
        if isinstance(e, FileNotFoundError):
            raise
        raise _refused(name, "is reached through a symlink or a non-folder") from None
    return fd


def open_run_file(run_dir: str | Path, name: str, mode: str = "rb", **kwargs) -> IO:
    """Open the regular file ``name`` (``/``-separated, relative) of ``run_dir`` for reading.

    Raises :class:`FileNotFoundError` when it is not there and :class:`UnsafeRunFile` when it
    is a symlink, a hard link, a FIFO, a device or a folder, or is reached through one.
    ``mode`` and ``kwargs`` are those of :func:`open` (reading only).
    """
    if any(c in mode for c in "wax+"):
        raise ValueError("run files are opened for reading only")
    parts = _parts(name)
    dir_fd = _open_dir(run_dir, parts[:-1], name)
    try:
        fd = os.open(parts[-1], _FILE_FLAGS, dir_fd=dir_fd)
    except FileNotFoundError:
        raise
    except OSError:  # ELOOP: a symlink; EISDIR, ENXIO, EACCES: nothing to read
        raise _refused(name, "is a symlink or not a regular file") from None
    finally:
        os.close(dir_fd)
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise _refused(name, "is not a regular file")
        if info.st_nlink != 1:
            raise _refused(name, "has other hard links")
        return open(fd, mode, **kwargs)  # the caller closes it
    except BaseException:
        os.close(fd)
        raise


def read_run_file(run_dir: str | Path, name: str, limit: int = 1 << 20) -> str | None:
    """Up to ``limit`` bytes of a small run file as text, or None when it is missing."""
    try:
        with open_run_file(run_dir, name) as f:
            return f.read(limit).decode(errors="replace")
    except FileNotFoundError:
        return None


def list_run_files(run_dir: str | Path, folder: str) -> list[tuple[str, int]]:
    """Names and sizes of the regular files directly in ``folder`` of ``run_dir``, sorted.

    Symlinks, hard-linked files, FIFOs and subfolders are left out; a ``folder`` that is a
    symlink is refused (:class:`UnsafeRunFile`); a missing one has no files.
    """
    try:
        fd = _open_dir(run_dir, _parts(folder), folder)
    except FileNotFoundError:
        return []
    try:
        files = []
        with os.scandir(fd) as entries:
            for entry in entries:
                with contextlib.suppress(OSError):
                    info = entry.stat(follow_symlinks=False)
                    if stat.S_ISREG(info.st_mode) and info.st_nlink == 1:
                        files.append((entry.name, info.st_size))
        return sorted(files)
    finally:
        os.close(fd)


def make_run_dir(path: str | Path) -> Path:
    """Create a run directory readable by the service's user only (0700)."""
    path = Path(path)
    path.mkdir(mode=RUN_DIR_MODE, parents=True, exist_ok=True)
    os.chmod(path, RUN_DIR_MODE)
    return path


def attempt_file(number: int, what: str) -> str:
    """The name of attempt ``number``'s ``what`` file (``reason``, ``restarts``, ...)."""
    return f"attempt-{number}.{what}"


def attempt_reason(run_dir: str | Path, number: int) -> str | None:
    """The reason a job wrote for attempt ``number``'s failure (at most 2,000 characters)."""
    text = read_run_file(run_dir, attempt_file(number, "reason"), 64 * 1024)
    return (text or "").strip()[:2000] or None


def attempt_restarts(run_dir: str | Path, number: int) -> int:
    """Attempt ``number``'s elastic restart count, as :mod:`aicloud.runtime` wrote it.

    Raises :class:`ValueError` for a file that holds no number.
    """
    return int(read_run_file(run_dir, attempt_file(number, "restarts"), 64) or 0)


def read_log(
    run_dir: str | Path, offset: int, limit: int, rank: int | None = None
) -> tuple[bytes, int]:
    """Up to ``limit`` bytes of the log from byte ``offset``, and where to continue.

    With ``rank``, only that rank's lines (``[rank<N>]:``); offsets stay offsets into the
    whole log, so that following works the same way, and a line that has not ended yet waits.
    """
    try:
        with open_run_file(run_dir, LOG_NAME) as f:
            f.seek(offset)
            data = f.read(limit)
    except FileNotFoundError:
        return b"", offset
    if rank is None or not data:
        return data, offset + len(data)
    end = data.rfind(b"\n") + 1
    if end == 0:
        return b"", offset  # wait for the line to end
    prefix = f"[rank{rank}]:".encode()
    lines = [line for line in data[:end].splitlines(keepends=True) if line.startswith(prefix)]
    return b"".join(lines), offset + end


def metric_point(line: str) -> dict | None:
    """A line of a metrics file as ``report`` writes it, or None.

    Not-a-number and infinite values (a diverging loss) become null, which JSON can carry.
    """
    try:
        point = json.loads(line, parse_constant=lambda _: None)
    except ValueError:
        return None
    if not isinstance(point, dict) or not {"time", "rank", "restart"} <= point.keys():
        return None
    if not all(v is None or type(v) in (int, float) for v in point.values()):
        return None
    return point


def read_metrics(run_dir: str | Path, since: int = 0, limit: int = 1000) -> dict:
    """Points reported with :func:`aicloud.runtime.report` from point ``since`` on.

    The job owns the file: a line that is not a point counts, but is left out.
    """
    points = []
    count = 0
    try:
        with open_run_file(run_dir, METRICS_FILE, "r", errors="replace") as f:
            for number, line in enumerate(f):
                if number >= since and line.endswith("\n"):
                    count += 1
                    point = metric_point(line)
                    if point is not None:
                        points.append(point)
    except FileNotFoundError:
        pass
    latest = points[-1] if points else None
    progress = None
    if latest and latest.get("total"):
        fraction = min(1.0, (latest.get("step") or 0) / latest["total"])
        progress = {"step": latest.get("step"), "total": latest["total"], "fraction": fraction}
    return {
        "points": points[-limit:],
        "next": since + count,
        "latest": latest,
        "progress": progress,
    }


def output_files(run_dir: str | Path) -> list[tuple[str, int]]:
    """Names and sizes of the job's output files; symlinks and the like are left out."""
    return list_run_files(run_dir, OUTPUTS)


def open_output(run_dir: str | Path, name: str) -> IO:
    """One output file, opened for reading without following a symlink."""
    return open_run_file(run_dir, f"{OUTPUTS}/{name}")
