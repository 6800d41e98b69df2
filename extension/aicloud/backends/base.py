"""The backend interface: where attempts run (this machine, a Kubernetes cluster)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from traitlets import Float
from traitlets.config import LoggingConfigurable

from aicloud.launchers import LaunchPlan


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

    A backend runs :class:`~aicloud.launchers.LaunchPlan` objects and reports on them. It keeps
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

    def prepare(self, job_id: str, attempt: int) -> dict[str, Any]:
        """The launch record of an attempt, stored before :meth:`start`: what finds it again."""
        return {}

    async def start(
        self,
        plan: LaunchPlan,
        run_dir: Path,
        attempt: int,
        timeout_seconds: int | None,
        spec=None,
        owner: str | None = None,
        launch: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        """Start one attempt of ``spec`` as ``plan``; return the handle that finds it again.

        ``launch`` is the record :meth:`prepare` gave (made here when None); the handle
        includes it.
        """
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
