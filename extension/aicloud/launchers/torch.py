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
    check_script,
    entry_files,
    python_entrypoint,
    thread_env,
)
from aicloud.launchers.plan import INDEX, LaunchPlan, Role, Runtime, per_node
from aicloud.spec import Framework, JobKind, JobSpec

RANK_PREFIX = "[rank${rank}]:"
# Heartbeats every 2 s, a node is gone after 3 misses; wait 2 s for late joiners. On a cluster
# a pod may wait long for its peers to be scheduled (image pulls, autoscaling): keep joining.
HEARTBEATS = "last_call_timeout=2,keep_alive_interval=2,keep_alive_max_attempt=3"
JOIN_TIMEOUT = {True: 300, False: 1800}  # by Network.shared_host
RENDEZVOUS_PORT = "rendezvous"
#: What Kubeflow Trainer's torch-distributed runtime sets on every node itself, or makes
#: needless: its nodes meet at PET_MASTER_ADDR:PET_MASTER_PORT (torchrun's static rendezvous).
TRAINER_VARIABLES = frozenset(
    {"PET_NNODES", "PET_NPROC_PER_NODE", "PET_NODE_RANK", "PET_MASTER_ADDR", "PET_MASTER_PORT"}
    | {"PET_RDZV_BACKEND", "PET_RDZV_ENDPOINT", "PET_RDZV_ID", "PET_RDZV_CONF"}
)
TRAINER_RUNTIME = "torch-distributed"


def torchrun_env(spec: JobSpec, context: LaunchContext) -> dict[str, str]:
    """The agents' environment: rank prefixes, and threads sized to the machine."""
    resources = spec.resources
    threads = ("OMP_NUM_THREADS",)
    return {
        **context.env,
        "TORCHELASTIC_LOG_LINE_PREFIX_TEMPLATE": RANK_PREFIX,
        **thread_env(spec, context, threads, resources.world_size, resources.procs_per_node),
    }


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
        """One agent per node (``torchrun --standalone`` for one node).

        Several nodes: ``--rdzv-backend c10d`` with node ranks and counts in torchrun's own
        ``PET_*`` variables (Kubeflow Trainer's contract). On one machine the store runs in a
        process of its own, so that losing any node of an elastic job is survivable; on a
        cluster node 0's agent hosts it, and Trainer's runtime may run the plan.
        """
        resources = spec.resources
        nodes, min_nodes = resources.nodes, resources.min_nodes or resources.nodes
        network = context.network
        env = torchrun_env(spec, context)
        entry = python_entrypoint(spec, context)
        files = entry_files(spec)
        log_dir = context.run_dir / "torchrun" / f"attempt-{context.attempt}"
        common = [
            context.python,
            "-m",
            "torch.distributed.run",
            f"--max-restarts={spec.max_restarts}",
            "--tee=3",
            "--monitor-interval=0.5",
            per_node(f"--log-dir={log_dir}/node-", INDEX),
        ]
        procs = resources.procs_per_node
        if nodes == 1 and min_nodes == 1:
            argv = (*common, f"--nproc-per-node={procs}", "--standalone", *entry)
            role = Role("node", argv, env, procs_per_node=procs)
            return LaunchPlan((role,), cwd=context.cwd, files=files)

        roles = []
        conf = f"join_timeout={JOIN_TIMEOUT[network.shared_host]},{HEARTBEATS}"
        if network.shared_host:
            port = network.port("rendezvous-store", RENDEZVOUS_PORT)
            store_argv = [context.python, "-m", "aicloud.launchers.rendezvous_store"]
            roles.append(
                Role(
                    "rendezvous-store",
                    (*store_argv, f"--port={port}"),
                    dict(context.env),
                    service=True,
                )
            )
            master, conf = network.host("rendezvous-store", 0), f"is_host=false,{conf}"
        else:
            port = network.port("node", RENDEZVOUS_PORT)
            master = network.host("node", 0)
        pet = {
            "PET_NNODES": f"{min_nodes}:{nodes}" if min_nodes < nodes else str(nodes),
            "PET_NPROC_PER_NODE": str(procs),
            "PET_NODE_RANK": per_node(INDEX),
            "PET_MASTER_ADDR": master,
            "PET_MASTER_PORT": str(port),
            "PET_RDZV_BACKEND": "c10d",
            "PET_RDZV_ENDPOINT": f"{master}:{port}",
            "PET_RDZV_ID": f"{context.job_id}-a{context.attempt}",
            "PET_RDZV_CONF": conf,
        }
        node = Role(
            "node",
            (*common, *entry),
            {**env, **pet},
            nodes=nodes,
            procs_per_node=procs,
            ports={RENDEZVOUS_PORT: port},
            node_restarts=spec.max_restarts,
        )
        elastic = min_nodes < nodes
        return LaunchPlan(
            (*roles, node),
            cwd=context.cwd,
            min_success=min_nodes if elastic else None,
            files=files,
            runtime=None if elastic else Runtime(TRAINER_RUNTIME, TRAINER_VARIABLES),
        )
