"""The supervisor of one local attempt: runs its processes and records how they ended.

Started by :class:`aicloud.backends.local.LocalBackend` as the leader of a new session, with
``python -I -S`` (standard library only, so it starts fast), inside the attempt's kill-able
unit (:mod:`aicloud.backends.units`), and given its plan on stdin: the processes of the
attempt (one for a command; one ``torchrun`` agent per node plus a rendezvous store for a
multi-node torch job; one process per TensorFlow worker). No plan touches the disk. It

- claims the attempt: links its claim file (``attempt-N.<nonce>.claim``) into place, which
  fails if a restarted server got there first and declared the attempt never started; then
  the supervisor exits without running anything. So an attempt runs at most once, and a
  server always knows whether it did (see :meth:`LocalBackend.recover`);
- becomes a child subreaper, so processes that the job orphans come back to it, and has its
  children killed if it dies (``PR_SET_PDEATHSIG``);
- starts the plan's processes, their output appended to the attempt's log file (through a
  line-prefixing pipe where the plan asks for one, e.g. ``[rank3]:`` for TF workers);
- fails fast: once too many workers failed for the attempt to succeed, stops the others;
- enforces the timeout: SIGTERM to the group, then SIGKILL after the grace period;
- on SIGTERM (a cancel) passes it on to every process, and SIGKILLs what is left after the
  grace period: the cancel holds even if the server that asked for it is gone;
- samples the resource use of the attempt's whole process tree every few seconds (CPU %,
  RSS from /proc; GPU utilisation and memory through NVML or ``nvidia-smi``)
  into ``attempt-N.usage.jsonl``, bounded (:class:`UsageSampler`);
- stops the service processes (a rendezvous store) when the workers are done, kills whatever
  the job left behind, writes the status file atomically and exits.

The status file outlives the server, so a restarted server learns how the attempt ended even
though it was not the supervisor's parent.
"""

import contextlib
import ctypes
import errno
import os
import select
import signal
import subprocess
import sys
import threading
import time

PR_SET_CHILD_SUBREAPER = 36
PR_SET_PDEATHSIG = 1
COPY_CHUNK = 65536  # a pipe's capacity
COPY_PAUSE = 0.01  # seconds for a prefixed child's output to gather between reads
STATUS_RESERVE = 65536  # bytes set aside at start for the status file (a few hundred processes)
STATUS_RETRY = 1.0  # seconds between tries to write the status to a full or read-only volume
UNWRITABLE = (errno.ENOSPC, errno.EDQUOT, errno.EROFS)  # the volume refuses, the data is fine
USAGE = (
    "usage: supervise.py --claim FILE --log FILE --status FILE [--timeout S] [--grace S]"
    " < plan.json"
)
NOT_HANDED_OVER = 3  # exit code: the plan never came in full (the server stopped first)


def _libc():
    try:
        return ctypes.CDLL(None, use_errno=True)
    except OSError:
        return None


LIBC = _libc()


def _become_subreaper() -> None:
    if LIBC is not None:  # else not Linux: orphans go to init, the group kill remains
        LIBC.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)


def _die_with_supervisor() -> None:
    """In a child before ``exec``: SIGKILL it if the supervisor dies (killed, say)."""
    if LIBC is not None:
        LIBC.prctl(PR_SET_PDEATHSIG, int(signal.SIGKILL), 0, 0, 0)


def claim(path: str, record: dict) -> bool:
    """Link the claim file into place; False if a server declared the attempt never started.

    Written whole to a file of its own first, so that a reader never sees half a claim.
    """
    import json

    tmp = f"{path}.{os.getpid()}.tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644)
    try:
        os.write(fd, json.dumps(record).encode())
        os.fsync(fd)
    finally:
        os.close(fd)
    try:
        os.link(tmp, path)
        return True
    except FileExistsError:
        return False
    finally:
        os.unlink(tmp)


def _descendants(root: int) -> list[int]:
    """Pids of every live descendant of ``root``, from /proc."""
    children: dict[int, list[int]] = {}
    try:
        entries = os.listdir("/proc")
    except OSError:
        return []
    for entry in entries:
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as stat:
                fields = stat.read().rsplit(b")", 1)[1].split()
        except OSError:
            continue
        children.setdefault(int(fields[1]), []).append(int(entry))
    found, stack = [], [root]
    while stack:
        for child in children.get(stack.pop(), []):
            found.append(child)
            stack.append(child)
    return found


