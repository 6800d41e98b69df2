"""A deterministic DDP regression used by the training tests.

Usage: ddp_train.py STEPS OUT [SECONDS_PER_STEP]. The global batch is fixed (16) and split
across ranks, data is a function of the step, and rank 0 checkpoints every step into
aicloud.runtime.checkpoint_dir(), so any world size and any restart end on the same weights.
"""

import os
import sys
import time

import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from aicloud import runtime

GLOBAL_BATCH = 16
steps, out = int(sys.argv[1]), sys.argv[2]
pause = float(sys.argv[3]) if len(sys.argv) > 3 else 0.0

runtime.init_distributed()
rank, world = runtime.rank(), runtime.world_size()
torch.manual_seed(0)
model = nn.Sequential(nn.Linear(8, 16), nn.Tanh(), nn.Linear(16, 1))
optimizer = torch.optim.SGD(model.parameters(), lr=0.05)
checkpoint = runtime.checkpoint_dir() / "ckpt.pt"
start = 0
if checkpoint.exists():
    state = torch.load(checkpoint)
    model.load_state_dict(state["model"])
    optimizer.load_state_dict(state["optimizer"])
    start = state["step"]
    print(f"resumed at step {start} with world size {world}", flush=True)
ddp = DistributedDataParallel(model)
shard = GLOBAL_BATCH // world
for step in range(start, steps):
    generator = torch.Generator().manual_seed(step)
    x = torch.randn(GLOBAL_BATCH, 8, generator=generator)
    y = x.sum(dim=1, keepdim=True)
    mine = slice(rank * shard, (rank + 1) * shard)
    loss = ((ddp(x[mine]) - y[mine]) ** 2).mean()
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
    if rank == 0:
        state = {"model": model.state_dict(), "optimizer": optimizer.state_dict(), "step": step + 1}
        torch.save(state, f"{checkpoint}.tmp")
        os.replace(f"{checkpoint}.tmp", checkpoint)
    dist.barrier()
    runtime.report(step=step + 1, total=steps, loss=loss.item())
    print(f"step {step} loss {loss.item():.5f}", flush=True)
    time.sleep(pause)
if rank == 0:
    torch.save(model.state_dict(), out)
dist.destroy_process_group()
