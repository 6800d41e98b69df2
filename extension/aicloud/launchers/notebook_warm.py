"""A warm notebook runner: one fresh kernel, started before its run is asked for, one run.

Forked by the pool (:mod:`aicloud.launchers.notebook_pool`) from a process that has already
imported papermill, nbclient and nbconvert and compiled the HTML templates. It

1. sends its own output and its kernel's to a pipe whose contents are held in memory until a
   run comes (so the kernel's start-up warnings open the job's log, as with a plain runner);
2. starts one kernel (``python3``) and waits until it answers;
3. accepts one connection on the pool's socket (from a process of this user only), tells the
   pool, which forks a replacement at once, and greets the client;
4. takes the request (see :mod:`aicloud.launchers.notebook_client`), points its output at the
   client's stdout, takes on the job's environment, umask and working directory, moves the
   kernel into the same (a silent ``os.chdir`` and ``os.environ`` update, before any cell),
   and runs :func:`aicloud.launchers.notebook_runner.run` with that kernel;
5. shuts the kernel down as nbclient does, kills whatever the run left, reports the exit code
   and exits.

A run for another kernel, or whose environment changes what a kernel reads when it starts
(``PYTHONPATH``, ``LD_*``, ``JUPYTER_*``...), gets a kernel of its own, started as the plain
runner starts it; the warm one is shut down unused. A ``stop`` from the client, or the client's
connection closing, kills the kernel and what it started and ends the runner at once, as the
SIGTERM of a cancel ends a plain runner. The runner is a child subreaper, so processes that the
kernel orphans come back to it and are killed at the end too.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import signal
import socket
import struct
import sys
import threading
import time
import traceback
from queue import Empty

from aicloud.launchers import notebook_runner

KERNEL = "python3"
RUNNER_MODULE = "aicloud.launchers.notebook_runner"
HISTORY = "--HistoryManager.hist_file=:memory:"  # what nbclient gives the IPython kernels it starts
START_SECONDS = 60.0
REQUEST_SECONDS = 30.0
HOLD_BYTES = 1 << 20
PR_SET_CHILD_SUBREAPER = 36
# Variables that a kernel reads as it starts: a run that changes one gets a kernel of its own.
STARTUP_PREFIXES = ("PYTHON", "LD_", "IPYTHON", "JUPYTER", "JPY_", "MPL", "LC_")
STARTUP_NAMES = frozenset({"HOME", "LANG", "TMPDIR", "TZ"})
# PYTHONUNBUFFERED: the kernel's streams are its own. JPY_SESSION_NAME: ipykernel copies it to
# ``__session__`` at start, which SETUP does too; the magics read it when they run.
NOT_STARTUP = frozenset({"PYTHONUNBUFFERED", "JPY_SESSION_NAME"})
SETUP = """\
import os
from IPython import get_ipython
os.chdir({cwd!r})
for name in {unset!r}:
    os.environ.pop(name, None)
os.environ.update({update!r})
if "JPY_SESSION_NAME" in os.environ:
    get_ipython().user_ns["__session__"] = os.environ["JPY_SESSION_NAME"]
"""


def read_at_start(name: str) -> bool:
    """Whether a kernel reads variable ``name`` when it starts (so a warm one cannot serve)."""
    if name in NOT_STARTUP:
        return False
    return name in STARTUP_NAMES or name.startswith(STARTUP_PREFIXES)


def notebook_kernel(path: str) -> str | None:
    """The kernel named in a notebook's metadata, or None."""
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)["metadata"]["kernelspec"]["name"]
    except (OSError, ValueError, KeyError, TypeError):
        return None


def write_all(fd: int, data: bytes) -> None:
    """Write all of ``data`` to ``fd``; a closed or failing target loses it silently."""
    view = memoryview(data)
    with contextlib.suppress(OSError):
        while view:
            view = view[os.write(fd, view) :]


def _signal_all(groups, processes, signum: int) -> None:
    """Send ``signum`` to each process group, then to each process; those gone are skipped."""
    import psutil

    for group in groups:
        with contextlib.suppress(OSError):
            os.killpg(group, signum)
    for process in processes:
        with contextlib.suppress(psutil.Error):
            process.send_signal(signum)  # on POSIX: terminate() or kill(), pid reuse checked


