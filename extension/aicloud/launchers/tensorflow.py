"""The TensorFlow launcher: one process per worker, each with its own ``TF_CONFIG``.

``MultiWorkerMirroredStrategy`` needs no launcher of its own: every worker is a plain ``python``
that reads the cluster and its task index from ``TF_CONFIG``; worker 0 is the chief. On the
local backend all ``nodes * procs_per_node`` workers listen on loopback. Every worker's output
goes to the attempt's log behind ``[rank<i>]:``, as with torch. TensorFlow has no elastic
restarts: a failed attempt is retried whole (``max_retries``).
"""

from __future__ import annotations

import json
from pathlib import Path

from aicloud.errors import InvalidSpec
from aicloud.launchers.base import (
    LaunchContext,
    Launcher,
    LaunchPlan,
    ProcessSpec,
    check_script,
    python_entrypoint,
    threads_per_process,
)
from aicloud.spec import Framework, JobKind, JobSpec

THREAD_VARIABLES = ("OMP_NUM_THREADS", "TF_NUM_INTRAOP_THREADS", "TF_NUM_INTEROP_THREADS")


def tf_config(addresses: list[str], index: int) -> str:
    """The ``TF_CONFIG`` of worker ``index`` in a cluster of workers at ``addresses``."""
    return json.dumps(
        {"cluster": {"worker": addresses}, "task": {"type": "worker", "index": index}}
    )


def worker_env(spec: JobSpec, context: LaunchContext, world: int) -> dict[str, str]:
    """The workers' common environment: threads sized to the machine, quieter C++ logs.

    Variables the user set in the spec win.
    """
    env = dict(context.env)
    threads = str(threads_per_process(world))
    for name in THREAD_VARIABLES:
        if name not in spec.env:
            env[name] = threads
    if "TF_CPP_MIN_LOG_LEVEL" not in spec.env:
        env["TF_CPP_MIN_LOG_LEVEL"] = "1"
    return env


class TensorFlowLauncher(Launcher):
    """Plans one ``python`` per worker for ``kind=train, framework=tensorflow``."""

    kinds = frozenset({JobKind.train})
    frameworks = frozenset({Framework.tensorflow})

    def validate(self, spec: JobSpec, cwd: Path) -> None:
        """A script, module or source (the script must exist); no elastic restarts."""
        if spec.command is not None:
            raise InvalidSpec(
                "command", "TensorFlow train jobs run a script, module or source, one per worker"
            )
        if spec.max_restarts > 0:
            raise InvalidSpec(
                "max_restarts",
                "TensorFlow has no elastic restarts; use max_retries to rerun a failed attempt",
            )
        resources = spec.resources
        if resources.min_nodes is not None and resources.min_nodes < resources.nodes:
            raise InvalidSpec(
                "resources.min_nodes", "TensorFlow jobs are not elastic; leave min_nodes unset"
            )
        check_script(spec, cwd, self.root_dir)

    def plan(self, spec: JobSpec, context: LaunchContext) -> LaunchPlan:
        """``worker-0`` (the chief) to ``worker-<N-1>``, each on a port of its own."""
        world = spec.resources.world_size
        ports: list[int] = []
        while len(ports) < world:
            port = context.free_port()
            if port not in ports:
                ports.append(port)
        addresses = [f"127.0.0.1:{port}" for port in ports]
        env = worker_env(spec, context, world)
        argv = [context.python, *python_entrypoint(spec, context)]
        workers = [
            ProcessSpec(
                f"worker-{index}",
                list(argv),
                {**env, "TF_CONFIG": tf_config(addresses, index)},
                prefix=f"[rank{index}]:",
                own_session=True,
            )
            for index in range(world)
        ]
        return LaunchPlan(workers, cwd=context.cwd)
