"""The launcher interface: turns a job spec into the processes that run it.

A launcher is chosen by ``kind`` and ``framework``. It validates what only it can check (a
script that must exist, a notebook's parameters) and builds a :class:`LaunchPlan`, the exact
argv, environment and working directory of one attempt. Backends run plans; they never look
inside a spec's entry point. The train, notebook, infer and serve kinds plug in here.
"""

from __future__ import annotations

import os
import socket
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar

from aicloud.errors import InvalidSpec
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

    @staticmethod
    def free_port() -> int:
        """A TCP port free on 127.0.0.1 now (the process that binds it follows at once)."""
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            return s.getsockname()[1]


@dataclass(frozen=True)
class ProcessSpec:
    """One process of an attempt.

    ``prefix`` asks the supervisor to put it before every output line (``[rank3]:``);
    a ``service`` (a rendezvous store) is stopped once the workers are done and does not count
    towards success. ``own_session`` starts it in a session of its own, as ``torchrun`` starts
    its workers: Linux's autogroup scheduler shares the CPU between sessions, so workers that
    share one session get one share between them.
    """

    name: str
    argv: list[str]
    env: dict[str, str]
    prefix: str = ""
    service: bool = False
    own_session: bool = False


@dataclass(frozen=True)
class LaunchPlan:
    """One attempt's processes, their working directory, and what counts as success.

    ``min_success`` is how many workers must exit 0 (default: all of them, and none may
    fail); elastic jobs set it so that losing a node is survivable.
    """

    processes: list[ProcessSpec]
    cwd: Path
    min_success: int | None = None

    @classmethod
    def single(cls, argv: list[str], env: dict[str, str], cwd: Path) -> LaunchPlan:
        """A plan of one process."""
        return cls(processes=[ProcessSpec(name="main", argv=argv, env=env)], cwd=cwd)

    def to_json(self) -> dict:
        """The plan as the supervisor reads it."""
        return {
            "cwd": str(self.cwd),
            "min_success": self.min_success,
            "processes": [
                {
                    "name": p.name,
                    "argv": p.argv,
                    "env": p.env,
                    "prefix": p.prefix,
                    "service": p.service,
                    "own_session": p.own_session,
                }
                for p in self.processes
            ],
        }


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


def threads_per_process(processes: int) -> int:
    """CPU threads per process so that ``processes`` processes share this machine's cores."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:
        cores = os.cpu_count() or 1
    return max(1, cores // max(1, processes))


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


def python_entrypoint(spec: JobSpec, context: LaunchContext) -> list[str]:
    """The argv after ``python`` for a script, module or inline-source spec."""
    if spec.script is not None:
        return [spec.script, *spec.args]
    if spec.module is not None:
        return ["-m", spec.module, *spec.args]
    if spec.source is not None:
        path = context.run_dir / "source.py"
        path.write_text(spec.source)
        return [str(path), *spec.args]
    raise ValueError(f"{spec.entrypoint} is not a Python entry point")
