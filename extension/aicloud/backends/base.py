"""The backend interface: where attempts run (this machine, a Kubernetes cluster)."""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from traitlets import Float
from traitlets.config import LoggingConfigurable

from aicloud.launchers import LaunchPlan
from aicloud.launchers.base import machine_cores
from aicloud.launchers.plan import LocalNetwork, Network
from aicloud.spec import JobSpec, Resources


@dataclass(frozen=True)
class Attempt:
    """One attempt of a job, as a backend starts it: who, which, where, and its plan.

    ``launch`` is the record :meth:`Backend.prepare` gave, stored with the attempt before the
    start; the handle that :meth:`Backend.start` returns includes it. ``root`` is the owner's
    root directory as the service sees it (where it resolved the plan's ``cwd`` and files;
    None: not known), so that a backend that runs elsewhere can show the owner's files at the
    same paths.
    """

    job_id: str
    number: int
    run_dir: Path
    plan: LaunchPlan
    spec: JobSpec
    owner: str | None = None
    launch: dict[str, Any] = field(default_factory=dict)
    timeout_seconds: int | None = None
    root: Path | None = None

    @property
    def resources(self) -> Resources:
        """What the spec asks for."""
        return self.spec.resources


@dataclass(frozen=True)
class AttemptExit:
    """How an attempt ended, as far as the backend can tell."""

    exit_code: int | None = None
    signal: int | None = None
    timed_out: bool = False
    terminated: bool = False
    lost: bool = False
    error: str | None = None
    processes: list[dict[str, Any]] = field(default_factory=list)

    @property
    def succeeded(self) -> bool:
        """Exit code 0 and no timeout."""
        return self.exit_code == 0 and not self.timed_out and not self.lost


class Backend(LoggingConfigurable):
    """Base class of backends.

    A backend places :class:`~aicloud.launchers.LaunchPlan` objects (an :class:`Attempt`
    each), runs them and reports on them; launchers build the plans with the backend's
    :meth:`network`, so that peers find each other wherever they run. It keeps
    no state of its own that matters: everything needed to find an attempt again after a
    restart of the service goes into the JSON-able ``handle`` that :meth:`start` returns, which
    the job service stores with the attempt.

    Override (all coroutines): :meth:`start`, :meth:`poll`, :meth:`cancel`, :meth:`recover`.
    :meth:`prepare` names an attempt before it starts; :meth:`describe` reports what the
    backend offers, for the resources API.

    Launching is crash-safe in two steps: the job service stores the launch record that
    :meth:`prepare` returns with the attempt *before* it calls :meth:`start`. A server that
    finds an attempt with a launch record and no handle (its starter died) asks
    :meth:`recover`, which either finds the attempt (its handle) or proves that it never ran
    and never will (None); only then is it started again.
    """

    name = "base"
    #: Whether every process gets the plan's whole environment (a job token can travel so).
    passes_environment = False

    cancel_grace_seconds = Float(
        5.0,
        config=True,
        help="Seconds a cancelled or timed-out job gets between SIGTERM and SIGKILL.",
    )

    def validate(self, spec, owner: str | None = None) -> None:
        """Raise :class:`aicloud.errors.InvalidSpec` for what this backend can never run
        (for ``owner``, where it matters: a cluster that has no uid for them, say)."""

    def wait_reason(self, spec) -> str | None:
        """Why ``spec`` cannot start yet (busy accelerators, say), or None if it can."""
        return None

    @property
    def python(self) -> str:
        """The interpreter of jobs' Python processes (this server's)."""
        return sys.executable

    def network(self, job_id: str, attempt: int) -> Network:
        """Where an attempt's nodes find each other (default: all on this machine)."""
        return LocalNetwork()

    def cores(self, spec: JobSpec) -> float | None:
        """CPU cores of one of ``spec``'s nodes (default: this machine's)."""
        return machine_cores()

    def prepare(self, job_id: str, attempt: int) -> dict[str, Any]:
        """The launch record of an attempt, stored before :meth:`start`: what finds it again."""
        return {}

    async def start(self, attempt: Attempt) -> dict[str, Any]:
        """Place and start ``attempt``'s plan; return the handle that finds it again (it
        includes ``attempt.launch``)."""
        raise NotImplementedError

    async def recover(
        self, launch: dict[str, Any], run_dir: Path, attempt: int
    ) -> dict[str, Any] | None:
        """The handle of an attempt whose start was cut short, or None if it never ran.

        None must be a proof: once it is returned, the attempt cannot start any more.
        """
        raise NotImplementedError

    async def poll(self, handle: dict[str, Any]) -> AttemptExit | None:
        """None while the attempt runs, else how it ended."""
        raise NotImplementedError

    def watch(self, handle: dict[str, Any], wake: Callable[[], None]) -> None:
        """Call ``wake()`` once when the attempt may have ended, if the backend can tell.

        Optional: without it the manager still finds the end on its next poll.
        """

    def unwatch_all(self) -> None:
        """Stop the watches that :meth:`watch` set up (the manager is stopping)."""

    async def explain(self, handle: dict[str, Any]) -> str | None:
        """Why a started attempt is not running yet (no GPU node, quota...), or None."""
        return None

    async def close(self) -> None:
        """Release connections and background tasks (the manager is stopping)."""

    async def cancel(self, handle: dict[str, Any]) -> None:
        """Stop the attempt and everything it started; return when nothing is left."""
        raise NotImplementedError

    def describe(self) -> dict[str, Any]:
        """The backend's name and status for the resources API."""
        return {"name": self.name, "available": True}
