"""A short gloo DDP run that records what aicloud.runtime's exit handler did, per rank.

Usage: ddp_exit_probe.py OUT_DIR. It leaves the process group to the handler (no
destroy_process_group here) and keeps the DDP model alive to the end, as most scripts do.
An atexit hook registered before init_distributed runs after the handler (atexit is LIFO) and
writes OUT_DIR/rank<N>.json: the wait's result and duration, whether the group is still up, and
the scheduler states of gloo's worker threads at that point.
"""

import atexit
import json
import sys
import time
from pathlib import Path

import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from aicloud import runtime

out = Path(sys.argv[1])
waits = []
original_wait = runtime.wait_for_gloo_workers


def recording_wait(*args, **kwargs):
    started = time.monotonic()
    quiet = original_wait(*args, **kwargs)
    waits.append({"quiet": quiet, "seconds": time.monotonic() - started})
    return quiet


def probe():
    record = {
        "waits": waits,
        "initialized": dist.is_initialized(),
        "gloo_threads": runtime._thread_states(runtime.GLOO_WORKER_THREAD),
    }
    (out / f"rank{runtime.rank()}.json").write_text(json.dumps(record))


runtime.wait_for_gloo_workers = recording_wait
atexit.register(probe)
runtime.init_distributed()
model = DistributedDataParallel(nn.Linear(8, 1))
optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
for _step in range(10):
    loss = (model(torch.randn(16, 8)) ** 2).mean()
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
print(f"rank {runtime.rank()} done", flush=True)
