"""Online serving: throughput and p99 latency at a fixed concurrency, four ways, in one run.

1. ``floor``: a minimal tornado server written here that decodes JSON, calls the model and
   encodes the answer: no checks, no batching, no aicloud at all (the bare model server);
2. ``server``: aicloud's v2 model server started by hand (``python -m aicloud.inference.server``),
   batching off, outside any job;
3. ``job, batching off``: the same server as an aicloud ``serve`` job (supervisor, log pipe);
4. ``job, batching on``: the serve job with dynamic batching (``max_batch_size`` 32, 2 ms).

Every variant gets the same load: ``--concurrency`` clients (asyncio, keep-alive), each sending
one-row infer requests until ``--requests`` are done, after a warm-up. The model is a small
MLP (64 → 256 → 256 → 8) saved with ``torch.export``. Ratios are against ``floor``.

    .venv/bin/python bench/serving.py [--concurrency 16] [--requests 1500]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import numpy as np

from _common import (
    cancel_and_wait,
    describe_machine,
    handle_signals,
    load_average,
    machine,
    now_iso,
    running_server,
    save_results,
    stop_group,
    submit_job,
    summary,
)

FEATURES = 64
OUT = Path(__file__).parent / "out" / "serving.json"
FLOOR_SERVER = """
import json, sys
import numpy as np, torch
from tornado import ioloop, web, netutil, httpserver
model = torch.export.load(sys.argv[1]).module()
class Infer(web.RequestHandler):
    def post(self, name):
        tensor = json.loads(self.request.body)["inputs"][0]
        x = np.asarray(tensor["data"], dtype=np.float32).reshape(tensor["shape"])
        with torch.inference_mode():
            y = model(torch.from_numpy(x)).numpy()
        self.write({"model_name": name, "outputs": [{"name": "output", "datatype": "FP32",
                    "shape": list(y.shape), "data": y.reshape(-1).tolist()}]})
sockets = netutil.bind_sockets(0, "127.0.0.1")
server = httpserver.HTTPServer(web.Application([(r"/v2/models/([^/]+)/infer", Infer)]))
server.add_sockets(sockets)
print(sockets[0].getsockname()[1], flush=True)
ioloop.IOLoop.current().start()
"""


def save_model(folder: Path) -> str:
    """The benchmark's MLP, saved with torch.export; its file name."""
    import torch

    torch.manual_seed(0)
    model = torch.nn.Sequential(
        torch.nn.Linear(FEATURES, 256),
        torch.nn.ReLU(),
        torch.nn.Linear(256, 256),
        torch.nn.ReLU(),
        torch.nn.Linear(256, 8),
    ).eval()
    batch = torch.export.Dim("batch", min=1, max=4096)
    program = torch.export.export(model, (torch.zeros(2, FEATURES),), dynamic_shapes=({0: batch},))
    torch.export.save(program, folder / "mlp.pt2")
    return "mlp.pt2"


async def load(url: str, model: str, concurrency: int, requests: int, warmup: int) -> dict:
    """Latencies and throughput of one-row infer calls from ``concurrency`` clients."""
    rng = np.random.default_rng(0)
    bodies = [
        json.dumps(
            {
                "inputs": [
                    {
                        "name": "input",
                        "shape": [1, FEATURES],
                        "datatype": "FP32",
                        "data": rng.normal(size=FEATURES).astype(np.float32).tolist(),
                    }
                ]
            }
        )
        for _ in range(64)
    ]
    path = f"{url}/v2/models/{model}/infer"
    latencies: list[float] = []
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(limits=limits, timeout=60) as client:

        async def one(i: int, record: bool) -> None:
            began = time.perf_counter()
            response = await client.post(path, content=bodies[i % len(bodies)])
            response.raise_for_status()
            if record:
                latencies.append(time.perf_counter() - began)

        async def clients(total: int, record: bool) -> None:
            counter = iter(range(total))

            async def worker():
                for i in counter:
                    await one(i, record)

            await asyncio.gather(*(worker() for _ in range(concurrency)))

        await clients(warmup, record=False)
        began = time.perf_counter()
        await clients(requests, record=True)
        wall = time.perf_counter() - began
    stats = summary(latencies)
    return {"throughput_rps": requests / wall, "p50_ms": stats["p50_ms"], "p99_ms": stats["p99_ms"]}


