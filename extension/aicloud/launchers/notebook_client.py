"""A notebook job's process while the warm pool is up: a thin client of a warm runner.

Run as ``python -I -S notebook_client.py --socket PATH -- RUNNER_ARGV...`` (standard library
only, so it starts in ~20 ms), where ``RUNNER_ARGV`` is the plain runner's command line
(``python -m aicloud.launchers.notebook_runner --input=...``). It

- connects to the pool's socket and waits for a warm runner to greet it;
- sends the request: the runner's argv, this process's environment (the job's: the
  ``AICLOUD_*`` variables, the user's ``env``), working directory and umask, and its stdout as a
  file descriptor, so that the kernel's output lands in the job's log as it happens;
- exits with the run's exit code;
- on SIGTERM or SIGINT (a cancel, a timeout) asks the runner to stop, which kills the kernel
  and what it started, waits for that, and then dies of the same signal, as a plain runner does;
- falls back to the plain runner (``os.execv`` of ``RUNNER_ARGV``) when the pool cannot be
  reached or goes away before the run started, so that jobs never fail because of the pool.

Protocol: JSON lines over the unix socket. Runner: ``{"event": "ready"}``; client: the request
(with the descriptor); runner: ``{"event": "started", ...}``, then ``{"event": "exit", "code":
N}``. Client: ``{"op": "stop"}``; runner: ``{"event": "stopped"}``.
"""

import array
import json
import os
import signal
import socket
import sys

USAGE = "usage: notebook_client.py --socket PATH [--wait SECONDS] -- RUNNER_ARGV..."
STOP_SECONDS = 10.0


class Cancelled(Exception):
    """SIGTERM or SIGINT arrived."""

    def __init__(self, signum: int):
        super().__init__(signum)
        self.signum = signum


def _on_signal(signum, frame):
    raise Cancelled(signum)


def parse_args(argv: list[str]) -> tuple[str, float, list[str]]:
    """The socket path, how long to wait for a runner, and the plain runner's argv."""
    if "--" not in argv:
        raise SystemExit(USAGE)
    split = argv.index("--")
    options, runner = argv[:split], argv[split + 1 :]
    values = {"--socket": "", "--wait": "120"}
    while options:
        name = options.pop(0)
        if name not in values or not options:
            raise SystemExit(f"notebook_client: bad option {name!r}\n{USAGE}")
        values[name] = options.pop(0)
    if not values["--socket"] or not runner:
        raise SystemExit(USAGE)
    return values["--socket"], float(values["--wait"]), runner


class Messages:
    """JSON lines read from the runner."""

    def __init__(self, sock: socket.socket):
        self.sock = sock
        self.buffer = b""

    def next(self) -> dict | None:
        """The next message, or None when the runner closed the connection."""
        while b"\n" not in self.buffer:
            chunk = self.sock.recv(65536)
            if not chunk:
                return None
            self.buffer += chunk
        line, self.buffer = self.buffer.split(b"\n", 1)
        return json.loads(line)


def fallback(runner: list[str], why: str):
    """Become the plain runner (a fresh interpreter and kernel)."""
    os.write(2, f"[aicloud] notebook pool not used ({why}); running without it\n".encode())
    os.execv(runner[0], runner)


def die_of(signum: int):
    """End as the signal would have ended this process."""
    signal.signal(signum, signal.SIG_DFL)
    os.kill(os.getpid(), signum)
    raise SystemExit(128 + signum)  # not reached


def stop(sock: socket.socket, messages: Messages, signum: int):
    """Ask the runner to stop, wait until its kernel is gone (or a while), then die."""
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        sock.sendall(b'{"op": "stop"}\n')
        sock.settimeout(STOP_SECONDS)
        while True:
            message = messages.next()
            if message is None or message.get("event") in ("stopped", "exit"):
                break
    except (OSError, ValueError):
        pass
    die_of(signum)


def connect(path: str, wait: float) -> tuple[socket.socket, Messages]:
    """A connection to a runner that has greeted us (OSError or ValueError if none did)."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.settimeout(wait)
        sock.connect(path)
        messages = Messages(sock)
        greeting = messages.next()
        if greeting is None or greeting.get("event") != "ready":
            raise ConnectionError("the pool closed the connection")
        sock.settimeout(None)
        return sock, messages
    except BaseException:
        sock.close()
        raise


def request(runner: list[str]) -> bytes:
    """What the runner needs to run as this process would: argv, environment, cwd, umask."""
    umask = os.umask(0o22)
    os.umask(umask)
    body = {"argv": runner, "env": dict(os.environ), "cwd": os.getcwd(), "umask": umask}
    return json.dumps(body).encode() + b"\n"


def send_with_stdout(sock: socket.socket, data: bytes) -> None:
    """Send ``data`` with this process's stdout attached (SCM_RIGHTS) to its first bytes."""
    fds = array.array("i", [sys.stdout.fileno()])
    sent = sock.sendmsg([data], [(socket.SOL_SOCKET, socket.SCM_RIGHTS, fds)])
    sock.sendall(data[sent:])


def main(argv: list[str] | None = None) -> int:
    """Run the notebook in a warm runner; its exit code is ours."""
    path, wait, runner = parse_args(sys.argv[1:] if argv is None else argv)
    signal.signal(signal.SIGTERM, _on_signal)
    signal.signal(signal.SIGINT, _on_signal)
    try:
        sock, messages = connect(path, wait)
    except Cancelled as e:
        die_of(e.signum)
    except (OSError, ValueError) as e:
        fallback(runner, f"{type(e).__name__}: {e}")
    started = False
    try:
        send_with_stdout(sock, request(runner))
        while True:
            message = messages.next()
            if message is None:
                break
            if message.get("event") == "started":
                started = True
            elif message.get("event") == "exit":
                return int(message.get("code", 1))
    except Cancelled as e:
        stop(sock, messages, e.signum)
    except (OSError, ValueError) as e:
        if not started:
            fallback(runner, f"{type(e).__name__}: {e}")
        raise
    if not started:
        fallback(runner, "the runner closed the connection before the run")
    print("[aicloud] the warm notebook runner ended without an exit status", file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main())