def kill_descendants(grace: float) -> None:
    """SIGTERM every descendant (and its process group), SIGKILL after ``grace``, reap."""
    import psutil

    try:
        victims = psutil.Process().children(recursive=True)
    except psutil.Error:
        return
    own = os.getpgrp()
    groups = set()
    for victim in victims:
        with contextlib.suppress(OSError):
            groups.add(os.getpgid(victim.pid))
    groups.discard(own)
    _signal_all(groups, victims, signal.SIGTERM)
    _, alive = psutil.wait_procs(victims, timeout=grace)
    _signal_all(groups, alive, signal.SIGKILL)
    psutil.wait_procs(alive, timeout=5)
    with contextlib.suppress(ChildProcessError):
        while os.waitpid(-1, os.WNOHANG)[0]:
            pass


class Output:
    """This process's stdout and stderr, and its kernel's: held back until a run comes."""

    def __init__(self):
        read, write = os.pipe()
        self.target = os.dup(1)  # the pool's log, until a run attaches its own stdout
        os.dup2(write, 1)
        os.dup2(write, 2)
        os.close(write)
        self.lock = threading.Lock()
        self.held: bytearray | None = bytearray()
        self.closed = False
        self.thread = threading.Thread(target=self._copy, args=(read,), daemon=True)
        self.thread.start()

    def _copy(self, read: int) -> None:
        while chunk := os.read(read, 1 << 16):
            with self.lock:
                if self.held is None:
                    write_all(self.target, chunk)
                elif len(self.held) < HOLD_BYTES:
                    self.held += chunk
        os.close(read)

    def attach(self, fd: int) -> None:
        """From now on write to ``fd`` (the client's stdout), what was held back first."""
        with self.lock:
            os.dup2(fd, self.target, inheritable=False)
            write_all(self.target, bytes(self.held or b""))
            self.held = None

    def close(self, timeout: float = 2.0) -> None:
        """Flush, stop writing to the pipe, and wait until its last bytes are copied."""
        if self.closed:
            return
        self.closed = True
        for stream in (sys.stdout, sys.stderr):
            with contextlib.suppress(Exception):
                stream.flush()
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, 1)
        os.dup2(devnull, 2)
        os.close(devnull)
        self.thread.join(timeout)
        with self.lock:
            if self.held:  # never attached: keep the warm-up's output in the pool's log
                write_all(self.target, bytes(self.held))
                self.held = None


async def _execute_silently(kc, code: str) -> dict:
    """Run ``code`` without a trace in the kernel's history or outputs; the reply content."""
    msg_id = kc.execute(code, silent=True, store_history=False, allow_stdin=False)
    while True:
        reply = await kc.get_shell_msg(timeout=START_SECONDS)
        if reply["parent_header"].get("msg_id") == msg_id:
            return reply["content"]


def ready_client_class():
    """The kernel client class that nbclient gets for a warm kernel.

    ``wait_for_ready`` of jupyter_client ends by waiting for 0.2 s of silence on IOPub; a warm
    kernel is known to be up, so it is enough to see the IOPub message that ends this client's
    own ``kernel_info`` request: then IOPub is connected and nothing of it is left unread.
    """
    from jupyter_client.asynchronous import AsyncKernelClient

    class ReadyClient(AsyncKernelClient):
        async def wait_for_ready(self, timeout: float | None = None) -> None:
            deadline = time.monotonic() + (timeout or START_SECONDS)
            while time.monotonic() < deadline:
                msg_id = self.kernel_info()
                try:
                    reply = await self.shell_channel.get_msg(timeout=1)
                    while True:
                        msg = await self.iopub_channel.get_msg(timeout=0.2)
                        state = msg["content"].get("execution_state")
                        if msg["parent_header"].get("msg_id") == msg_id and state == "idle":
                            self._handle_kernel_info_reply(reply)
                            return
                except Empty:  # IOPub not connected yet (or the kernel is slow): ask again
                    continue
            raise RuntimeError("the warm kernel did not answer")

    return ReadyClient


