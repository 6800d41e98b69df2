"""Files of a run directory, opened without trusting anything a job can write.

A job owns its run directory: it can replace ``output.log``, ``metrics.jsonl``, a status file
or an output with a symlink (to ``/proc/self/environ``, to another user's run directory), a
hard link, a FIFO or a folder. The service reads those files only through this module, which
walks a name one component at a time from a descriptor of the run directory, opens each with
``O_NOFOLLOW``, refuses ``..`` and absolute names, and accepts only a regular file with one
link at the end. A FIFO is opened with ``O_NONBLOCK``, so that it is refused and not waited on.
"""

from __future__ import annotations

import contextlib
import os
import stat
from pathlib import Path
from typing import IO

from aicloud.errors import UnsafeRunFile

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