def _signal_all(sig: int, pids=None) -> None:
    """Send ``sig`` to ``pids`` (default: every descendant, wherever its session is)."""
    for pid in _descendants(os.getpid()) if pids is None else pids:
        with contextlib.suppress(OSError):
            os.kill(pid, sig)


def _reap_all() -> None:
    """Wait for every child; as a subreaper that includes the job's killed orphans."""
    while True:
        try:
            os.waitpid(-1, 0)
        except ChildProcessError:
            return


def _open_status_tmp(path: str) -> int:
    # No O_TRUNC: that would give back the reserved blocks; no symlink the job put there.
    flags = os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC | os.O_NOFOLLOW
    return os.open(f"{path}.tmp", flags, 0o644)


def reserve_status(path: str) -> None:
    """Set aside the status file's space now, so that its write at the end finds room.

    The job may fill the volume; the status, written in place over these blocks, then still
    says how the attempt ended. Where the volume cannot reserve (full already, no fallocate),
    :func:`_write_status` waits for room instead.
    """
    try:
        fd = _open_status_tmp(path)
    except OSError:
        return
    try:
        os.posix_fallocate(fd, 0, STATUS_RESERVE)
    except OSError:
        pass
    finally:
        os.close(fd)


def _write_status_once(path: str, data: bytes) -> None:
    fd = _open_status_tmp(path)
    try:
        view, offset = memoryview(data), 0
        while offset < len(data):
            offset += os.pwrite(fd, view[offset:], offset)
        os.ftruncate(fd, len(data))
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(f"{path}.tmp", path)


def _write_status(path: str, status: dict) -> None:
    """Write the status atomically; on a full or read-only volume, retry until it goes in.

    A supervisor that exited without its status would turn the attempt into a lost one
    (``infrastructure``) whatever the job did; one that waits keeps it running instead.
    """
    import json  # imported late: the job is already running, start-up time matters more

    data = json.dumps(status).encode()
    said = False
    while True:
        try:
            _write_status_once(path, data)
            return
        except OSError as e:
            if e.errno not in UNWRITABLE:
                raise
            if not said:
                with contextlib.suppress(OSError):
                    sys.stderr.write(f"aicloud-supervise: status not written yet: {e}\n")
                    sys.stderr.flush()
                said = True
        time.sleep(STATUS_RETRY)


class ChildExits:
    """Sleeps until a child ends (SIGCHLD through a wakeup fd) instead of polling on a timer.

    The workers run for hours; a 50 Hz ``waitpid`` poll would take CPU and wake-ups from them.
    Signals that have a handler are reset to their default in the children at ``exec``.
    """

    def __init__(self) -> None:
        self.read_fd, write_fd = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        signal.signal(signal.SIGCHLD, lambda signum, frame: None)
        signal.set_wakeup_fd(write_fd, warn_on_full_buffer=False)

    def sleep(self, timeout: float) -> None:
        """Return when a signal arrived (a child ended, a SIGTERM) or after ``timeout``."""
        select.select([self.read_fd], [], [], max(0.0, timeout))
        with contextlib.suppress(BlockingIOError):
            while os.read(self.read_fd, 512):
                pass


def _tree_usage(root: int) -> dict[int, tuple[int, int]]:
    """CPU clock ticks (user + system) and resident pages of every descendant of ``root``."""
    found = {}
    for pid in _descendants(root):
        try:
            with open(f"/proc/{pid}/stat", "rb") as stat:
                fields = stat.read().rsplit(b")", 1)[1].split()
            with open(f"/proc/{pid}/statm", "rb") as statm:
                resident = int(statm.read().split()[1])
        except (OSError, IndexError, ValueError):
            continue  # ended meanwhile
        found[pid] = (int(fields[11]) + int(fields[12]), resident)
    return found


