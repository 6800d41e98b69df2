"""The ``notebook`` kind: papermill runs the notebook with typed parameters, fresh kernel.

When the server runs a warm pool (:mod:`aicloud.launchers.notebook_pool`), the manager hands
its socket to the launcher (``LaunchContext.notebook_pool``); a local job's process is then the
pool's thin client, which runs the plain runner itself if the pool cannot take the run.
"""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

from aicloud.errors import InvalidSpec
from aicloud.launchers.base import LaunchContext, Launcher
from aicloud.launchers.plan import LaunchPlan
from aicloud.notebooks import (
    check_parameters,
    notebook_kernel,
    notebook_parameters,
    read_notebook,
    resolve_notebook,
)
from aicloud.spec import Framework, JobKind, JobSpec

OUTPUTS = "outputs"
PARAMETERS_FILE = "parameters.json"
POOL_ENV = "AICLOUD_NOTEBOOK_POOL"
CLIENT = Path(__file__).with_name("notebook_client.py")


def is_socket(path: str) -> bool:
    """Whether ``path`` is a unix socket (a pool that is, or was, listening)."""
    try:
        return stat.S_ISSOCK(os.stat(path).st_mode)
    except OSError:
        return False


def kernel_names() -> set[str]:
    """The kernels this machine can start."""
    from jupyter_client.kernelspec import KernelSpecManager

    return set(KernelSpecManager().find_kernel_specs())


def origin_env(notebook: Path, root: Path, run_dir: Path) -> dict[str, str]:
    """What tells the kernel which notebook and cell it runs, so that jobs it launches record
    their origin: ``JPY_SESSION_NAME`` as a Jupyter server sets it (the path under the root),
    and the file the runner writes each cell's id to (``AICLOUD_CELL_FILE``)."""
    try:
        name = str(notebook.relative_to(Path(root).resolve()))
    except ValueError:
        name = str(notebook)
    return {"JPY_SESSION_NAME": name, "AICLOUD_CELL_FILE": str(run_dir / "current-cell")}


class NotebookLauncher(Launcher):
    """Plans one papermill run; outputs go to the run's ``outputs`` folder."""

    kinds = frozenset({JobKind.notebook})
    frameworks = frozenset(Framework)

    def validate(self, spec: JobSpec, cwd: Path) -> None:
        """The notebook exists inside the root, its parameters are known and well typed."""
        if spec.resources.world_size != 1:
            raise InvalidSpec("resources", "a notebook job runs in one kernel on one node")
        path = resolve_notebook(self.root_dir or cwd, cwd, spec.notebook)
        kernel = spec.kernel or notebook_kernel(read_notebook(path))
        if kernel is None:
            raise InvalidSpec("kernel", "the notebook names no kernel; give one")
        if kernel not in kernel_names():
            known = ", ".join(sorted(kernel_names()))
            raise InvalidSpec("kernel", f"no kernel named {kernel!r}; installed: {known}")
        check_parameters(spec.parameters, notebook_parameters(path))

    def plan(self, spec: JobSpec, context: LaunchContext) -> LaunchPlan:
        """``python -m aicloud.launchers.notebook_runner`` with the parameters in a file.

        Behind the pool's client when ``context.notebook_pool`` names a listening socket and
        the job runs on this machine.
        """
        notebook = (context.cwd / spec.notebook).resolve()
        outputs = context.run_dir / OUTPUTS
        parameters = context.run_dir / PARAMETERS_FILE
        argv = [
            context.python,
            "-m",
            "aicloud.launchers.notebook_runner",
            f"--input={notebook}",
            f"--output={outputs / notebook.name}",
            f"--html={outputs / notebook.with_suffix('.html').name}",
            f"--parameters={parameters}",
            f"--cwd={notebook.parent}",
        ]
        if spec.kernel:
            argv.append(f"--kernel={spec.kernel}")
        env = dict(context.env)
        env.update(origin_env(notebook, self.root_dir or context.cwd, context.run_dir))
        pool = context.notebook_pool
        if pool and spec.backend == "local" and is_socket(pool):
            argv = [context.python, "-I", "-S", str(CLIENT), "--socket", pool, "--", *argv]
        files = {PARAMETERS_FILE: json.dumps(spec.parameters)}
        return LaunchPlan.single(argv, env, context.cwd, files)