class WarmKernel:
    """One fresh kernel, started and answering before its run is known."""

    def __init__(self, name: str = KERNEL):
        from jupyter_client.manager import AsyncKernelManager
        from jupyter_core.utils import run_sync

        self.run_sync = run_sync
        self.requested = False
        self.name = name
        self.env = dict(os.environ)  # what the kernel started with
        self.km = AsyncKernelManager(kernel_name=name)
        run_sync(self.km.start_kernel)(extra_arguments=[HISTORY])
        self.kc = self.km.client()
        self.kc.start_channels()
        run_sync(self.kc.wait_for_ready)(timeout=START_SECONDS)
        self.km.client_factory = ready_client_class()

    @property
    def pid(self) -> int | None:
        """The kernel's process id."""
        return getattr(self.km.provisioner, "pid", None)

    def fits(self, kernel: str | None, env: dict[str, str]) -> bool:
        """Whether this kernel can run a notebook for ``kernel`` in environment ``env``."""
        if kernel != self.name or not self.run_sync(self.km.is_alive)():
            return False
        changed = {k for k in self.env.keys() | env.keys() if self.env.get(k) != env.get(k)}
        return not any(read_at_start(name) for name in changed)

    def prepare(self, cwd: str, env: dict[str, str]) -> None:
        """Move the kernel into the run's working directory and environment."""
        setup = SETUP.format(
            cwd=cwd,
            unset=sorted(k for k in self.env if k not in env),
            update={k: v for k, v in env.items() if self.env.get(k) != v},
        )
        reply = self.run_sync(_execute_silently)(self.kc, f"exec({setup!r}, {{}})")
        self.kc.stop_channels()
        if reply["status"] != "ok":
            raise RuntimeError(f"cannot prepare the kernel: {reply.get('evalue')}")

    def request_shutdown(self) -> None:
        """Ask the kernel to shut down, as nbclient does at the end of a run (not waiting)."""
        self.run_sync(self.km.request_shutdown)()
        self.requested = True

    def shutdown(self, now: bool = False) -> None:
        """Shut the kernel down (gracefully unless ``now``) and remove its connection file."""
        with contextlib.suppress(Exception):
            self.kc.stop_channels()
        try:
            if self.requested and not now:  # as shutdown_kernel does, polling every 10 ms
                self.run_sync(self.km.finish_shutdown)(pollinterval=0.01)
                self.run_sync(self.km.cleanup_resources)()
            else:
                self.run_sync(self.km.shutdown_kernel)(now=now)
        except Exception:
            self.forget()

    def forget(self) -> None:
        """Remove the connection file of a kernel that was killed."""
        with contextlib.suppress(OSError, TypeError):
            os.unlink(self.km.connection_file)


def _send(conn: socket.socket, message: dict) -> None:
    conn.sendall(json.dumps(message).encode() + b"\n")


def _receive(conn: socket.socket) -> tuple[dict | None, list[int]]:
    """The request line and the descriptors sent with it; None on end of file."""
    data, fds = b"", []
    while b"\n" not in data:
        chunk, new_fds, _, _ = socket.recv_fds(conn, 1 << 16, 4)
        fds += new_fds
        if not chunk:
            for fd in fds:
                os.close(fd)
            return None, []
        data += chunk
    return json.loads(data.split(b"\n", 1)[0]), fds


def _peer(conn: socket.socket) -> tuple[int | None, int]:
    """The pid and user id of the connected process (Linux); ours where the system cannot
    tell."""
    try:
        creds = conn.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    except (AttributeError, OSError):
        return None, os.getuid()
    pid, uid, _ = struct.unpack("3i", creds)
    return pid, uid


def join_unit_of(client_pid: int | None, pids: list[int]) -> None:
    """Move this runner and its kernel into the client's cgroup: the attempt's unit, which
    the local backend kills whole (:mod:`aicloud.backends.units`). Where the cgroup cannot be
    written (no cgroup v2, no permission), the client's closing connection still ends the
    run, as before."""
    from aicloud.backends.units import cgroup2_mount

    mount = cgroup2_mount()
    if client_pid is None or mount is None:
        return
    try:
        with open(f"/proc/{client_pid}/cgroup") as f:
            own = next(line[3:].strip() for line in f if line.startswith("0::"))
        with open(mount / own.lstrip("/") / "cgroup.procs", "w") as procs:
            for pid in pids:
                procs.write(str(pid))
                procs.flush()
    except (OSError, StopIteration):
        pass


def _exit_on_sigterm(signum, frame):
    raise SystemExit(128 + signum)


def _become_subreaper() -> None:
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)