class GPUProbe:
    """Utilisation and memory of the attempt's GPUs: NVML (``pynvml``) if it loads, else
    ``nvidia-smi`` where it is on the PATH, else none.

    The supervisor runs without site-packages (``-S``); the plan names the folder that holds
    ``pynvml`` where the server has it. ``nvidia-smi`` is asked the query that
    :mod:`aicloud.resources` makes (its columns: index, name, uuid, memory total and used in
    MiB, utilisation %).
    """

    SMI_QUERY = "index,name,uuid,memory.total,memory.used,utilization.gpu"

    def __init__(self, indexes: list[int], module_dir: str | None):
        import shutil

        self.nvml = None
        self.indexes = list(indexes)
        self.devices: list[tuple[int, object]] = []
        self.smi = shutil.which("nvidia-smi") if indexes else None
        if not indexes or not module_dir:
            return
        try:
            sys.path.append(module_dir)
            import pynvml

            pynvml.nvmlInit()
            self.devices = [(i, pynvml.nvmlDeviceGetHandleByIndex(i)) for i in indexes]
            self.nvml = pynvml
        except Exception as e:  # ImportError, NVMLError: nvidia-smi, or no GPU sampling
            sys.stderr.write(f"aicloud-supervise: no NVML ({e}); nvidia-smi: {self.smi}\n")
            self.devices = []

    def sample(self) -> list[dict]:
        """One entry per GPU: utilisation % (None where the driver cannot say) and memory."""
        return self._from_nvml() if self.nvml is not None else self._from_smi()

    def _from_nvml(self) -> list[dict]:
        gpus = []
        for index, device in self.devices:
            try:
                memory = self.nvml.nvmlDeviceGetMemoryInfo(device)
                try:
                    utilization = float(self.nvml.nvmlDeviceGetUtilizationRates(device).gpu)
                except self.nvml.NVMLError:
                    utilization = None
            except Exception:
                continue
            gpus.append(_gpu_use(index, utilization, int(memory.used), int(memory.total)))
        return gpus

    def _from_smi(self) -> list[dict]:
        if self.smi is None:
            return []
        try:
            out = subprocess.run(
                [self.smi, f"--query-gpu={self.SMI_QUERY}", "--format=csv,noheader,nounits"],
                capture_output=True,
                text=True,
                timeout=10,
                check=True,
            ).stdout
        except (subprocess.SubprocessError, OSError):
            return []
        gpus = []
        for line in out.splitlines():
            fields = [f.strip() for f in line.split(",")]
            try:
                index, total, used = int(fields[0]), float(fields[3]), float(fields[4])
            except (IndexError, ValueError):
                continue
            if index in self.indexes:
                try:
                    utilization = float(fields[5])
                except (IndexError, ValueError):
                    utilization = None  # "[N/A]"
                gpus.append(_gpu_use(index, utilization, int(used) << 20, int(total) << 20))
        return gpus

    def close(self) -> None:
        """Shut NVML down."""
        if self.nvml is not None:
            with contextlib.suppress(Exception):
                self.nvml.nvmlShutdown()


def _gpu_use(index: int, utilization: float | None, used: int, total: int) -> dict:
    return {
        "index": index,
        "utilization_percent": utilization,
        "memory_used_bytes": used,
        "memory_total_bytes": total,
    }


class UsageSampler(threading.Thread):
    """Every ``interval`` seconds, a point of the attempt's resource use appended to its file.

    A point: ``{"t", "attempt", "cpu_percent" (100 = one core), "rss_bytes", "gpus"}``, one
    JSON line written whole with one ``write`` (a reader skips a line without its newline).
    The file keeps at most ``keep`` points: past that, every other point of the older half
    is dropped (the file is rewritten and replaced atomically), so a long run keeps its whole
    span at a coarser grain. A full volume costs samples, never the attempt.
    """

    def __init__(self, options: dict, gpus: list[int]):
        super().__init__(name="aicloud-usage", daemon=True)
        self.path = options["file"]
        self.interval = max(0.05, float(options.get("interval", 2.0)))
        self.attempt = int(options.get("attempt", 1))
        self.keep = max(10, int(options.get("keep", 10_000)))
        self.gpus = GPUProbe(gpus, options.get("nvml_path"))
        self.lines: list[bytes] = []
        self.stopped = threading.Event()
        self.ticks = os.sysconf("SC_CLK_TCK")
        self.page = os.sysconf("SC_PAGE_SIZE")

    def run(self) -> None:
        """Sample until stopped."""
        import json

        before, then = _tree_usage(os.getpid()), time.monotonic()
        while not self.stopped.wait(self.interval):
            now, wall = _tree_usage(os.getpid()), time.monotonic()
            used = sum(ticks - before.get(pid, (0, 0))[0] for pid, (ticks, _) in now.items())
            point = {
                "t": round(time.time(), 3),
                "attempt": self.attempt,
                "cpu_percent": round(100.0 * max(0, used) / self.ticks / (wall - then), 1),
                "rss_bytes": sum(pages for _, pages in now.values()) * self.page,
                "gpus": self.gpus.sample(),
            }
            before, then = now, wall
            self.record(json.dumps(point).encode() + b"\n")
        self.gpus.close()

    def record(self, line: bytes) -> None:
        """Append one point; thin the file once it holds ``keep``."""
        self.lines.append(line)
        try:
            if len(self.lines) > self.keep:
                half = len(self.lines) // 2
                self.lines = self.lines[:half:2] + self.lines[half:]
                self._rewrite()
            else:
                self._append(line)
        except OSError as e:
            if e.errno not in UNWRITABLE and e.errno != errno.ELOOP:
                raise

    def _append(self, line: bytes) -> None:
        flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC
        fd = os.open(self.path, flags, 0o644)
        try:
            os.write(fd, line)
        finally:
            os.close(fd)

    def _rewrite(self) -> None:
        tmp = f"{self.path}.tmp"
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)  # a job's symlink there is removed, not followed
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
        fd = os.open(tmp, flags, 0o644)
        try:
            _write_all_fd(fd, b"".join(self.lines))
        finally:
            os.close(fd)
        os.replace(tmp, self.path)

    def stop(self) -> None:
        """Stop sampling and wait for the thread."""
        self.stopped.set()
        self.join(timeout=5)


