"""The torch launcher: ``torchrun`` does rendezvous and elastic restarts; aicloud plans it.

One node: ``torchrun --standalone``. Several nodes on the local backend: one agent per node
over loopback, ``--rdzv-backend c10d`` with the rendezvous store in a process of its own, so that
losing any node of an elastic job (``--nnodes MIN:MAX``) is survivable. Every rank's output goes
to the attempt's log behind ``[rank<N>]:`` (torchrun's tee with a line-prefix template).
"""

from __future__ import annotations

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

RANK_PREFIX = "[rank${rank}]:"
# Heartbeats every 2 s, a node is gone after 3 misses; wait 2 s for late joiners.
RDZV_CONF = ",".join(
    [
        "is_host=false",
        "join_timeout=300",
        "last_call_timeout=2",
        "keep_alive_interval=2",
        "keep_alive_max_attempt=3",
    ]
)


def torchrun_env(spec: JobSpec, context: LaunchContext) -> dict[str, str]:
    """The agents' environment: rank prefixes, and threads sized to the machine."""
    env = dict(context.env)
    env["TORCHELASTIC_LOG_LINE_PREFIX_TEMPLATE"] = RANK_PREFIX
    if "OMP_NUM_THREADS" not in spec.env:
        env["OMP_NUM_THREADS"] = str(threads_per_process(spec.resources.world_size))
    return env


class TorchLauncher(Launcher):
    """Plans ``torchrun`` agents (and a rendezvous store) for ``kind=train, framework=torch``."""

    kinds = frozenset({JobKind.train})
    frameworks = frozenset({Framework.torch})

    def validate(self, spec: JobSpec, cwd) -> None:
        """A script, module or source; the script must exist."""
        if spec.command is not None:
            raise InvalidSpec("command", "train jobs run a script, module or source via torchrun")
        check_script(spec, cwd, self.root_dir)

    def plan(self, spec: JobSpec, context: LaunchContext) -> LaunchPlan:
        """One agent per node; with several nodes, a rendezvous store beside them."""
        resources = spec.resources
        nodes, min_nodes = resources.nodes, resources.min_nodes or resources.nodes
        env = torchrun_env(spec, context)
        entry = python_entrypoint(spec, context)
        log_dir = context.run_dir / "torchrun" / f"attempt-{context.attempt}"
        common = [
            context.python,
            "-m",
            "torch.distributed.run",
            f"--nproc-per-node={resources.procs_per_node}",
            f"--max-restarts={spec.max_restarts}",
            "--tee=3",
            "--monitor-interval=0.5",
        ]
        if nodes == 1 and min_nodes == 1:
            argv = [*common, "--standalone", f"--log-dir={log_dir / 'node-0'}", *entry]
            return LaunchPlan([ProcessSpec("node-0", argv, env)], cwd=context.cwd)

        port = context.free_port()
        store = ProcessSpec(
            "rendezvous-store",
            [context.python, "-m", "aicloud.launchers.rendezvous_store", f"--port={port}"],
            dict(context.env),
            service=True,
        )
        agents = [
            ProcessSpec(
                f"node-{index}",
                [
                    *common,
                    f"--nnodes={min_nodes}:{nodes}",
                    "--rdzv-backend=c10d",
                    f"--rdzv-endpoint=127.0.0.1:{port}",
                    f"--rdzv-id={context.job_id}-{context.attempt}",
                    f"--rdzv-conf={RDZV_CONF}",
                    f"--log-dir={log_dir / f'node-{index}'}",
                    *entry,
                ],
                env,
            )
            for index in range(nodes)
        ]
        elastic = min_nodes < nodes
        return LaunchPlan(
            [store, *agents], cwd=context.cwd, min_success=min_nodes if elastic else None
        )
