"""The local backend: each attempt is a supervised session in a kill-able unit on this machine.

Launching has no window in which a crash of the server could lose track of an attempt or
run it twice. The manager stores the attempt's launch record (:meth:`LocalBackend.prepare`:
a nonce and the unit's name) before :meth:`LocalBackend.start` runs anything; the supervisor,
once in its unit and given its plan, links ``attempt-N.<nonce>.claim`` into the run directory
before it starts a process. A restarted server that finds an attempt without a handle calls
:meth:`LocalBackend.recover`, which links the same name itself: if it wins, no supervisor can
claim the attempt any more and it provably never ran; if the supervisor won, the attempt is
adopted from its claim.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import secrets
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psutil
from traitlets import Bool, Float, Int

from aicloud.accounts import account_of, hand_over
from aicloud.backends import supervise
from aicloud.backends.base import Attempt, AttemptExit, Backend
from aicloud.backends.gpus import GPU, GPULeases, split
from aicloud.backends.units import UNIT_ENV, CgroupUnit, TaggedUnit, cgroup_base, wait_empty
from aicloud.errors import InvalidSpec, UnsafeRunFile
from aicloud.resources import detect_gpus
from aicloud.runs import open_run_file
from aicloud.spec import JobSpec
from aicloud.usage import nvml_module_dir, usage_file

SUPERVISOR = Path(supervise.__file__)


def _status_path(run_dir: Path, attempt: int) -> Path:
    return run_dir / f"attempt-{attempt}.status.json"


def _claim_path(run_dir: Path, attempt: int, nonce: str) -> Path:
    return run_dir / f"attempt-{attempt}.{nonce}.claim"


NEVER_STARTED = {"never_started": True}


def _read_claim(path: Path) -> dict | None:
    """The claim's record, or None if there is no claim (a link the job planted is none)."""
    try:
        with open_run_file(path.parent, path.name) as f:
            data = json.loads(f.read(1 << 20))
    except (FileNotFoundError, UnsafeRunFile, ValueError):
        return None
    return data if isinstance(data, dict) else {}


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
    if handle.get("pid") is None or handle.get("create_time") is None:
        return None  # recovered without a live supervisor
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
    use_cgroups = Bool(
        True,
        config=True,
        help="Put each attempt in a cgroup v2 of its own (below the server's cgroup), so that "
        "all of it is killed at once and no process of it outlives it. Where no cgroup v2 is "
        "writable, or with False, an attempt's processes are those that carry its tag "
        "(AICLOUD_UNIT) in their environment.",
    )
    unit_exit_timeout = Float(
        10.0,
        config=True,
        help="Seconds to wait for an attempt's unit to be empty after it was killed; an "
        "attempt that leaves processes is reported (and keeps its GPUs) until they are gone.",
    )
    run_as_owner = Bool(
        False,
        config=True,
        help="Run each attempt as its owner's Unix user (the server must run as root): the "
        "supervisor and every process of the job get the owner's uid, gid and groups, and the "
        "run directory becomes theirs alone (0700). Owners without a Unix account, or with a "
        "system one (uid < 1000), are refused. The local hub sets it when started as root.",
    )

    usage_interval_seconds = Float(
        2.0,
        min=0.05,
        config=True,
        help="Seconds between samples of an attempt's resource use (CPU, RSS, its GPUs), "
        "taken by its supervisor into attempt-N.usage.jsonl and served at /jobs/{id}/usage.",
    )
    usage_points_kept = Int(
        10_000,
        min=10,
        config=True,
        help="Most usage samples kept per attempt; past that, older ones are thinned.",
    )

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self._children: dict[int, subprocess.Popen] = {}
        self._watches: dict[int, int] = {}  # supervisor pid -> its pidfd in the event loop
        self.gpus = GPULeases(devices=[gpu["index"] for gpu in detect_gpus()])
        self._cgroups: Path | None | bool = False  # not looked up yet

    # -- units ---------------------------------------------------------------------------------

    def _cgroup_base(self) -> Path | None:
        if self._cgroups is False:
            self._cgroups = cgroup_base() if self.use_cgroups else None
            if self._cgroups is None:
                self.log.info("aicloud: no writable cgroup v2; attempts are tagged units")
        return self._cgroups

    @staticmethod
    def unit(record: dict[str, Any]):
        """The unit a launch record or a handle names."""
        unit = record["unit"]
        return CgroupUnit(unit["name"]) if unit["kind"] == "cgroup" else TaggedUnit(unit["name"])

    def prepare(self, job_id: str, attempt: int) -> dict[str, Any]:
        """The launch record: the claim's nonce and the unit's name, stored before the start."""
        nonce = secrets.token_hex(8)
        name = f"{job_id}.a{attempt}.{nonce}"
        base = self._cgroup_base()
        if base is not None:
            unit = {"kind": CgroupUnit.kind, "name": str(base / name)}
        else:
            unit = {"kind": TaggedUnit.kind, "name": name}
        return {"nonce": nonce, "unit": unit}

    async def _empty_unit(self, record: dict[str, Any]) -> bool:
        """Kill what is left of an attempt's unit; True once nothing is."""
        if "unit" not in record:
            return True  # started before units existed
        unit = self.unit(record)
        if await asyncio.to_thread(wait_empty, unit, self.unit_exit_timeout):
            return True
        self.log.warning("aicloud: processes of %s survive SIGKILL: %s", unit.name, unit.pids())
        return False

    def validate(self, spec: JobSpec, owner: str | None = None) -> None:
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

    def _assign_gpus(self, plan_json: dict[str, Any], spec: JobSpec) -> list[int]:
        """Give each worker process its share of the job's GPUs in CUDA_VISIBLE_DEVICES."""
        wanted = spec.resources.accelerator_count * spec.resources.nodes
        gpus = (self.gpus.take(wanted) or []) if wanted else []
        processes = plan_json["processes"]
        shares = iter(split(gpus, len([p for p in processes if not p["service"]])))
        for process in processes:
            visible = [] if process["service"] else next(shares)
            process["env"]["CUDA_VISIBLE_DEVICES"] = ",".join(map(str, visible))
        return gpus

    async def start(self, attempt: Attempt) -> dict[str, Any]:
        """Stage the plan's files, start the supervisor in the attempt's unit, then hand it
        the plan on stdin; every process gets this server's environment under its own.

        Returns the handle: supervisor pid and start time, paths, GPUs and the launch record.
        """
        run_dir, plan, number = attempt.run_dir, attempt.plan, attempt.number
        launch = attempt.launch or self.prepare(attempt.job_id, number)
        account = account_of(attempt.owner or "") if self.run_as_owner else None
        log = run_dir / "output.log"
        status = _status_path(run_dir, number)
        status.unlink(missing_ok=True)
        plan.stage(run_dir)
        unit = self.unit(launch)
        tag = {UNIT_ENV: unit.name} if unit.kind == TaggedUnit.kind else {}
        plan_json = plan.to_json()
        plan_json["banner"] = f"[aicloud] attempt {number}" if number > 1 else ""
        for process in plan_json["processes"]:
            process["env"] = {**os.environ, **process["env"], **tag}
        gpus = self._assign_gpus(plan_json, attempt.spec) if self.gpus.devices else []
        plan_json["gpus"] = gpus
        plan_json["usage"] = {
            "file": str(run_dir / usage_file(number)),
            "interval": self.usage_interval_seconds,
            "attempt": number,
            "keep": self.usage_points_kept,
            "nvml_path": nvml_module_dir() if gpus else None,
        }
        argv = [
            sys.executable,
            "-I",
            "-S",
            str(SUPERVISOR),
            "--claim",
            str(_claim_path(run_dir, number, launch["nonce"])),
            "--log",
            str(log),
            "--status",
            str(status),
            "--timeout",
            str(attempt.timeout_seconds or 0),
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
        unit.create()
        with os.fdopen(log_fd, "ab") as supervisor_log:
            child = subprocess.Popen(
                argv,
                cwd=plan.cwd,
                env={**os.environ, **tag},
                stdin=subprocess.PIPE,
                stdout=supervisor_log,
                stderr=supervisor_log,
                start_new_session=True,
                **as_owner,
            )
        self._children[child.pid] = child
        self.gpus.hold(child.pid, gpus)
        try:
            unit.add(child.pid)  # before the plan: nothing of the attempt runs outside it
            create_time = psutil.Process(child.pid).create_time()
            with child.stdin:  # the plan never touches the disk: it holds the job's secrets
                child.stdin.write(json.dumps(plan_json).encode())
        except BaseException:
            child.kill()
            self.gpus.release(child.pid)
            raise
        return {
            "gpus": gpus,
            "pid": child.pid,
            "create_time": create_time,
            "status_file": str(status),
            "log": str(log),
            **launch,
        }

    async def recover(
        self, launch: dict[str, Any], run_dir: Path, attempt: int
    ) -> dict[str, Any] | None:
        """Find an attempt whose start was cut short; None if it provably never ran.

        Links the attempt's claim with :func:`supervise.claim`, as the supervisor does.
        Winning the link means no supervisor claimed it, and none can any more: the attempt
        never ran. Otherwise the supervisor's claim gives its pid, checked to be in the
        attempt's unit.
        """
        if "nonce" not in launch:
            return None  # stored before launch records existed: it had no supervisor yet
        path = _claim_path(run_dir, attempt, launch["nonce"])
        claimed = _read_claim(path)
        if claimed is None and await asyncio.to_thread(supervise.claim, str(path), NEVER_STARTED):
            await self._empty_unit(launch)  # a supervisor still waiting for its plan
            return None
        claimed = _read_claim(path) or {}
        if claimed.get("never_started"):
            return None
        handle = {
            "gpus": claimed.get("gpus", []),
            "pid": claimed.get("pid"),
            "create_time": None,
            "status_file": str(_status_path(run_dir, attempt)),
            "log": str(run_dir / "output.log"),
            **launch,
        }
        pid = handle["pid"]
        if isinstance(pid, int) and pid in self.unit(launch).pids():
            with contextlib.suppress(psutil.NoSuchProcess):
                handle["create_time"] = psutil.Process(pid).create_time()
        return handle

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
        """Read the status file; a supervisor gone without one means the attempt was lost.

        Either way the attempt's unit is killed and empty before its end is reported, and
        its GPUs are held until then: a retry never starts beside a survivor.
        """
        self._reap(handle["pid"])
        status = _read_status(Path(handle["status_file"]))
        if status is None and find_process(handle) is not None:
            self.gpus.hold(handle["pid"], handle.get("gpus", []))
            return None
        # The supervisor may have written its status between the two looks.
        status = status or _read_status(Path(handle["status_file"]))
        if not await self._empty_unit(handle):
            self.gpus.hold(handle["pid"], handle.get("gpus", []))
            return None
        self.gpus.release(handle["pid"])
        if status is not None:
            return status
        return AttemptExit(lost=True, error="the attempt's supervisor ended without a status")

    async def cancel(self, handle: dict[str, Any]) -> None:
        """SIGTERM to the supervisor, which passes it on and SIGKILLs what is left after the
        grace period; then the unit is killed, and this returns when nothing of it is left."""
        process = find_process(handle)
        if process is not None:
            with contextlib.suppress(psutil.NoSuchProcess):
                process.terminate()
            gone, alive = await asyncio.to_thread(
                psutil.wait_procs, [process], timeout=self.cancel_grace_seconds + 5
            )
            for survivor in alive:  # a supervisor stopped (SIGSTOP), say
                with contextlib.suppress(psutil.NoSuchProcess):
                    survivor.kill()
        self._reap(handle["pid"])
        if await self._empty_unit(handle):
            self.gpus.release(handle["pid"])
