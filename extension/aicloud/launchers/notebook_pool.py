"""The warm pool of notebook runners: ``python -m aicloud.launchers.notebook_pool``.

A new papermill process per run spends seconds importing and starting a kernel before the
notebook's first cell. The pool does that work ahead of time, without ever sharing a kernel:

- the pool process imports papermill, nbclient and nbconvert and compiles the HTML templates
  once, then forks ``--size`` warm runners (:mod:`aicloud.launchers.notebook_warm`), each of
  which starts one fresh kernel and waits on the pool's unix socket;
- a notebook job's process is then a thin client (:mod:`aicloud.launchers.notebook_client`)
  that hands its run to a warm runner; the runner serves that one run and exits, and the pool
  forks a replacement as soon as the runner takes the connection;
- without a reachable pool the client runs the plain runner, so jobs never depend on it.

Lifetime (simple on purpose): the server starts the pool detached, in a session of its own, a
couple of seconds after it starts (``AICloudApp.notebook_pool_delay``), and stops it (SIGTERM)
when it stops. Stopping ends the idle runners and their kernels; runners in the middle of a run
finish it. A pool whose server died exits by itself after ``--linger`` seconds (10). A server
that starts and finds a pool still alive (its lock is held: a server that crashed a moment ago,
or another server on the same data directory) stops it and starts its own. The pool also exits
when its socket file is removed or replaced.

Security: the socket is 0600 in a 0700 directory owned by the server's user (under the data
directory, or under the temporary directory when that path is too long for a unix socket), and
runners refuse peers of another user (``SO_PEERCRED``).
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import hashlib
import os
import select
import signal
import socket
import stat
import subprocess
import sys
import tempfile
import time
from pathlib import Path

MODULE = "aicloud.launchers.notebook_pool"
SOCKET_NAME = "pool.sock"
MAX_SOCKET_PATH = 100  # sun_path holds 108 bytes on Linux, 104 on macOS
LOG_LIMIT = 1 << 20
LOCK_WAIT_SECONDS = 15.0


# -- paths (used by the server) -----------------------------------------------------------------


def socket_path(data_dir: str | os.PathLike) -> Path:
    """Where the pool of the server with this data directory listens."""
    path = Path(data_dir) / "notebook-pool" / SOCKET_NAME
    if len(os.fsencode(path)) <= MAX_SOCKET_PATH:
        return path
    digest = hashlib.sha256(os.fsencode(Path(data_dir).resolve())).hexdigest()[:16]
    return Path(tempfile.gettempdir()) / f"aicloud-{os.getuid()}-{digest}" / SOCKET_NAME


def private_dir(directory: Path) -> Path:
    """``directory``, created 0700; refused unless it is a real directory of this user."""
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    info = os.lstat(directory)
    if not stat.S_ISDIR(info.st_mode) or info.st_uid != os.getuid():
        raise PermissionError(f"{directory} is not a directory owned by this user")
    if info.st_mode & 0o077:
        os.chmod(directory, 0o700)
    return directory


def _lock_holder(directory: Path) -> int | None:
    """The pid of the pool that holds this directory's lock, or None if none does."""
    try:
        fd = os.open(directory / "pool.lock", os.O_RDONLY)
    except FileNotFoundError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        with contextlib.suppress(ValueError):
            return int(os.pread(fd, 32, 0) or b"0") or None
        return None
    else:
        fcntl.flock(fd, fcntl.LOCK_UN)
        return None
    finally:
        os.close(fd)


def stop_stale(directory: Path) -> int | None:
    """SIGTERM a pool left by an earlier server (the new pool waits for its lock); its pid."""
    pid = _lock_holder(directory)
    if pid is None or pid == os.getpid():
        return None
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        cmdline = MODULE.encode()  # not Linux: trust the lock
    if MODULE.encode() not in cmdline:
        return None
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.kill(pid, signal.SIGTERM)
    return pid