def wait_file(path: Path, timeout: float = 120) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if path.exists():
            return json.loads(path.read_text())
        time.sleep(0.1)
    raise TimeoutError(f"{path} not written")


def run_process_variant(argv: list[str], cwd: Path, args, url_of) -> dict:
    process = subprocess.Popen(argv, cwd=cwd, stdout=subprocess.PIPE, start_new_session=True)
    try:
        url = url_of(process)
        return asyncio.run(load(url, "mlp", args.concurrency, args.requests, args.warmup))
    finally:
        stop_group(process)


def run_job_variant(server, model: str, batching: bool, args) -> dict:
    inference = {"model": model, "model_name": "mlp", "input_shape": [FEATURES]}
    inference.update(max_batch_size=32, max_wait_ms=2) if batching else inference.update(
        max_batch_size=1
    )
    with server.client() as client:
        job_id = submit_job(client, {"kind": "serve", "name": "bench", "inference": inference})
        try:
            endpoint = wait_file(server.run_dir(job_id) / "outputs" / "endpoint.json")
            return asyncio.run(
                load(endpoint["url"], "mlp", args.concurrency, args.requests, args.warmup)
            )
        finally:
            cancel_and_wait(client, job_id)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--requests", type=int, default=1500)
    parser.add_argument("--warmup", type=int, default=200)
    args = parser.parse_args()
    handle_signals()
    began = time.monotonic()
    results: dict = {"date": now_iso(), "machine": machine(), "load_before": load_average()}
    results["settings"] = vars(args)
    rows: dict[str, dict] = {}
    with tempfile.TemporaryDirectory(prefix="aicloud-bench-serving-") as tmp:
        home = Path(tmp)
        with running_server(home) as server:
            model = save_model(server.root_dir)
            floor = server.root_dir / "floor_server.py"
            floor.write_text(FLOOR_SERVER)
            rows["floor"] = run_process_variant(
                [sys.executable, str(floor), model],
                server.root_dir,
                args,
                lambda p: f"http://127.0.0.1:{int(p.stdout.readline())}",
            )
            endpoint = server.root_dir / "endpoint.json"
            rows["server"] = run_process_variant(
                [sys.executable, "-m", "aicloud.inference.server", f"--model={model}",
                 "--name=mlp", f"--input-shape={FEATURES}", "--max-batch-size=1",
                 f"--endpoint-file={endpoint}"],
                server.root_dir,
                args,
                lambda p: wait_file(endpoint)["url"],
            )  # fmt: skip
            rows["job, batching off"] = run_job_variant(server, model, False, args)
            rows["job, batching on"] = run_job_variant(server, model, True, args)
    base = rows["floor"]
    for row in rows.values():
        row["throughput_ratio"] = row["throughput_rps"] / base["throughput_rps"]
        row["p99_ratio"] = row["p99_ms"] / base["p99_ms"]
    results["variants"] = rows
    results["wall_seconds"] = round(time.monotonic() - began, 1)
    print(describe_machine(results["machine"]))
    print(f"concurrency {args.concurrency}, {args.requests} one-row requests per variant\n")
    print(f"{'variant':<20}{'req/s':>9}{'p50 ms':>9}{'p99 ms':>9}{'× req/s':>9}{'× p99':>8}")
    for name, row in rows.items():
        print(
            f"{name:<20}{row['throughput_rps']:>9.0f}{row['p50_ms']:>9.2f}{row['p99_ms']:>9.2f}"
            f"{row['throughput_ratio']:>9.2f}{row['p99_ratio']:>8.2f}"
        )
    save_results(results, OUT)
    return 0


if __name__ == "__main__":
    sys.exit(main())
