"""What one attempt runs, independent of where: roles of nodes, each node's command and
environment, the files to stage, the ports it listens on.

A launcher (torchrun, ``TF_CONFIG`` workers, papermill, the model server) builds a
:class:`LaunchPlan`; a backend places it. The local backend runs every node of every role as a
process on this machine (:attr:`LaunchPlan.processes`); the Kubernetes backend makes each role
an Indexed Job of ``nodes`` pods (:mod:`aicloud.backends.kubernetes.builders`). What differs
between a role's nodes is written with :data:`INDEX`, the node's index, which the local
backend fills in per process and Kubernetes fills in from the pod's completion index. Where
peers are (hosts, ports, the address to bind) comes from the backend's :class:`Network`, so
launchers never guess.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from aicloud import ports


class _Index:
    """The index of the node a value is rendered for (see :class:`PerNode`)."""

    def __repr__(self) -> str:
        return "INDEX"


INDEX = _Index()


@dataclass(frozen=True)
class PerNode:
    """A string that differs between a role's nodes: literal parts and :data:`INDEX`."""

    parts: tuple[str | _Index, ...]

    def render(self, index: int) -> str:
        """The value on node ``index``."""
        return "".join(str(index) if p is INDEX else p for p in self.parts)


def per_node(*parts: str | _Index) -> PerNode:
    """``per_node("[rank", INDEX, "]:")``: a value with the node's index in it."""
    return PerNode(tuple(parts))


Text = str | PerNode


def render(value: Text, index: int) -> str:
    """``value`` on node ``index``."""
    return value.render(index) if isinstance(value, PerNode) else value


@dataclass(frozen=True)
class Runtime:
    """An engine's own operator that can run a plan of one role (Kubeflow Trainer's
    ``torch-distributed`` ClusterTrainingRuntime, say), and the variables it sets itself."""

    name: str
    provides: frozenset[str] = frozenset()


@dataclass(frozen=True)
class Role:
    """``nodes`` copies of one command: one process each here, one pod each on a cluster.

    ``procs_per_node`` is how many processes the command itself starts (torchrun's workers).
    ``prefix`` goes before every output line (``[rank3]:``). A ``service`` (a rendezvous store)
    is stopped once the workers are done and does not count towards success; ``own_session``
    starts it in a session of its own (Linux's autogroup scheduler shares the CPU between
    sessions). ``ports`` are what each node listens on, by name; ``serves`` names the one a
    long-running endpoint answers on (with ``ready_path`` its HTTP readiness check).
    ``node_restarts`` is how many lost nodes may be replaced (elastic jobs).
    """

    name: str
    argv: tuple[Text, ...]
    env: Mapping[str, Text]
    nodes: int = 1
    procs_per_node: int = 1
    prefix: Text = ""
    service: bool = False
    own_session: bool = False
    ports: Mapping[str, int] = field(default_factory=dict)
    serves: str | None = None
    ready_path: str | None = None
    node_restarts: int = 0


@dataclass(frozen=True)
class ProcessSpec:
    """One process of an attempt on this machine: a role's node, rendered."""

    name: str
    argv: list[str]
    env: dict[str, str]
    prefix: str = ""
    service: bool = False
    own_session: bool = False


@dataclass(frozen=True)
class LaunchPlan:
    """One attempt: its roles, working directory, staged files, and what counts as success.

    ``files`` maps paths relative to the run directory to their contents; backends put them
    there before anything starts (a ConfigMap on a cluster). ``min_success`` is how many
    worker nodes must exit 0 (default: all, and none may fail); elastic jobs set it so that
    losing a node is survivable. ``runtime``: an operator that can run this plan instead.
    """

    roles: tuple[Role, ...]
    cwd: Path
    min_success: int | None = None
    files: Mapping[str, str] = field(default_factory=dict)
    runtime: Runtime | None = None

    @classmethod
    def single(
        cls, argv: list[str], env: dict[str, str], cwd: Path, files: Mapping[str, str] = {}
    ) -> LaunchPlan:
        """A plan of one process."""
        return cls(roles=(Role("main", tuple(argv), env),), cwd=cwd, files=dict(files))

    @property
    def workers(self) -> list[Role]:
        """The roles that do the work (not services)."""
        return [r for r in self.roles if not r.service]

    @property
    def processes(self) -> list[ProcessSpec]:
        """Every node of every role as a process on one machine, named ``<role>-<index>``
        (a one-node service or ``main`` role: its name alone)."""
        processes = []
        for role in self.roles:
            alone = role.nodes == 1 and (role.service or role.name == "main")
            for index in range(role.nodes):
                processes.append(
                    ProcessSpec(
                        name=role.name if alone else f"{role.name}-{index}",
                        argv=[render(a, index) for a in role.argv],
                        env={k: render(v, index) for k, v in role.env.items()},
                        prefix=render(role.prefix, index),
                        service=role.service,
                        own_session=role.own_session,
                    )
                )
        return processes

    def to_json(self) -> dict:
        """The plan as the supervisor reads it: its processes on this machine."""
        return {
            "cwd": str(self.cwd),
            "min_success": self.min_success,
            "processes": [
                {
                    "name": p.name,
                    "argv": p.argv,
                    "env": p.env,
                    "prefix": p.prefix,
                    "service": p.service,
                    "own_session": p.own_session,
                }
                for p in self.processes
            ],
        }

    def stage(self, run_dir: Path) -> None:
        """Write :attr:`files` into ``run_dir`` (the local backend; a shared volume)."""
        for relative, content in self.files.items():
            path = run_dir / relative
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(content)


class Network(Protocol):
    """Where a plan's nodes find each other, as the backend that places it decides.

    ``shared_host``: every node runs on this one machine (ports must differ per node).
    ``bind_host``: the address a server listens on to be reachable by its peers.
    """

    shared_host: bool
    bind_host: str

    def host(self, role: str, index: int) -> str:
        """The address of node ``index`` of ``role``."""
        ...

    def port(self, role: str, name: str, index: int = 0) -> int:
        """The port ``name`` of node ``index`` of ``role`` listens on."""
        ...

    def url(self, role: str, port: int) -> str:
        """The URL clients reach a serving role's ``port`` at."""
        ...


class LocalNetwork:
    """Every node on loopback, each port a free one (asked once, then kept)."""

    shared_host = True
    bind_host = "127.0.0.1"

    def __init__(self) -> None:
        self._ports: dict[tuple[str, str, int], int] = {}

    def host(self, role: str, index: int) -> str:
        """Loopback."""
        return "127.0.0.1"

    def port(self, role: str, name: str, index: int = 0) -> int:
        """A port free on 127.0.0.1 now, never one given to another node of this plan."""
        key = (role, name, index)
        while key not in self._ports:
            port = self.free_port()
            if port not in self._ports.values():
                self._ports[key] = port
        return self._ports[key]

    @staticmethod
    def free_port() -> int:
        """A TCP port free on 127.0.0.1 now, below the ephemeral ports (:mod:`aicloud.ports`;
        it may give the same one twice)."""
        return ports.free_port("127.0.0.1")

    def url(self, role: str, port: int) -> str:
        """``http://127.0.0.1:<port>``."""
        return f"http://127.0.0.1:{port}"
