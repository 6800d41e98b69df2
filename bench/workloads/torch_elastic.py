"""A deterministic elastic DDP job: checkpoints every step, resumes from the checkpoint.

The model starts from a fixed seed and step ``s`` trains on a batch that is a function of ``s``
alone (each rank takes its fixed shard of it), so a run that is killed and resumes from its
checkpoint ends with the same parameters as one that never stopped. Rank 0 saves the model and
optimizer after every step into ``aicloud.runtime.checkpoint_dir()`` and reports the step with
``aicloud.runtime.report``; at the end it saves the flat parameters (``--final``, ``.npy``).

``--init aicloud`` joins the group with ``aicloud.runtime.init_distributed()``; ``--init plain``
with ``init_process_group("gloo")``, stock torchrun behaviour, for contrast.
"""

import argparse
import os
import time

import numpy as np
import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel

from aicloud import runtime


def parse_args() -> argparse.Namespace:
    """Steps, pacing, model size, how to join the group, where the final parameters go."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--step-seconds", type=float, default=0.1, help="pause after each step")
    parser.add_argument("--batch", type=int, default=64, help="samples per rank and step")
    parser.add_argument("--width", type=int, default=64)
    parser.add_argument("--init", choices=("aicloud", "plain"), default="aicloud")
    parser.add_argument("--final", help=".npy file for the final parameters (rank 0)")
    return parser.parse_args()


def batch(step: int, width: int, per_rank: int) -> tuple[torch.Tensor, torch.Tensor]:
    """This rank's fixed shard of step ``step``'s batch."""
    generator = torch.Generator().manual_seed(1000 + step)
    world, rank = dist.get_world_size(), dist.get_rank()
    x = torch.randn(world * per_rank, width, generator=generator)
    y = torch.randint(0, 10, (world * per_rank,), generator=generator)
    shard = slice(rank * per_rank, (rank + 1) * per_rank)
    return x[shard], y[shard]


def save(path, step: int, model: torch.nn.Module, optimizer: torch.optim.Optimizer) -> None:
    """Write the checkpoint atomically: a killed writer leaves the previous one intact."""
    state = {"step": step, "model": model.state_dict(), "optimizer": optimizer.state_dict()}
    torch.save(state, f"{path}.tmp")
    os.replace(f"{path}.tmp", path)


def main() -> None:
    """Resume from the checkpoint if there is one, train to ``--steps``, save the result."""
    args = parse_args()
    if args.init == "aicloud":
        runtime.init_distributed("gloo")
    else:
        dist.init_process_group("gloo")
    torch.manual_seed(0)
    model = torch.nn.Sequential(
        torch.nn.Linear(args.width, args.width), torch.nn.Tanh(), torch.nn.Linear(args.width, 10)
    )
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    checkpoint = runtime.checkpoint_dir() / "state.pt"
    start = 0
    if checkpoint.exists():
        state = torch.load(checkpoint)
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        start = state["step"]
    runtime.report(resumed_from=start)
    ddp = DistributedDataParallel(model)
    for step in range(start, args.steps):
        x, y = batch(step, args.width, args.batch)
        optimizer.zero_grad(set_to_none=True)
        loss = torch.nn.functional.cross_entropy(ddp(x), y)
        loss.backward()
        optimizer.step()
        if runtime.is_chief():
            save(checkpoint, step + 1, model, optimizer)
        runtime.report(step=step + 1, total=args.steps, loss=loss.item())
        time.sleep(args.step_seconds)
    if runtime.is_chief() and args.final:
        flat = torch.cat([p.detach().flatten() for p in model.parameters()])
        np.save(args.final, flat.numpy())
    dist.destroy_process_group()


if __name__ == "__main__":
    main()