def start(path: Path, size: int, env: dict[str, str], linger: float = 10.0) -> subprocess.Popen:
    """Start a pool listening on ``path``, detached, its output in ``pool.log`` next to it."""
    directory = private_dir(path.parent)
    stop_stale(directory)
    log_path = directory / "pool.log"
    with contextlib.suppress(FileNotFoundError):
        if log_path.stat().st_size > LOG_LIMIT:
            log_path.unlink()
    log = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    argv = [sys.executable, "-m", MODULE, "--socket", str(path), "--size", str(size)]
    argv += ["--linger", str(linger)]
    try:
        return subprocess.Popen(
            argv,
            cwd=directory,
            env={**env, "PYTHONUNBUFFERED": "1"},
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=log,
            start_new_session=True,
        )
    finally:
        os.close(log)


def stop(process: subprocess.Popen, timeout: float = 10.0) -> None:
    """SIGTERM the pool and wait for it (SIGKILL after ``timeout``; its runners follow)."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


# -- the pool process ---------------------------------------------------------------------------


def _acquire_lock(directory: Path) -> int:
    """Hold ``pool.lock`` for the life of this process (waiting for a pool being stopped)."""
    fd = os.open(directory / "pool.lock", os.O_RDWR | os.O_CREAT, 0o600)
    deadline = time.monotonic() + LOCK_WAIT_SECONDS
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            break
        except BlockingIOError:
            if time.monotonic() > deadline:
                raise SystemExit("aicloud-notebook-pool: another pool holds the lock") from None
            time.sleep(0.05)
    os.ftruncate(fd, 0)
    os.pwrite(fd, str(os.getpid()).encode(), 0)
    return fd


def _listen(path: Path) -> socket.socket:
    """A non-blocking listening socket at ``path``, mode 0600."""
    with contextlib.suppress(FileNotFoundError):
        path.unlink()
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    old = os.umask(0o177)
    try:
        listener.bind(str(path))
    finally:
        os.umask(old)
    os.chmod(path, 0o600)
    listener.listen(512)
    listener.setblocking(False)
    return listener


class Pool:
    """Keeps ``size`` warm runners waiting; replaces each as soon as it takes a run."""

    def __init__(
        self, path: Path, listener: socket.socket, lock: int, size: int, linger: float, owner: int
    ):
        self.path = path
        self.listener = listener
        self.lock = lock  # the lock file's descriptor, which runners must not keep
        self.inode = os.stat(path).st_ino
        self.size = size
        self.linger = linger
        self.owner = owner  # the server's pid
        self.idle: set[int] = set()
        self.lifeline_read, self.lifeline_write = os.pipe()  # EOF tells runners the pool is gone
        self.events_read, self.events_write = os.pipe()  # runners write their pid on accept
        self.wake_read, self.wake_write = os.pipe()
        os.set_blocking(self.wake_write, False)
        self.stopping = False
        self.orphaned_at: float | None = None
        self.failures = 0
        self.next_spawn = 0.0

    def _on_signal(self, signum, frame):
        self.stopping = True

    def spawn(self) -> None:
        """Fork one warm runner."""
        from aicloud.launchers import notebook_warm

        pid = os.fork()
        if pid == 0:
            signal.set_wakeup_fd(-1)
            for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
                signal.signal(signum, signal.SIG_DFL)
            for fd in (self.lock, self.lifeline_write, self.events_read):
                with contextlib.suppress(OSError):
                    os.close(fd)
            for fd in (self.wake_read, self.wake_write):
                os.close(fd)
            notebook_warm.serve(self.listener, self.lifeline_read, self.events_write)
        self.idle.add(pid)

    def refill(self) -> None:
        """Fork runners until ``size`` are idle (slower after runners keep dying idle)."""
        while len(self.idle) < self.size and time.monotonic() >= self.next_spawn:
            try:
                self.spawn()
            except OSError as e:  # out of processes or memory: try again later
                print(f"aicloud-notebook-pool: cannot fork a runner: {e}", flush=True)
                self.next_spawn = time.monotonic() + 5.0

    def reap(self) -> None:
        """Collect ended runners; an idle one that ended is a failure (backing off)."""
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            if pid in self.idle:
                self.idle.discard(pid)
                self.failures += 1
                code = os.waitstatus_to_exitcode(status)
                print(f"aicloud-notebook-pool: idle runner {pid} ended ({code})", flush=True)
                if self.failures >= 3:
                    self.next_spawn = time.monotonic() + min(60.0, 2.0**self.failures)

    def read_events(self) -> None:
        """Runners that took a run are no longer idle."""
        data = os.read(self.events_read, 1 << 16)
        for line in data.split():
            self.idle.discard(int(line))
            self.failures = 0
            self.next_spawn = 0.0

    def check(self) -> None:
        """Stop when the socket is gone or replaced, or the server has been gone too long."""
        try:
            if os.stat(self.path).st_ino != self.inode:
                self.stopping = True
        except FileNotFoundError:
            self.stopping = True
        if os.getppid() == self.owner:
            self.orphaned_at = None
        elif self.orphaned_at is None:
            self.orphaned_at = time.monotonic()
        elif time.monotonic() - self.orphaned_at > self.linger:
            print("aicloud-notebook-pool: the server is gone; exiting", flush=True)
            self.stopping = True

    def run(self) -> None:
        """Serve until stopped, then end the idle runners (busy ones finish their run)."""
        for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            signal.signal(signum, self._on_signal)
        signal.set_wakeup_fd(self.wake_write)
        try:
            while not self.stopping:
                self.refill()
                ready, _, _ = select.select([self.events_read, self.wake_read], [], [], 1.0)
                if self.wake_read in ready:
                    os.read(self.wake_read, 1024)
                if self.events_read in ready:
                    self.read_events()
                self.reap()
                self.check()
        finally:
            self.shutdown()

    def shutdown(self) -> None:
        """Stop listening and end the idle runners; those that took a run finish it."""
        self.listener.close()
        with contextlib.suppress(OSError):
            if os.stat(self.path).st_ino == self.inode:
                self.path.unlink()
        os.close(self.lifeline_write)  # runners waiting for a connection see EOF and exit
        os.set_blocking(self.events_read, False)
        for pid in self.idle:  # SIGUSR1: exit unless a run was taken already
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGUSR1)
        deadline = time.monotonic() + 5.0
        while self.idle and time.monotonic() < deadline:
            time.sleep(0.02)
            with contextlib.suppress(BlockingIOError):
                self.read_events()
            self.reap_idle()
        for pid in self.idle:  # stuck while warming up
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)

    def reap_idle(self) -> None:
        """Collect idle runners that ended while stopping."""
        for pid in list(self.idle):
            with contextlib.suppress(ChildProcessError):
                if os.waitpid(pid, os.WNOHANG)[0]:
                    self.idle.discard(pid)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """The pool's options."""
    parser = argparse.ArgumentParser(prog="aicloud-notebook-pool", description=__doc__)
    parser.add_argument("--socket", required=True, type=Path, help="where to listen")
    parser.add_argument("--size", type=int, default=2, help="warm runners kept waiting")
    parser.add_argument(
        "--linger", type=float, default=10.0, help="seconds to live on once the server is gone"
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Take the lock, warm up, listen, keep the runners coming."""
    args = parse_args(argv)
    owner = os.getppid()
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))
    directory = private_dir(args.socket.parent)
    lock = _acquire_lock(directory)
    from aicloud.launchers import notebook_runner

    notebook_runner.warm_up()
    listener = _listen(args.socket)
    print(f"aicloud-notebook-pool {os.getpid()}: {args.size} runners on {args.socket}", flush=True)
    Pool(args.socket, listener, lock, max(1, args.size), args.linger, owner).run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
