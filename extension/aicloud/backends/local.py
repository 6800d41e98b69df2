"""The local backend: each attempt is a detached process group on this machine."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import os
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psutil
from traitlets import Bool, Int

from aicloud.accounts import account_of, hand_over
from aicloud.backends import supervise
from aicloud.backends.base import AttemptExit, Backend
from aicloud.backends.gpus import GPU, GPULeases, split
from aicloud.errors import InvalidSpec, UnsafeRunFile
from aicloud.launchers import LaunchPlan
from aicloud.resources import detect_gpus
from aicloud.runs import open_run_file
from aicloud.spec import JobSpec

SUPERVISOR = Path(supervise.__file__)


def _status_path(run_dir: Path, attempt: int) -> Path:
    return run_dir / f"attempt-{attempt}.status.json"


def _read_status(path: Path) -> AttemptExit | None:
    """The status the supervisor wrote, or None; one the job replaced (a symlink) is ignored."""
    try:
        with open_run_file(path.parent, path.name) as f:
            data = json.loads(f.read(1 << 20))
    except (FileNotFoundError, UnsafeRunFile, ValueError):
        return None
    if not isinstance(data, dict):
        return None
    return AttemptExit(
        exit_code=data.get("exit_code"),
        signal=data.get("signal"),
        timed_out=bool(data.get("timed_out")),
        terminated=bool(data.get("terminated")),
        error=data.get("error"),
        processes=data.get("processes", []),
    )


def find_process(handle: dict[str, Any]) -> psutil.Process | None:
    """The attempt's supervisor if it is still alive: same pid *and* same start time."""
    try:
        process = psutil.Process(handle["pid"])
        if abs(process.create_time() - handle["create_time"]) > 0.01:
            return None  # the pid was reused by an unrelated process
        if process.status() == psutil.STATUS_ZOMBIE:
            return None
        return process
    except (psutil.NoSuchProcess, KeyError):
        return None


