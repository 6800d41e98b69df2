"""Launchers, one per job kind (and framework): the plug point for new kinds of work.

Launchers register in the ``aicloud.launchers`` entry-point group (as backends do in
``aicloud.backends``); a package adds a kind of work by registering its
:class:`~aicloud.launchers.base.Launcher` there. The first launcher that supports a spec runs
it, in the order of the entry points' names.
"""

from __future__ import annotations

from functools import cache
from importlib.metadata import entry_points
from pathlib import Path

from aicloud.errors import InvalidSpec
from aicloud.launchers.base import LaunchContext, Launcher
from aicloud.launchers.plan import INDEX, LaunchPlan, LocalNetwork, ProcessSpec, Role, per_node
from aicloud.spec import JobSpec

LAUNCHER_GROUP = "aicloud.launchers"


@cache
def launcher_classes() -> tuple[type[Launcher], ...]:
    """The registered launcher classes, by entry-point name."""
    found = sorted(entry_points(group=LAUNCHER_GROUP), key=lambda ep: ep.name)
    classes = tuple(ep.load() for ep in found)
    if not classes:  # an install without its metadata (a source tree on sys.path)
        raise RuntimeError(f"no launchers in the {LAUNCHER_GROUP!r} entry points: reinstall")
    return classes


def launcher_for(spec: JobSpec, root_dir: Path | None = None) -> Launcher:
    """The launcher that runs ``spec``, or :class:`InvalidSpec` naming ``kind``.

    ``root_dir`` is the directory that the job's files must stay inside.
    """
    for launcher_class in launcher_classes():
        if launcher_class.supports(spec):
            return launcher_class(root_dir)
    raise InvalidSpec(
        "kind",
        f"no launcher for kind {spec.kind.value!r} with framework {spec.framework.value!r}"
        " on this service yet",
    )


__all__ = [
    "INDEX",
    "LAUNCHER_GROUP",
    "LaunchContext",
    "LaunchPlan",
    "Launcher",
    "LocalNetwork",
    "ProcessSpec",
    "Role",
    "launcher_classes",
    "launcher_for",
    "per_node",
]
