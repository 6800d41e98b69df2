"""Launchers, one per job kind (and framework): the plug point for new kinds of work."""

from __future__ import annotations

from pathlib import Path

from aicloud.errors import InvalidSpec
from aicloud.launchers.base import LaunchContext, Launcher, LaunchPlan, ProcessSpec
from aicloud.launchers.command import CommandLauncher
from aicloud.launchers.infer import InferLauncher
from aicloud.launchers.notebook import NotebookLauncher
from aicloud.launchers.serve import ServeLauncher
from aicloud.launchers.tensorflow import TensorFlowLauncher
from aicloud.launchers.torch import TorchLauncher
from aicloud.spec import JobSpec

LAUNCHERS: tuple[type[Launcher], ...] = (
    CommandLauncher,
    NotebookLauncher,
    TorchLauncher,
    TensorFlowLauncher,
    InferLauncher,
    ServeLauncher,
)


def launcher_for(spec: JobSpec, root_dir: Path | None = None) -> Launcher:
    """The launcher that runs ``spec``, or :class:`InvalidSpec` naming ``kind``.

    ``root_dir`` is the directory that the job's files must stay inside.
    """
    for launcher_class in LAUNCHERS:
        if launcher_class.supports(spec):
            return launcher_class(root_dir)
    raise InvalidSpec(
        "kind",
        f"no launcher for kind {spec.kind.value!r} with framework {spec.framework.value!r}"
        " on this service yet",
    )


__all__ = ["LAUNCHERS", "LaunchContext", "LaunchPlan", "Launcher", "ProcessSpec", "launcher_for"]
