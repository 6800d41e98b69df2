"""A small DDP training job (an MLP on synthetic data) that times itself.

Rank 0 writes a JSON file: when the script started, when its first and last training steps were
done, how many steps ran, the batch and the threads it used. Runs the same under bare
``torchrun`` and under aicloud, so both are measured the same way. CPU with gloo, or one GPU
per process with NCCL (``--device cuda``).
"""

import time

STARTED = time.time()  # before the heavy imports: they belong to the time to first step

import argparse  # noqa: E402
import glob  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402

import torch  # noqa: E402
import torch.distributed as dist  # noqa: E402
from torch.nn.parallel import DistributedDataParallel  # noqa: E402

IMPORTED = time.time()


def runqueue_wait() -> float | None:
    """Seconds this process's live threads spent runnable but waiting for a CPU (Linux)."""
    total = 0
    for path in glob.glob("/proc/self/task/*/schedstat"):
        try:
            with open(path) as f:
                total += int(f.read().split()[1])
        except (OSError, ValueError, IndexError):
            continue
    return total / 1e9 if total else None


def parse_args() -> argparse.Namespace:
    """Model size, steps, batch, device and where the timings go."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", required=True, help="JSON file rank 0 writes")
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--batch", type=int, default=128, help="samples per process and step")
    parser.add_argument("--width", type=int, default=512)
    parser.add_argument("--depth", type=int, default=3)
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    return parser.parse_args()


def model(width: int, depth: int) -> torch.nn.Module:
    """An MLP: ``depth`` hidden layers of ``width``, 10 classes."""
    layers = []
    for _ in range(depth):
        layers += [torch.nn.Linear(width, width), torch.nn.ReLU()]
    return torch.nn.Sequential(*layers, torch.nn.Linear(width, 10))


def main() -> None:
    """Train for ``--steps`` steps; rank 0 records the timings."""
    args = parse_args()
    cuda = args.device == "cuda"
    if cuda:
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
    dist.init_process_group("nccl" if cuda else "gloo")  # waits for every rank
    joined = time.time()
    device = torch.device("cuda", torch.cuda.current_device()) if cuda else torch.device("cpu")
    torch.manual_seed(0)
    net = DistributedDataParallel(model(args.width, args.depth).to(device))
    optimizer = torch.optim.SGD(net.parameters(), lr=0.01)
    generator = torch.Generator(device=device).manual_seed(1 + dist.get_rank())
    x = torch.randn(args.batch, args.width, device=device, generator=generator)
    y = torch.randint(0, 10, (args.batch,), device=device, generator=generator)
    first = first_cpu = 0.0
    first_wait = None
    for step in range(args.steps):
        optimizer.zero_grad(set_to_none=True)
        loss = torch.nn.functional.cross_entropy(net(x), y)
        loss.backward()
        optimizer.step()
        if step == 0:
            if cuda:
                torch.cuda.synchronize()
            first = time.time()
            first_cpu = time.process_time()  # this process's CPU seconds so far
            first_wait = runqueue_wait()
    if cuda:
        torch.cuda.synchronize()
    last = time.time()
    if dist.get_rank() == 0:
        record = {
            "started": STARTED,
            "imported": IMPORTED,
            "joined": joined,
            "first_step": first,
            "first_step_cpu": first_cpu,
            "first_step_runqueue_wait": first_wait,
            "last_step": last,
            "steps": args.steps,
            "world_size": dist.get_world_size(),
            "samples_per_step": args.batch * dist.get_world_size(),
            "torch_threads": torch.get_num_threads(),
            "omp_num_threads": os.environ.get("OMP_NUM_THREADS"),
            "loss": loss.item(),
        }
        with open(args.out + ".tmp", "w") as f:
            json.dump(record, f)
        os.replace(args.out + ".tmp", args.out)
    dist.destroy_process_group()


if __name__ == "__main__":
    main()
