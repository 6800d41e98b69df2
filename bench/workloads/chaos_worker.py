"""The job that ``bench/chaos.py`` runs: it records each run in a marker file.

Arguments: MARKER CODE SLEEP1 SLEEP2 TRAP CHATTY. It appends ``start PID ATTEMPT RANK TIME
OTHERS`` (OTHERS: live processes of the same job from another attempt, or ``-``), sleeps
SLEEP1 seconds on attempt 1 and SLEEP2 on later ones (printing lines if CHATTY), appends
``end PID ATTEMPT RANK TIME CODE`` and exits with CODE. With TRAP it ignores SIGTERM but
appends a ``term`` line. Standard library only: it runs under ``python -I -S``.
"""

import os
import signal
import sys
import time

marker, code, sleep1, sleep2, trap, chatty = (sys.argv[1:] + ["0"] * 6)[:6]
job = os.environ.get("AICLOUD_JOB_ID", "")
attempt = os.environ.get("AICLOUD_ATTEMPT", "?")
rank = os.environ.get("RANK", "0")


def line(kind, *extra):
    """Append one record; O_APPEND keeps concurrent short lines whole."""
    with open(marker, "a") as f:
        f.write(" ".join([kind, str(os.getpid()), attempt, rank, repr(time.time()), *extra]) + "\n")


def other_attempts():
    """Pids of live processes of this job from another attempt."""
    mine_job = f"AICLOUD_JOB_ID={job}".encode()
    mine_attempt = f"AICLOUD_ATTEMPT={attempt}".encode()
    found = []
    for pid in os.listdir("/proc"):
        if not pid.isdigit() or int(pid) == os.getpid():
            continue
        try:
            with open(f"/proc/{pid}/environ", "rb") as f:
                env = f.read().split(b"\0")
        except OSError:
            continue
        if mine_job in env and mine_attempt not in env:
            found.append(pid)
    return ",".join(found) or "-"


if trap == "1":
    signal.signal(signal.SIGTERM, lambda *_: line("term"))
line("start", other_attempts())
deadline = time.time() + float(sleep1 if attempt == "1" else sleep2)
while (left := deadline - time.time()) > 0:
    if chatty == "1":
        print("x" * 200, flush=True)
        time.sleep(min(left, 0.02))
    else:
        time.sleep(left)
line("end", code)
sys.exit(int(code))
