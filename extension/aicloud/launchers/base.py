"""The launcher interface: turns a job spec into the processes that run it.

A launcher is chosen by ``kind`` and ``framework``. It validates what only it can check (a
script that must exist, a notebook's parameters) and builds a :class:`LaunchPlan`, the exact
argv, environment and working directory of one attempt. Backends run plans; they never look
inside a spec's entry point. The train, notebook, infer and serve kinds plug in here.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar

from aicloud.errors import InvalidSpec
from aicloud.launchers.plan import LaunchPlan, LocalNetwork, Network
from aicloud.spec import Framework, JobKind, JobSpec


@dataclass(frozen=True)
class LaunchContext:
    """What a launcher knows about the run it plans."""

    job_id: str
    attempt: int
    run_dir: Path
    cwd: Path
    env: dict[str, str]
    python: str = field(default=sys.executable)
    #: The warm notebook pool's socket (local notebook jobs only; never in a job's environment).
    notebook_pool: str | None = None
    #: Where the attempt's nodes find each other (the backend's; loopback by default).
    network: Network = field(default_factory=LocalNetwork)
    #: CPU cores of one node (this machine's; a pod's CPU limit; None: not limited).
    cores: float | None = field(default_factory=lambda: machine_cores())

    def threads(self, processes: int, per_node: int) -> str | None:
        """CPU threads per process for a job of ``processes`` processes, ``per_node`` of them
        on each node (all of them when every node shares this machine); None: no limit known.
        """
        if self.cores is None:
            return None
        sharing = processes if self.network.shared_host else per_node
        return str(max(1, int(self.cores // max(1, sharing))))


class Launcher:
    """Base class of launchers.

    Subclasses set ``kinds`` and ``frameworks`` and override :meth:`plan`; they may override
    :meth:`validate` to refuse a spec before anything is stored. Both are plain functions (no
    I/O beyond reading the user's files) so that they can be tested without a backend.
    """

    kinds: ClassVar[frozenset[JobKind]] = frozenset()
    frameworks: ClassVar[frozenset[Framework]] = frozenset()

    def __init__(self, root_dir: Path | None = None):
        self.root_dir = root_dir

    @classmethod
    def supports(cls, spec: JobSpec) -> bool:
        """Whether this launcher runs ``spec``."""
        return spec.kind in cls.kinds and spec.framework in cls.frameworks

    def validate(self, spec: JobSpec, cwd: Path) -> None:
        """Raise :class:`aicloud.errors.InvalidSpec` for a spec this launcher cannot run."""

    def plan(self, spec: JobSpec, context: LaunchContext) -> LaunchPlan:
        """The processes of one attempt."""
        raise NotImplementedError


def machine_cores() -> int:
    """The CPU cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


def threads_per_process(processes: int) -> int:
    """CPU threads per process so that ``processes`` processes share this machine's cores."""
    return max(1, machine_cores() // max(1, processes))


def thread_env(
    spec: JobSpec, context: LaunchContext, names: tuple[str, ...], processes: int, per_node: int
) -> dict[str, str]:
    """``names`` set to :meth:`LaunchContext.threads`, except those the user set."""
    threads = context.threads(processes, per_node)
    if threads is None:
        return {}
    return {name: threads for name in names if name not in spec.env}


def check_script(spec: JobSpec, cwd: Path, root: Path | None = None) -> None:
    """Refuse a script that is not a file in ``cwd``, that leaves ``root`` (default: ``cwd``),
    or whose path the system refuses."""
    if spec.script is None:
        return
    try:
        script = (cwd / spec.script).resolve()
        inside = (root or cwd).resolve()
        if inside not in script.parents:
            raise InvalidSpec("script", "must stay inside your root directory")
        found = script.is_file()
    except (OSError, RuntimeError, ValueError) as e:  # too long, no permission, a symlink loop
        reason = e.strerror if isinstance(e, OSError) and e.strerror else str(e)
        raise InvalidSpec("script", f"{spec.script!r} cannot be used: {reason}") from None
    if not found:
        raise InvalidSpec("script", f"{spec.script!r} not found in {cwd}")


SOURCE_FILE = "source.py"


def python_entrypoint(spec: JobSpec, context: LaunchContext) -> list[str]:
    """The argv after ``python`` for a script, module or inline-source spec (the source is
    staged as the run directory's ``source.py``: see :func:`entry_files`)."""
    if spec.script is not None:
        return [spec.script, *spec.args]
    if spec.module is not None:
        return ["-m", spec.module, *spec.args]
    if spec.source is not None:
        return [str(context.run_dir / SOURCE_FILE), *spec.args]
    raise ValueError(f"{spec.entrypoint} is not a Python entry point")


def entry_files(spec: JobSpec) -> dict[str, str]:
    """The files a plan stages for its entry point: an inline source's ``source.py``."""
    return {SOURCE_FILE: spec.source} if spec.source is not None else {}
