"""The ``command`` kind: an argv, a Python script, a module or inline source.

Run once, or once on each of ``nodes`` nodes (SPMD programs such as JAX on a multi-host TPU
slice), each told its node by ``AICLOUD_NODE_RANK``, ``AICLOUD_NODES`` and
``AICLOUD_NODE_HOSTS``.
"""

from __future__ import annotations

from pathlib import Path

from aicloud.errors import InvalidSpec
from aicloud.launchers.base import (
    LaunchContext,
    Launcher,
    check_script,
    entry_files,
    python_entrypoint,
)
from aicloud.launchers.plan import INDEX, LaunchPlan, Role, per_node
from aicloud.spec import Framework, JobKind, JobSpec


class CommandLauncher(Launcher):
    """Runs one process per node; several processes per node are refused."""

    kinds = frozenset({JobKind.command})
    frameworks = frozenset(Framework)

    def validate(self, spec: JobSpec, cwd: Path) -> None:
        """Refuse several processes per node, and scripts that do not exist."""
        if spec.resources.procs_per_node != 1:
            raise InvalidSpec(
                "resources.procs_per_node",
                "a command job runs one process per node; use kind 'train' for more",
            )
        check_script(spec, cwd, self.root_dir)

    def plan(self, spec: JobSpec, context: LaunchContext) -> LaunchPlan:
        """The argv as given, or ``python`` with the script, module or source, per node."""
        if spec.command is not None:
            argv = tuple(spec.command)
        else:
            argv = (context.python, *python_entrypoint(spec, context))
        nodes = spec.resources.nodes
        if nodes == 1:
            return LaunchPlan.single(list(argv), dict(context.env), context.cwd, entry_files(spec))
        hosts = ",".join(context.network.host("node", i) for i in range(nodes))
        env = {
            **context.env,
            "AICLOUD_NODE_RANK": per_node(INDEX),
            "AICLOUD_NODES": str(nodes),
            "AICLOUD_NODE_HOSTS": hosts,
        }
        prefix = per_node("[node", INDEX, "]:")
        node = Role("node", argv, env, nodes=nodes, prefix=prefix, own_session=True)
        return LaunchPlan((node,), cwd=context.cwd, files=entry_files(spec))