class LocalBackend(Backend):
    """Runs attempts under a small supervisor, in their own session.

    The supervisor survives a restart (or a crash) of the server, writes an attempt's exit
    status to the run directory, enforces the timeout and leaves no process behind.
    """

    passes_environment = True

    name = "local"

    max_processes = Int(
        64, config=True, help="Most worker processes one job may start on this machine."
    )
    run_as_owner = Bool(
        False,
        config=True,
        help="Run each attempt as its owner's Unix user (the server must run as root): the "
        "supervisor and every process of the job get the owner's uid, gid and groups, and the "
        "run directory becomes theirs alone (0700). Owners without a Unix account, or with a "
        "system one (uid < 1000), are refused. The local hub sets it when started as root.",
    )

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self._children: dict[int, subprocess.Popen] = {}
        self._watches: dict[int, int] = {}  # supervisor pid -> its pidfd in the event loop
        self.gpus = GPULeases(devices=[gpu["index"] for gpu in detect_gpus()])

    def validate(self, spec: JobSpec) -> None:
        """Refuse more processes or accelerators than this machine has."""
        resources = spec.resources
        if resources.world_size > self.max_processes:
            raise InvalidSpec(
                "resources",
                f"{resources.world_size} processes (nodes x procs_per_node) exceed the local "
                f"backend's limit of {self.max_processes}",
            )
        if resources.accelerator and resources.accelerator != GPU:
            raise InvalidSpec(
                "resources.accelerator",
                f"the local backend has no {resources.accelerator}; use the kubernetes backend",
            )
        wanted = resources.accelerator_count * resources.nodes
        if wanted > len(self.gpus.devices):
            raise InvalidSpec(
                "resources.accelerator_count",
                f"the job asks for {wanted} {GPU} and this machine has {len(self.gpus.devices)}",
            )

    def wait_reason(self, spec: JobSpec) -> str | None:
        """Wait while other attempts hold the GPUs this job needs."""
        wanted = spec.resources.accelerator_count * spec.resources.nodes
        if wanted and self.gpus.take(wanted) is None:
            return f"waiting for {wanted} {GPU} ({len(self.gpus.free)} free)"
        return None

    def _assign_gpus(self, plan: LaunchPlan, spec: JobSpec) -> tuple[LaunchPlan, list[int]]:
        """Give each worker process its share of the job's GPUs in CUDA_VISIBLE_DEVICES."""
        wanted = spec.resources.accelerator_count * spec.resources.nodes
        gpus = (self.gpus.take(wanted) or []) if wanted else []
        workers = [p for p in plan.processes if not p.service]
        shares = iter(split(gpus, len(workers)))
        processes = []
        for process in plan.processes:
            visible = [] if process.service else next(shares)
            env = {**process.env, "CUDA_VISIBLE_DEVICES": ",".join(map(str, visible))}
            processes.append(dataclasses.replace(process, env=env))
        return dataclasses.replace(plan, processes=processes), gpus

    async def start(
        self,
        plan: LaunchPlan,
        run_dir: Path,
        attempt: int,
        timeout_seconds: int | None,
        spec: JobSpec | None = None,
        owner: str | None = None,
    ) -> dict[str, Any]:
        """Start the supervisor with the plan's argv; return pid, start time and paths."""
        account = account_of(owner or "") if self.run_as_owner else None
        log = run_dir / "output.log"
        status = _status_path(run_dir, attempt)
        status.unlink(missing_ok=True)
        gpus: list[int] = []
        if spec is not None and self.gpus.devices:
            plan, gpus = self._assign_gpus(plan, spec)
        plan_file = run_dir / f"attempt-{attempt}.plan.json"
        plan_json = plan.to_json()
        plan_json["banner"] = f"[aicloud] attempt {attempt}" if attempt > 1 else ""
        # The plan holds the job's environment: readable by its owner only.
        # A new file, never through a link a job planted in its run dir.
        plan_file.unlink(missing_ok=True)
        fd = os.open(plan_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
        with os.fdopen(fd, "w") as f:
            json.dump(plan_json, f)
        argv = [
            sys.executable,
            "-I",
            "-S",
            str(SUPERVISOR),
            "--plan",
            str(plan_file),
            "--log",
            str(log),
            "--status",
            str(status),
            "--timeout",
            str(timeout_seconds or 0),
            "--grace",
            str(self.cancel_grace_seconds),
        ]
        as_owner = {}
        if account is not None:
            os.chmod(run_dir.parent, 0o711)  # owners pass through to their own run dir only
            hand_over(run_dir, account)
            as_owner = account.popen_kwargs
        if (run_dir / "supervisor.log").is_symlink():  # a job's: never written through
            (run_dir / "supervisor.log").unlink()
        log_fd = os.open(
            run_dir / "supervisor.log",
            os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW,
            0o600,
        )
        with os.fdopen(log_fd, "ab") as supervisor_log:
            child = subprocess.Popen(
                argv,
                cwd=plan.cwd,
                stdin=subprocess.DEVNULL,
                stdout=supervisor_log,
                stderr=supervisor_log,
                start_new_session=True,
                **as_owner,
            )
        self._children[child.pid] = child
        self.gpus.hold(child.pid, gpus)
        create_time = psutil.Process(child.pid).create_time()
        return {
            "gpus": gpus,
            "pid": child.pid,
            "create_time": create_time,
            "status_file": str(status),
            "log": str(log),
        }

    def watch(self, handle: dict[str, Any], wake: Callable[[], None]) -> None:
        """Wake the manager when the supervisor exits: its pidfd becomes readable then.

        Works for supervisors this server did not start too (re-attached after a restart).
        """
        pid = handle["pid"]
        if pid in self._watches or not hasattr(os, "pidfd_open"):
            return
        try:
            fd = os.pidfd_open(pid)
        except OSError:  # already gone: the next poll records it
            wake()
            return
        if find_process(handle) is None:  # gone, or the pid now belongs to someone else
            os.close(fd)
            wake()
            return
        loop = asyncio.get_running_loop()

        def ended() -> None:
            self._unwatch(pid)
            wake()

        loop.add_reader(fd, ended)
        self._watches[pid] = fd

    def _unwatch(self, pid: int) -> None:
        fd = self._watches.pop(pid, None)
        if fd is not None:
            with contextlib.suppress(RuntimeError):  # the loop is closed already
                asyncio.get_running_loop().remove_reader(fd)
            os.close(fd)

    def unwatch_all(self) -> None:
        """Remove every pidfd from the event loop."""
        for pid in list(self._watches):
            self._unwatch(pid)

    def _reap(self, pid: int) -> None:
        child = self._children.get(pid)
        if child is not None and child.poll() is not None:
            del self._children[pid]

    async def poll(self, handle: dict[str, Any]) -> AttemptExit | None:
        """Read the status file; a supervisor gone without one means the attempt was lost."""
        self._reap(handle["pid"])
        status = _read_status(Path(handle["status_file"]))
        if status is not None:
            self.gpus.release(handle["pid"])
            return status
        if find_process(handle) is not None:
            self.gpus.hold(handle["pid"], handle.get("gpus", []))
            return None
        self.gpus.release(handle["pid"])
        # The supervisor may have written its status between the two looks.
        status = _read_status(Path(handle["status_file"]))
        if status is not None:
            return status
        return AttemptExit(lost=True, error="the attempt's supervisor ended without a status")

    async def cancel(self, handle: dict[str, Any]) -> None:
        """SIGTERM to the group, SIGKILL after the grace period to all that is left."""
        process = find_process(handle)
        if process is None:
            self._reap(handle["pid"])
            return
        try:
            victims = [process, *process.children(recursive=True)]
        except psutil.NoSuchProcess:
            victims = [process]
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        gone_or_alive = await asyncio.to_thread(
            psutil.wait_procs, victims, timeout=self.cancel_grace_seconds + 1
        )
        for survivor in gone_or_alive[1]:
            with contextlib.suppress(psutil.NoSuchProcess):
                survivor.kill()
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(process.pid, signal.SIGKILL)
        await asyncio.to_thread(psutil.wait_procs, gone_or_alive[1], timeout=5)
        self._reap(handle["pid"])
        self.gpus.release(handle["pid"])