def _write_all_fd(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def parse_args(argv: list[str]) -> dict[str, str]:
    """``--name value`` options (argparse costs ~10 ms of start-up here)."""
    options = {"--claim": "", "--log": "", "--status": "", "--timeout": "0", "--grace": "5"}
    rest = list(argv)
    while rest:
        name = rest.pop(0)
        if name not in options or not rest:
            raise SystemExit(f"aicloud-supervise: bad option {name!r}\n{USAGE}")
        options[name] = rest.pop(0)
    if not (options["--claim"] and options["--log"] and options["--status"]):
        raise SystemExit(USAGE)
    return options


def read_plan() -> dict | None:
    """The plan from stdin, or None if the server stopped before handing all of it over."""
    import json

    try:
        plan = json.loads(sys.stdin.buffer.read())
    except (OSError, ValueError):
        return None
    return plan if isinstance(plan, dict) and "processes" in plan else None


def _write_all(log, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[log.write(view) :]


class LossyLog:
    """Writes whole lines to the log; lines that a full volume refuses are counted, not fatal.

    A copier that died on ENOSPC would leave the child blocked on a full pipe. The first write
    that goes in again starts with ``[aicloud] N lines lost: no space left on device``.
    """

    def __init__(self, log):
        self.log = log
        self.lost = 0
        self.cut = False  # a refused write ended part-way through a line

    def note(self) -> bytes:
        """The line that says how many lines were lost (empty when none)."""
        if not self.lost:
            return b""
        start = b"\n" if self.cut else b""
        return start + f"[aicloud] {self.lost} lines lost: no space left on device\n".encode()

    def write(self, data: bytes) -> None:
        """Write ``data`` (whole lines), after the note on earlier losses."""
        note = self.note()
        whole = note + data
        view = memoryview(whole)
        try:
            while view:
                view = view[self.log.write(view) :]
        except OSError as e:
            if e.errno not in UNWRITABLE:
                raise
            written = len(whole) - len(view)
            if written >= len(note):  # the note went in: only the rest of data is lost now
                self.lost = bytes(view).count(b"\n")
            else:  # the note itself is owed still, not a lost line
                self.lost += data.count(b"\n")
            if written:
                self.cut = whole[written - 1 : written] != b"\n"
            return
        self.lost, self.cut = 0, False


def _copy_with_prefix(stream, log, prefix: bytes) -> None:
    """Copy lines from a child's pipe into the log, each behind ``prefix``.

    Reads whatever the pipe holds and writes all of its complete lines at once, then, unless
    the pipe was full, lets output gather for ``COPY_PAUSE`` seconds: an unbuffered
    ``print`` is several small writes, and waking for each cost ~5 % of a core at 10,000
    lines/s. Whole lines per ``write`` on the ``O_APPEND`` log keep other processes' lines
    from cutting into them. A last line without a newline gets one. Lines that a full volume
    refuses are counted (:class:`LossyLog`) and the copy goes on.
    """
    fd = stream.fileno()
    out = LossyLog(log)
    separator = b"\n" + prefix
    pending = b""
    while chunk := os.read(fd, COPY_CHUNK):
        end = chunk.rfind(b"\n")  # only the new bytes: a long line is not searched again
        if end >= 0:
            lines, pending = pending + chunk[:end], chunk[end + 1 :]
            out.write(prefix + lines.replace(b"\n", separator) + b"\n")
        else:
            pending += chunk
            if len(pending) >= COPY_CHUNK:  # progress bars redrawn with \r: a line per 64 KiB
                out.write(prefix + pending + b"\n")
                pending = b""
        if len(chunk) < COPY_CHUNK:
            time.sleep(COPY_PAUSE)
    out.write((prefix + pending + b"\n") if pending else b"")  # b"": the note, if owed
    stream.close()


class Attempt:
    """The processes of one attempt and their outcomes."""

    def __init__(self, plan: dict, log, exits: ChildExits):
        self.plan = plan
        self.log = log
        self.exits = exits
        self.workers: dict[int, dict] = {}  # pid -> process entry
        self.services: dict[int, subprocess.Popen] = {}
        self.popens: dict[int, subprocess.Popen] = {}
        self.threads: list[threading.Thread] = []
        self.outcomes: list[dict] = []
        self.error = None

    def start(self) -> None:
        """Start service processes first, then the workers."""
        ordered = sorted(self.plan["processes"], key=lambda p: not p.get("service"))
        for entry in ordered:
            try:
                popen = self._spawn(entry)
            except OSError as e:
                command = entry["argv"][0]
                message = f"cannot start {command!r}: {e.strerror}"
                self.log.write(f"[aicloud] {message}\n".encode())
                self.error = message
                self.outcomes.append({"name": entry["name"], "exit_code": 127, "signal": None})
                return
            self.popens[popen.pid] = popen
            if entry.get("service"):
                self.services[popen.pid] = popen
            else:
                self.workers[popen.pid] = entry

    def _spawn(self, entry: dict) -> subprocess.Popen:
        prefix = entry.get("prefix", "").encode()
        output = subprocess.PIPE if prefix else self.log
        popen = subprocess.Popen(
            entry["argv"],
            cwd=self.plan["cwd"],
            env=entry["env"],
            stdin=subprocess.DEVNULL,
            stdout=output,
            stderr=subprocess.STDOUT if prefix else self.log,
            start_new_session=bool(entry.get("own_session")),
            preexec_fn=_die_with_supervisor,
        )
        if prefix:
            thread = threading.Thread(
                target=_copy_with_prefix, args=(popen.stdout, self.log, prefix), daemon=True
            )
            thread.start()
            self.threads.append(thread)
        return popen

    @property
    def required(self) -> int:
        """How many workers must succeed for the attempt to succeed."""
        return self.plan.get("min_success") or len(self.plan["processes"]) - len(self.services)

    def hopeless(self) -> bool:
        """Whether too many workers failed for the attempt to succeed."""
        failed = sum(1 for o in self.outcomes if o["exit_code"] != 0)
        started = len(self.outcomes) + len(self.workers)
        return self.error is not None or started - failed < self.required

    def wait(self, deadline) -> bool:
        """Wait for the workers; False when the deadline passed first.

        ``deadline`` is a time, None (no end) or a callable giving one: a cancel's signal
        handler may bring it forward while this waits.
        """
        while self.workers:
            end = deadline() if callable(deadline) else deadline
            if end is not None and time.time() >= end:
                return False
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                break
            if pid == 0:
                # A child ending (or a signal) between the waitpid and here still wakes it.
                left = 1.0 if end is None else min(1.0, end - time.time())
                self.exits.sleep(left)
                continue
            entry = self.workers.pop(pid, None)
            if pid in self.popens:
                self.popens.pop(pid).returncode = os.waitstatus_to_exitcode(status)
            if entry is None:
                continue  # a service, or an orphan the job left behind
            code = os.waitstatus_to_exitcode(status)
            self.outcomes.append(
                {
                    "name": entry["name"],
                    "exit_code": code if code >= 0 else None,
                    "signal": -code if code < 0 else None,
                }
            )
            if self.workers and self.hopeless():
                self.log.write(
                    f"[aicloud] {entry['name']} failed; stopping the other processes\n".encode()
                )
                self.stop_workers(grace=float(self.plan.get("grace", 5)))
        return True

    def stop_workers(self, grace: float) -> None:
        """SIGTERM the remaining workers (and their trees), SIGKILL after ``grace``."""
        pids = [pid for pid in self.workers]
        for pid in pids:
            _signal_all(signal.SIGTERM, [pid, *_descendants(pid)])
        end = time.time() + grace
        while self.workers and time.time() < end:
            self.wait(end)
        for pid in list(self.workers):
            _signal_all(signal.SIGKILL, [pid, *_descendants(pid)])
        self.wait(None)

    def summary(self) -> dict:
        """Exit code and signal of the attempt as a whole, and of each process."""
        failures = [o for o in self.outcomes if o["exit_code"] != 0]
        succeeded = len(self.outcomes) - len(failures)
        status = {"exit_code": 0, "signal": None, "error": self.error, "processes": self.outcomes}
        if self.error is not None:
            status["exit_code"] = 127
        elif succeeded < self.required or (failures and not self.plan.get("min_success")):
            first = failures[0] if failures else {"exit_code": 1, "signal": None}
            status.update(exit_code=first["exit_code"], signal=first["signal"])
        return status


def main(argv: list[str] | None = None) -> int:
    """Claim the attempt, run it and record its end."""
    options = parse_args(sys.argv[1:] if argv is None else argv)
    plan = read_plan()
    if plan is None:
        sys.stderr.write("aicloud-supervise: no plan (the server stopped before handing it)\n")
        return NOT_HANDED_OVER
    record = {
        "pid": os.getpid(),
        "gpus": plan.get("gpus", []),
        "argv": [p["argv"] for p in plan["processes"]],
    }
    if not claim(options["--claim"], record):
        sys.stderr.write("aicloud-supervise: the attempt was declared never started\n")
        return 0
    reserve_status(options["--status"])
    timeout, grace = float(options["--timeout"]), float(options["--grace"])
    plan["grace"] = grace

    _become_subreaper()
    exits = ChildExits()
    state = {"terminated": False, "timed_out": False, "kill_at": None}

    def on_sigterm(signum, frame):
        # A cancel: every process gets the signal, wherever its session; the rest is SIGKILLed
        # after the grace period, by this supervisor, whether or not the server still runs.
        if state["kill_at"] is not None:
            return  # a second cancel, or the group signal below coming back to this process
        state["kill_at"] = time.time() + grace
        state["terminated"] = True
        with contextlib.suppress(OSError):
            os.killpg(os.getpgrp(), signal.SIGTERM)
        _signal_all(signal.SIGTERM)

    signal.signal(signal.SIGTERM, on_sigterm)
    signal.signal(signal.SIGINT, on_sigterm)
    started = time.time()
    deadline = started + timeout if timeout > 0 else None

    def next_end():
        ends = [t for t in (deadline, state["kill_at"]) if t is not None]
        return min(ends) if ends else None

    with open(options["--log"], "ab", buffering=0) as log:
        if plan.get("banner"):
            log.write(plan["banner"].encode() + b"\n")
        attempt = Attempt(plan, log, exits)
        attempt.start()
        sampler = UsageSampler(plan["usage"], plan.get("gpus", [])) if plan.get("usage") else None
        if sampler is not None:
            sampler.start()
        while not attempt.wait(next_end):
            if state["kill_at"] is not None and time.time() >= state["kill_at"]:
                log.write(f"[aicloud] still running {grace:g} s after SIGTERM\n".encode())
                _signal_all(signal.SIGKILL)
                attempt.wait(None)
                break
            if deadline is not None and time.time() >= deadline and not state["timed_out"]:
                state["timed_out"] = True
                log.write(f"[aicloud] timed out after {timeout:g} s\n".encode())
                signal.signal(signal.SIGTERM, signal.SIG_IGN)
                os.killpg(os.getpgrp(), signal.SIGTERM)
                _signal_all(signal.SIGTERM)
                if not attempt.wait(time.time() + grace):
                    _signal_all(signal.SIGKILL)
                    attempt.wait(None)
                break
        if sampler is not None:
            sampler.stop()
        # The workers are done: stop the services (a rendezvous store), then any leftovers.
        _signal_all(signal.SIGTERM)
        end = time.time() + min(grace, 2.0)
        while _descendants(os.getpid()) and time.time() < end:
            time.sleep(0.02)
        _signal_all(signal.SIGKILL)
        _reap_all()
        for thread in attempt.threads:
            thread.join(timeout=2)
        status = attempt.summary()
    status.update(
        started_at=started,
        finished_at=time.time(),
        timed_out=state["timed_out"],
        terminated=state["terminated"],
    )
    _write_status(options["--status"], status)
    return 0


if __name__ == "__main__":
    sys.exit(main())