class Runner:
    """The life of one forked runner: warm up, take one run, end."""

    def __init__(self, listener: socket.socket, lifeline: int, events: int):
        self.listener = listener
        self.lifeline = lifeline
        self.events = events
        self.output = Output()
        self.kernel: WarmKernel | None = None
        self.conn: socket.socket | None = None
        self.finished = threading.Event()
        self.send_lock = threading.Lock()

    def _on_sigusr1(self, signum, frame):
        if self.conn is None:  # the pool is stopping: exit, unless a run was taken already
            raise SystemExit(0)

    def life(self) -> None:
        """Warm up, serve one run, clean up."""
        signal.signal(signal.SIGTERM, _exit_on_sigterm)
        signal.signal(signal.SIGUSR1, self._on_sigusr1)
        _become_subreaper()
        try:
            try:
                self.kernel = WarmKernel()
            except Exception:
                traceback.print_exc()  # held: the run starts a kernel of its own instead
            self.conn = self.accept()
            if self.conn is not None:
                self.serve(self.conn)
        finally:
            self.finished.set()
            if self.kernel is not None:
                self.kernel.forget()
            kill_descendants(grace=0.5)
            self.output.close()

    def accept(self) -> socket.socket | None:
        """One connection, or None once the pool has gone (the lifeline pipe closed)."""
        import select

        while True:
            ready, _, _ = select.select([self.listener, self.lifeline], [], [])
            if self.lifeline in ready:
                return None
            try:
                self.conn, _ = self.listener.accept()
            except BlockingIOError:
                continue  # another runner took it
            self.listener.close()
            os.write(self.events, f"{os.getpid()}\n".encode())
            self.conn.setblocking(True)
            return self.conn

    def send(self, message: dict) -> None:
        """Send a message to the client, which may be gone."""
        with self.send_lock, contextlib.suppress(OSError):
            _send(self.conn, message)

    def serve(self, conn: socket.socket) -> None:
        """Greet, take the request, run it, report the exit code."""
        client_pid, client_uid = _peer(conn)
        if client_uid != os.getuid():
            return
        self.send({"event": "ready"})
        conn.settimeout(REQUEST_SECONDS)
        try:
            request, fds = _receive(conn)
        except (OSError, ValueError):
            return
        if request is None or not fds:
            return
        conn.settimeout(None)
        self.output.attach(fds[0])
        for fd in fds:
            os.close(fd)
        kernel_pid = self.kernel.pid if self.kernel else None
        join_unit_of(client_pid, [os.getpid(), *([kernel_pid] if kernel_pid else [])])
        self.send({"event": "started", "pid": os.getpid(), "kernel_pid": kernel_pid})
        threading.Thread(target=self.watch, daemon=True).start()
        code = self.run(request)
        if self.kernel is not None:
            self.kernel.shutdown()
        kill_descendants(grace=1.0)
        self.output.close()
        self.finished.set()
        self.send({"event": "exit", "code": code})

    def run(self, request: dict) -> int:
        """Run the request as the plain runner would; its exit code."""
        try:
            os.environ.clear()
            os.environ.update(request["env"])
            os.umask(int(request.get("umask", 0o022)))
            os.chdir(request["cwd"])
            argv = request["argv"]
            args = notebook_runner.parse_args(argv[argv.index(RUNNER_MODULE) + 1 :])
            km = self.adopt(args)
            code = notebook_runner.execute(args, km)
            if km is not None:
                self.kernel.request_shutdown()  # the kernel exits while the HTML is exported
            notebook_runner.export_outputs(args)
            return code
        except SystemExit as e:  # bad options: argparse said why on stderr
            return e.code if isinstance(e.code, int) else 2
        except Exception:
            traceback.print_exc()
            return 1

    def adopt(self, args):
        """The warm kernel's manager, prepared for this run; None: start a kernel of its own."""
        kernel = self.kernel
        if kernel is None:
            return None
        try:
            if kernel.fits(args.kernel or notebook_kernel(args.input), dict(os.environ)):
                kernel.prepare(args.cwd, dict(os.environ))
                return kernel.km
        except Exception:
            traceback.print_exc()
        kernel.shutdown(now=True)
        self.kernel = None
        return None

    def watch(self) -> None:
        """Stop the run when the client asks, or goes away before the run ended."""
        buffer = b""
        while not self.finished.is_set():
            try:
                chunk = self.conn.recv(4096)
            except OSError:
                chunk = b""
            if not chunk:
                break
            buffer += chunk
            *lines, buffer = buffer.split(b"\n")
            if any(b'"stop"' in line for line in lines):
                break
        if not self.finished.is_set():
            self.stop()

    def stop(self) -> None:
        """Kill the kernel and what it started, tell the client, end (as SIGTERM would)."""
        kill_descendants(grace=1.0)
        if self.kernel is not None:
            self.kernel.forget()
        self.output.close(timeout=0.5)
        self.send({"event": "stopped"})
        os._exit(128 + signal.SIGTERM)


def serve(listener: socket.socket, lifeline: int, events: int) -> None:
    """Run a forked runner's life and exit; never returns."""
    code = 0
    try:
        Runner(listener, lifeline, events).life()
    except SystemExit as e:
        code = e.code if isinstance(e.code, int) else 1
    except BaseException:
        traceback.print_exc()
        code = 1
    finally:
        os._exit(code)
