"""Kill-able units: every process of one local attempt, found and killed as one.

An attempt's supervisor is put into its unit before it gets its plan, so the job's processes,
however they fork, detach or re-parent, are in it from their first instruction:

- :class:`CgroupUnit`, a cgroup v2 of its own (``<server's cgroup>/aicloud/<name>``). A job
  cannot leave it (moving a process needs write access to the cgroup above, which the
  service keeps), and ``cgroup.kill`` ends all of it at once, forks in flight included.
- :class:`TaggedUnit`, where no cgroup v2 is writable (a server without root, cgroup v1 only):
  the processes that carry the unit's tag in their environment (``AICLOUD_UNIT``, inherited by
  every child). A process that clears its environment escapes it; the supervisor's session,
  its child subreaper and ``PR_SET_PDEATHSIG`` cover the usual cases, and the operator docs
  say so.

Both are found again from their name alone, after a restart of the server.
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
from pathlib import Path

UNIT_ENV = "AICLOUD_UNIT"
CGROUP_BASE = "aicloud"


def cgroup2_mount() -> Path | None:
    """Where the cgroup v2 hierarchy is mounted, from /proc/self/mountinfo."""
    try:
        with open("/proc/self/mountinfo") as f:
            for line in f:
                left, _, right = line.partition(" - ")
                if right.split(" ", 1)[0] == "cgroup2":
                    return Path(left.split()[4])
    except OSError:
        pass
    return None


def _own_cgroup() -> str | None:
    try:
        with open("/proc/self/cgroup") as f:
            for line in f:
                if line.startswith("0::"):
                    return line[3:].strip()
    except OSError:
        pass
    return None


def cgroup_base() -> Path | None:
    """The folder holding this server's attempt cgroups, made if need be; None if none can be.

    It lies below the server's own cgroup, so that a container or a systemd unit that gives
    the server a delegated subtree keeps its jobs inside it.
    """
    mount, own = cgroup2_mount(), _own_cgroup()
    if mount is None or own is None:
        return None
    base = mount / own.lstrip("/") / CGROUP_BASE
    try:
        base.mkdir(mode=0o755, exist_ok=True)
        probe = base / f".probe-{os.getpid()}"
        probe.mkdir(exist_ok=True)
        usable = (probe / "cgroup.procs").exists() and os.access(probe / "cgroup.procs", os.W_OK)
        probe.rmdir()
    except OSError:
        return None
    if usable:
        sweep_empty(base)
    return base if usable else None


def sweep_empty(base: Path, older_than: float = 60.0) -> None:
    """Remove the empty attempt cgroups that no server removed (an attempt that ended while
    its server was gone). The kernel refuses to remove one with a process in it; the age
    spares one made a moment ago, not yet given its supervisor."""
    now = time.time()
    for child in base.iterdir():
        with contextlib.suppress(OSError):
            if child.is_dir() and now - child.stat().st_mtime > older_than:
                child.rmdir()


def _signal(pids: list[int], sig: int) -> None:
    for pid in pids:
        with contextlib.suppress(OSError):
            os.kill(pid, sig)


class CgroupUnit:
    """One attempt's cgroup v2."""

    kind = "cgroup"

    def __init__(self, path: Path):
        self.path = Path(path)

    @property
    def name(self) -> str:
        """What finds the unit again: its path."""
        return str(self.path)

    def create(self) -> None:
        """Make the cgroup."""
        self.path.mkdir(mode=0o755, exist_ok=True)

    def add(self, pid: int) -> None:
        """Move ``pid`` (and so every child it starts from now on) into the unit."""
        with open(self.path / "cgroup.procs", "w") as f:
            f.write(str(pid))

    def pids(self) -> list[int]:
        """The unit's live processes."""
        try:
            with open(self.path / "cgroup.procs") as f:
                return [int(line) for line in f if line.strip()]
        except FileNotFoundError:
            return []

    def populated(self) -> bool:
        """Whether any process is left (``cgroup.events``, which counts sub-cgroups too)."""
        try:
            with open(self.path / "cgroup.events") as f:
                return "populated 1" in f.read()
        except FileNotFoundError:
            return False

    def kill(self) -> None:
        """SIGKILL every process of the unit (``cgroup.kill``, else frozen, then each one)."""
        try:
            with open(self.path / "cgroup.kill", "w") as f:
                f.write("1")
            return
        except FileNotFoundError:
            if not self.path.exists():
                return
        except OSError:
            pass
        freeze = self.path / "cgroup.freeze"  # kernels before 5.14: no fork escapes a freeze
        with contextlib.suppress(OSError):
            freeze.write_text("1")
        _signal(self.pids(), signal.SIGKILL)
        with contextlib.suppress(OSError):
            freeze.write_text("0")

    def remove(self) -> None:
        """Remove the empty cgroup."""
        with contextlib.suppress(FileNotFoundError, OSError):
            self.path.rmdir()


class TaggedUnit:
    """The processes whose environment carries ``AICLOUD_UNIT=<name>``."""

    kind = "tag"

    def __init__(self, name: str):
        self.name = name
        self._needle = f"{UNIT_ENV}={name}\0".encode()

    def create(self) -> None:
        """Nothing to make: the tag travels in the environment."""

    def add(self, pid: int) -> None:
        """Nothing to do: the supervisor was started with the tag."""

    def pids(self) -> list[int]:
        """Live processes with the tag that this server may see (its own uid, or all as root)."""
        found = []
        for entry in os.listdir("/proc"):
            if not entry.isdigit():
                continue
            try:
                with open(f"/proc/{entry}/environ", "rb") as f:
                    environ = f.read() + b"\0"
                with open(f"/proc/{entry}/stat", "rb") as f:
                    state = f.read().rsplit(b")", 1)[1].split()[0]
            except OSError:
                continue
            if state != b"Z" and (b"\0" + self._needle) in (b"\0" + environ):
                found.append(int(entry))
        return found

    def populated(self) -> bool:
        """Whether any tagged process is left."""
        return bool(self.pids())

    def kill(self) -> None:
        """SIGKILL the tagged processes, again until none is left (forks in flight)."""
        for _ in range(20):
            pids = self.pids()
            if not pids:
                return
            _signal(pids, signal.SIGKILL)
            time.sleep(0.01)

    def remove(self) -> None:
        """Nothing to remove."""


def wait_empty(unit, timeout: float) -> bool:
    """Kill the unit and wait until no process of it is left; False if some still are."""
    deadline = time.monotonic() + timeout
    while True:
        if not unit.populated():
            unit.remove()
            return True
        unit.kill()
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.01)
