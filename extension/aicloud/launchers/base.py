"""The launcher interface: turns a job spec into the processes that run it.

A launcher is chosen by ``kind`` and ``framework``. It validates what only it can check (a
script that must exist, a notebook's parameters) and builds a :class:`LaunchPlan`, the exact
argv, environment and working directory of one attempt. Backends run plans; they never look
inside a spec's entry point. The train, notebook, infer and serve kinds plug in here.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar

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


@dataclass(frozen=True)
class LaunchPlan:
    """One attempt's processes: argv, environment and working directory."""

    argv: list[str]
    env: dict[str, str]
    cwd: Path
    log_names: tuple[str, ...] = ("output",)


class Launcher:
    """Base class of launchers.

    Subclasses set ``kinds`` and ``frameworks`` and override :meth:`plan`; they may override
    :meth:`validate` to refuse a spec before anything is stored. Both are plain functions (no
    I/O beyond reading the user's files) so that they can be tested without a backend.
    """

    kinds: ClassVar[frozenset[JobKind]] = frozenset()
    frameworks: ClassVar[frozenset[Framework]] = frozenset()

    @classmethod
    def supports(cls, spec: JobSpec) -> bool:
        """Whether this launcher runs ``spec``."""
        return spec.kind in cls.kinds and spec.framework in cls.frameworks

    def validate(self, spec: JobSpec, cwd: Path) -> None:
        """Raise :class:`aicloud.errors.InvalidSpec` for a spec this launcher cannot run."""

    def plan(self, spec: JobSpec, context: LaunchContext) -> LaunchPlan:
        """The processes of one attempt."""
        raise NotImplementedError


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
