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
    check_script,
    entry_files,
    python_entrypoint,
    thread_env,
)
from aicloud.launchers.plan import INDEX, LaunchPlan, PerNode, Role, per_node
from aicloud.spec import Framework, JobKind, JobSpec

THREAD_VARIABLES = ("OMP_NUM_THREADS", "TF_NUM_INTRAOP_THREADS", "TF_NUM_INTEROP_THREADS")


TF_PORT = "tf"


def tf_config(addresses: list[str]) -> PerNode:
    """Each worker's ``TF_CONFIG`` in a cluster of workers at ``addresses``: its task index
    is its node's."""
    cluster = json.dumps({"cluster": {"worker": addresses}}, separators=(",", ":"))[:-1]
    return per_node(f'{cluster},"task":{{"type":"worker","index":', INDEX, "}}")


def worker_env(spec: JobSpec, context: LaunchContext, world: int) -> dict[str, str]:
    """The workers' common environment: threads sized to the node, quieter C++ logs.

    Every worker is a process (a pod) of its own; variables the user set in the spec win.
    """
    env = {**context.env, **thread_env(spec, context, THREAD_VARIABLES, world, 1)}
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
        """``worker-0`` (the chief) to ``worker-<N-1>``, each on a port of its own, each its
        own node (on one machine: each in a session of its own)."""
        world = spec.resources.world_size
        network = context.network
        ports = [network.port("worker", TF_PORT, index) for index in range(world)]
        addresses = [f"{network.host('worker', i)}:{port}" for i, port in enumerate(ports)]
        env = {**worker_env(spec, context, world), "TF_CONFIG": tf_config(addresses)}
        worker = Role(
            "worker",
            (context.python, *python_entrypoint(spec, context)),
            env,
            nodes=world,
            prefix=per_node("[rank", INDEX, "]:"),
            own_session=True,
            ports={TF_PORT: ports[0]},
        )
        return LaunchPlan((worker,), cwd=context.cwd, files=entry_files(spec))
