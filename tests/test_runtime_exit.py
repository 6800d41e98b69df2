"""aicloud.runtime's exit handler: gloo's worker threads are idle before the interpreter ends.

torch 2.13 + gloo can abort a rank at exit (``terminate called without an active exception``)
when a gloo worker thread releases its last collective during interpreter finalization; see
``aicloud.runtime._destroy_at_exit`` and ``bench/gloo_exit_abort.py`` for the race and its rate.
"""

from __future__ import annotations

import ctypes
import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

from aicloud import runtime
from aicloud.magics.script import build_script

PROBE = Path(__file__).parent / "scripts" / "ddp_exit_probe.py"
PR_SET_NAME = 15
TORCHRUN = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node=2"]


def named_thread(name: str, busy_seconds: float, stop: threading.Event) -> threading.Thread:
    """A real thread named ``name`` for the kernel that spins ``busy_seconds``, then sleeps."""

    def body():
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_NAME, name.encode(), 0, 0, 0)
        named.set()
        end = time.monotonic() + busy_seconds
        while time.monotonic() < end and not stop.is_set():
            pass
        stop.wait()

    named = threading.Event()
    thread = threading.Thread(target=body, daemon=True)
    thread.start()
    assert named.wait(5)
    return thread


def test_wait_returns_at_once_without_gloo_threads():
    started = time.monotonic()
    assert runtime._thread_states(runtime.GLOO_WORKER_THREAD) == []
    assert runtime.wait_for_gloo_workers() is True
    assert time.monotonic() - started < 0.5


def test_wait_lasts_while_a_worker_runs_and_gives_up_at_the_timeout(capsys):
    stop = threading.Event()
    busy = named_thread(runtime.GLOO_WORKER_THREAD, 0.3, stop)
    try:
        started = time.monotonic()
        assert runtime.wait_for_gloo_workers(timeout=5) is True
        assert 0.25 < time.monotonic() - started < 5
        assert runtime._thread_states(runtime.GLOO_WORKER_THREAD) == ["S"]
    finally:
        stop.set()
        busy.join()
    stop = threading.Event()
    forever = named_thread(runtime.GLOO_WORKER_THREAD, 3600, stop)
    try:
        started = time.monotonic()
        assert runtime.wait_for_gloo_workers(timeout=0.3) is False
        assert 0.3 <= time.monotonic() - started < 2
        assert "gloo worker threads still busy 0.3 s after the run" in capsys.readouterr().err
    finally:
        stop.set()
        forever.join()


def test_torchrun_ranks_exit_after_gloo_workers_went_idle(tmp_path):
    done = subprocess.run(
        [*TORCHRUN, str(PROBE), str(tmp_path)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    output = done.stdout + done.stderr
    assert done.returncode == 0, output[-4000:]
    assert "terminate called" not in output
    for rank in (0, 1):
        assert f"rank {rank} done" in output
        record = json.loads((tmp_path / f"rank{rank}.json").read_text())
        assert record["initialized"] is False  # the handler destroyed the group
        assert len(record["waits"]) == 1 and record["waits"][0]["quiet"] is True
        assert record["waits"][0]["seconds"] < 5
        # The DDP model still holds the group, so gloo's threads live on, all asleep.
        assert record["gloo_threads"] and set(record["gloo_threads"]) == {"S"}


PLAIN_DDP_CELL = """
import json, os
import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from aicloud import runtime

log = open(os.path.join(os.environ["PROBE_DIR"], f"rank{os.environ['RANK']}.log"), "a")
looked = runtime._thread_states

def recording_states(name):
    states = looked(name)
    log.write(json.dumps(states) + "\\n")
    log.flush()
    return states

runtime._thread_states = recording_states
dist.init_process_group("gloo")
model = DistributedDataParallel(nn.Linear(8, 1))
for _ in range(5):
    (model(torch.randn(16, 8)) ** 2).mean().backward()
log.write("cell done\\n")
log.flush()
"""


def test_train_script_waits_for_gloo_workers_at_exit(tmp_path):
    """A %%aicloud train script whose cell uses plain init_process_group gets the exit wait."""
    script = tmp_path / "train_cell.py"
    script.write_text(build_script(PLAIN_DDP_CELL, [], None, [], "test"))
    done = subprocess.run(
        [*TORCHRUN, str(script)],
        cwd=tmp_path,
        env={**os.environ, "PROBE_DIR": str(tmp_path)},
        capture_output=True,
        text=True,
        timeout=120,
    )
    output = done.stdout + done.stderr
    assert done.returncode == 0, output[-4000:]
    for rank in (0, 1):
        lines = (tmp_path / f"rank{rank}.log").read_text().splitlines()
        after = lines[lines.index("cell done") + 1 :]
        # The guard polled gloo's worker threads after the cell, and ended once all slept.
        assert after and json.loads(after[-1]) and set(json.loads(after[-1])) == {"S"}


def test_future_imports_stay_first_in_the_train_script():
    cell = '"""doc"""\nfrom __future__ import annotations\nx: int = 1\nprint(x)'
    script = build_script(cell, ["import math"], None, [], "test")
    compile(script, "<script>", "exec", dont_inherit=True)
    lines = script.splitlines()
    assert lines[1:3] == ['"""doc"""', "from __future__ import annotations"]
    assert lines.index("import math") < lines.index("x: int = 1")
    assert "_aicloud_atexit.register(_aicloud_wait_for_gloo)" in lines
