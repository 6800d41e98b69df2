"""The supervisor of one local attempt: runs the job's argv and records how it ended.

Started by :class:`aicloud.backends.local.LocalBackend` as the leader of a new session, with
``python -I -S`` (standard library only, so it starts fast). It

- becomes a child subreaper, so processes that the job orphans come back to it;
- runs the argv with stdout and stderr appended to the attempt's log file;
- enforces the timeout: SIGTERM to the group, then SIGKILL after the grace period;
- on SIGTERM (a cancel) waits for the job, which got the same signal through the group;
- kills whatever the job left behind, then writes the status file atomically and exits.

The status file outlives the server, so a restarted server learns how the attempt ended even
though it was not the supervisor's parent.
"""

import contextlib
import ctypes
import os
import signal
import subprocess
import sys
import time

PR_SET_CHILD_SUBREAPER = 36


def _become_subreaper() -> None:
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)
    except (OSError, AttributeError):  # not Linux: orphans go to init, the group kill remains
        pass


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


def _kill_all(sig: int) -> None:
    """Send ``sig`` to the process group and to every descendant that left it."""
    for pid in _descendants(os.getpid()):
        with contextlib.suppress(OSError):
            os.kill(pid, sig)


def _reap_all() -> None:
    """Wait for every child; as a subreaper that includes the job's killed orphans."""
    while True:
        try:
            os.waitpid(-1, 0)
        except ChildProcessError:
            return


def _write_status(path: str, status: dict) -> None:
    import json  # imported late: the job is already running, start-up time matters more

    tmp = f"{path}.tmp"
    with open(tmp, "w") as f:
        json.dump(status, f)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def parse_args(argv: list[str]) -> tuple[dict[str, str], list[str]]:
    """``--name value`` options up to ``--``, then the command (argparse costs ~10 ms here)."""
    options = {"--log": "", "--status": "", "--timeout": "0", "--grace": "5", "--banner": ""}
    rest = list(argv)
    while rest and rest[0] != "--":
        name = rest.pop(0)
        if name not in options or not rest:
            raise SystemExit(f"aicloud-supervise: bad option {name!r}")
        options[name] = rest.pop(0)
    if not rest or not options["--log"] or not options["--status"] or len(rest) < 2:
        raise SystemExit("usage: supervise.py --log F --status F [--timeout S] [--grace S] -- CMD")
    return options, rest[1:]


def main(argv: list[str] | None = None) -> int:
    """Run the attempt and record its end."""
    options, command = parse_args(sys.argv[1:] if argv is None else argv)
    log_path, status_path = options["--log"], options["--status"]
    timeout, grace = float(options["--timeout"]), float(options["--grace"])
    banner = options["--banner"]

    _become_subreaper()
    state = {"terminated": False, "timed_out": False}

    def on_sigterm(signum, frame):
        state["terminated"] = True

    signal.signal(signal.SIGTERM, on_sigterm)
    signal.signal(signal.SIGINT, on_sigterm)
    started = time.time()
    status = {"started_at": started, "exit_code": None, "signal": None, "error": None}

    with open(log_path, "ab", buffering=0) as log:
        if banner:
            log.write(banner.encode() + b"\n")
        try:
            child = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=log, stderr=log)
        except OSError as e:
            log.write(f"[aicloud] cannot start {command[0]!r}: {e.strerror}\n".encode())
            status.update(exit_code=127, error=f"cannot start {command[0]!r}: {e.strerror}")
            child = None
        if child is not None:
            deadline = started + timeout if timeout > 0 else None
            while True:
                remaining = None if deadline is None else max(0.0, deadline - time.time())
                try:
                    child.wait(timeout=remaining)
                    break
                except subprocess.TimeoutExpired:
                    state["timed_out"] = True
                    log.write(f"[aicloud] timed out after {timeout:g} s\n".encode())
                    signal.signal(signal.SIGTERM, signal.SIG_IGN)
                    os.killpg(os.getpgrp(), signal.SIGTERM)
                    _kill_all(signal.SIGTERM)
                    try:
                        child.wait(timeout=grace)
                    except subprocess.TimeoutExpired:
                        _kill_all(signal.SIGKILL)
                        child.wait()
                    break
            code = child.returncode
            if code < 0:
                status["signal"] = -code
            else:
                status["exit_code"] = code
    # Whatever the job left running (daemons, escaped sessions) goes with it.
    _kill_all(signal.SIGTERM)
    time.sleep(0.05 if _descendants(os.getpid()) else 0)
    _kill_all(signal.SIGKILL)
    _reap_all()
    status.update(
        finished_at=time.time(), timed_out=state["timed_out"], terminated=state["terminated"]
    )
    _write_status(status_path, status)
    return 0


if __name__ == "__main__":
    sys.exit(main())
