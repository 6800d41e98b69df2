"""The ``command`` kind: an argv, a Python script, a module or inline source, run once."""

from __future__ import annotations

from pathlib import Path

from aicloud.errors import InvalidSpec
from aicloud.launchers.base import (
    LaunchContext,
    Launcher,
    LaunchPlan,
    check_script,
    python_entrypoint,
)
from aicloud.spec import Framework, JobKind, JobSpec


class CommandLauncher(Launcher):
    """Runs one process; resources beyond one node and one process are refused."""

    kinds = frozenset({JobKind.command})
    frameworks = frozenset(Framework)

    def validate(self, spec: JobSpec, cwd: Path) -> None:
        """Refuse multi-process shapes and scripts that do not exist."""
        if spec.resources.nodes != 1 or spec.resources.procs_per_node != 1:
            raise InvalidSpec(
                "resources", "a command job runs one process; use kind 'train' for more"
            )
        check_script(spec, cwd, self.root_dir)

    def plan(self, spec: JobSpec, context: LaunchContext) -> LaunchPlan:
        """The argv as given, or ``python`` with the script, module or source."""
        if spec.command is not None:
            argv = list(spec.command)
        else:
            argv = [context.python, *python_entrypoint(spec, context)]
        return LaunchPlan.single(argv, dict(context.env), context.cwd)
