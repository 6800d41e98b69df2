"""Online serving: aicloud's model server against KServe's and MLServer's, one client, one run.

Every variant serves the same MLP (64 → 256 → 256 → 8, seed 0; the state dict loaded into
one ``nn.Sequential``, ``serving_servers/mlp.py``) with one torch thread
(``OMP_NUM_THREADS=1``), and gets the same load from ``wrk`` (``serving_load.py``):

- ``floor``: a fixed answer, no model (``serving_servers/floor.py``): how far the client goes;
- ``aicloud off`` / ``aicloud on``: aicloud's server as a ``serve`` job through the job
  service, batching off (``max_batch_size`` 1) / on (32 rows, 2 ms);
- ``aicloud module off`` / ``on`` (``--variants``): the same server started by hand, no job;
- ``kserve``: KServe's ``ModelServer`` with a custom ``kserve.Model`` (``bench/.venvs/kserve``);
- ``mlserver`` / ``mlserver batching``: MLServer with a custom ``MLModel``, adaptive batching
  off / on (32 requests, 2 ms) (``bench/.venvs/mlserver``).

Loads: 16 and 64 connections of 1-row requests, 64 connections of 8-row requests. All servers
run at once; each round measures every variant under every load once (a warm-up run, then
the measured run; the order rotates between rounds), and the table shows the median round
with the min–max of req/s, and the server's CPU per request (the figure least bent by other
tenants of the cores). The goals of issue 20 are checked at the end.

    .venv/bin/python bench/serving.py [--rounds 3] [--seconds 6] [--variants floor,aicloud on]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import numpy as np
import torch

from _common import (
    Server,
    describe_machine,
    handle_signals,
    load_average,
    machine,
    now_iso,
    running_server,
    save_results,
)
from serving_load import Cell, Load, ensure_wrk, measure
from serving_variants import (
    SERVERS,
    Setup,
    Target,
    start_aicloud_job,
    start_aicloud_module,
    start_floor,
    start_kserve,
    start_mlserver,
)

sys.path.insert(0, str(SERVERS))
import mlp  # serving_servers/mlp.py: the model every server loads

OUT = Path(__file__).parent / "out" / "serving.json"
VARIANTS = {
    "floor": start_floor,
    "aicloud off": lambda setup: start_aicloud_job(setup, batching=False),
    "aicloud on": lambda setup: start_aicloud_job(setup, batching=True),
    "aicloud module off": lambda setup: start_aicloud_module(setup, batching=False),
    "aicloud module on": lambda setup: start_aicloud_module(setup, batching=True),
    "kserve": start_kserve,
    "mlserver": lambda setup: start_mlserver(setup, batching=False),
    "mlserver batching": lambda setup: start_mlserver(setup, batching=True),
}
DEFAULT_VARIANTS = "floor,aicloud off,aicloud on,kserve,mlserver,mlserver batching"
LOADS = {"16 x 1 row": (16, 1), "64 x 1 row": (64, 1), "64 x 8 rows": (64, 8)}
BASE, BATCHED, PEERS = "aicloud off", "aicloud on", ("kserve", "mlserver", "mlserver batching")


def commit() -> str:
    """The measured tree: its commit, and whether files differ from it (others edit it)."""
    here = Path(__file__).parent
    head = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], cwd=here, capture_output=True, text=True
    ).stdout.strip()
    changed = subprocess.run(
        ["git", "status", "--porcelain", "--", "../extension/aicloud/inference"],
        cwd=here,
        capture_output=True,
        text=True,
    ).stdout.strip()
    return f"{head}{' + uncommitted changes in extension/aicloud/inference' if changed else ''}"


def write_bodies(folder: Path) -> dict[int, tuple[Path, np.ndarray]]:
    """The fixed infer bodies (1 and 8 rows, seed 0) and their inputs."""
    rng = np.random.default_rng(0)
    bodies = {}
    for rows in sorted({rows for _, rows in LOADS.values()}):
        batch = rng.normal(size=(rows, mlp.FEATURES)).astype(np.float32)
        tensor = {"name": "input", "shape": list(batch.shape), "datatype": "FP32"}
        document = {"inputs": [{**tensor, "data": batch.reshape(-1).tolist()}]}
        path = folder / f"body-{rows}.json"
        path.write_text(json.dumps(document))
        bodies[rows] = (path, batch)
    return bodies


def check_answer(name: str, target: Target, body: Path, expected: np.ndarray) -> None:
    """The server's answer to one body is the MLP's output: the same model everywhere."""
    headers = {"Content-Type": "application/json"}
    if target.authorization:
        headers["Authorization"] = target.authorization
    response = httpx.post(target.infer_url, content=body.read_bytes(), headers=headers, timeout=30)
    if response.status_code != 200:
        raise RuntimeError(f"{name} answered {response.status_code}: {response.text[:500]}")
    output = response.json()["outputs"][0]
    got = np.asarray(output["data"], dtype=np.float32).reshape(expected.shape)
    if not np.allclose(got, expected, atol=1e-5):
        raise RuntimeError(f"{name} answers {got.tolist()}, not the MLP's {expected.tolist()}")


def median_row(cells: list[Cell]) -> dict:
    """Medians over the rounds (req/s with its min and max)."""
    rates = [c.rps for c in cells]
    row = {
        key: round(statistics.median(getattr(c, key) for c in cells), 3)
        for key in ("rps", "p50_ms", "p99_ms", "wrk_cores", "server_cores", "load1")
    }
    row["cpu_ms_per_request"] = round(statistics.median(c.cpu_ms_per_request for c in cells), 3)
    row.update(rps_min=min(rates), rps_max=max(rates), errors=sum(c.errors for c in cells))
    return row


def check_goals(table: dict[str, dict[str, dict]]) -> list[dict]:
    """Issue 20's goals, each met or not, with the figures that decide it."""
    goals = []
    floor = table.get("floor")
    for load in LOADS:
        others = [rows[load]["rps"] for name, rows in table.items() if name != "floor"]
        if floor and others:
            ratio = floor[load]["rps"] / max(others)
            goals.append(
                {
                    "goal": f"client not the bottleneck at {load}: floor >= 2x the fastest server",
                    "met": ratio >= 2,
                    "figures": f"floor {floor[load]['rps']:.0f} req/s = {ratio:.1f}x",
                }
            )
    if BASE in table and BATCHED in table:
        off, on = table[BASE]["64 x 1 row"], table[BATCHED]["64 x 1 row"]
        ratio = on["rps"] / off["rps"]
        goals.append(
            {
                "goal": "batching on >= 3x batching off at 64 x 1 row, p99 no worse",
                "met": ratio >= 3 and on["p99_ms"] <= off["p99_ms"] and not on["errors"],
                "figures": f"{ratio:.2f}x req/s; p99 {on['p99_ms']:.1f} vs {off['p99_ms']:.1f} ms",
            }
        )
    for ours in (BATCHED, BASE):
        if ours not in table:
            continue
        for peer in PEERS:
            if peer not in table:
                continue
            for load in LOADS:
                a, b = table[ours][load], table[peer][load]
                goals.append(
                    {
                        "goal": f"{ours} ahead of {peer} at {load} at equal or better p99",
                        "met": a["rps"] > b["rps"]
                        and a["p99_ms"] <= b["p99_ms"]
                        and not a["errors"],
                        "figures": f"{a['rps']:.0f} vs {b['rps']:.0f} req/s; "
                        f"p99 {a['p99_ms']:.1f} vs {b['p99_ms']:.1f} ms",
                    }
                )
        break  # aicloud's default (batching on) when it ran, else batching off
    return goals


def print_report(results: dict) -> None:
    """The table (variant x load), the goals, the machine and its load."""
    print()
    print(describe_machine(results["machine"]))
    print(f"commit {results['commit']}")
    print(f"load average before {results['load_before']}, after {results['load_after']}")
    s = results["settings"]
    print(f"{s['rounds']} rounds, {s['seconds']} s per cell after {s['warmup']} s, medians\n")
    header = f"{'variant':<20}{'load':<13}{'req/s':>8}{'min-max':>13}{'p50 ms':>8}{'p99 ms':>8}"
    print(header + f"{'x off':>7}{'wrk cpu':>8}{'srv cpu':>8}{'ms cpu/req':>11}{'errors':>7}")
    table = results["table"]
    for load in LOADS:
        base = table.get(BASE, {}).get(load)
        for name, rows in table.items():
            row = rows[load]
            ratio = f"{row['rps'] / base['rps']:.2f}" if base else "-"
            spread = f"{row['rps_min']:.0f}-{row['rps_max']:.0f}"
            print(
                f"{name:<20}{load:<13}{row['rps']:>8.0f}{spread:>13}{row['p50_ms']:>8.2f}"
                f"{row['p99_ms']:>8.2f}{ratio:>7}{row['wrk_cores']:>8.2f}"
                f"{row['server_cores']:>8.2f}{row['cpu_ms_per_request']:>11.2f}{row['errors']:>7}"
            )
        print()
    for goal in results["goals"]:
        print(f"{'met    ' if goal['met'] else 'NOT met'}  {goal['goal']}: {goal['figures']}")
    print("\nservers:")
    for name, words in results["servers"].items():
        print(f"  {name}: {words}")


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=int, default=6, help="measured seconds per cell")
    parser.add_argument("--warmup", type=int, default=2, help="warm-up seconds per cell")
    parser.add_argument("--threads", type=int, default=2, help="wrk's threads")
    parser.add_argument(
        "--workers", type=int, default=1, help="server processes of aicloud, KServe and MLServer"
    )
    parser.add_argument(
        "--aicloud-option",
        action="append",
        default=[],
        metavar="KEY=JSON",
        help="an extra inference option of aicloud's server, e.g. max_wait_ms=1 (repeatable)",
    )
    parser.add_argument("--variants", default=DEFAULT_VARIANTS, help="comma-separated")
    args = parser.parse_args()
    args.variants = [v.strip() for v in args.variants.split(",") if v.strip()]
    unknown = [v for v in args.variants if v not in VARIANTS]
    if unknown:
        parser.error(f"--variants: unknown {unknown}; choose from {list(VARIANTS)}")
    extra = {}
    for item in args.aicloud_option:
        key, sep, value = item.partition("=")
        if not sep or not key:
            parser.error(f"--aicloud-option: {item!r} is not KEY=JSON")
        try:
            extra[key] = json.loads(value)
        except json.JSONDecodeError:
            extra[key] = value  # a plain string
    args.aicloud_option = extra
    return args


def prepare_model(home: Path) -> tuple[Path, dict[int, tuple[Path, np.ndarray]]]:
    """The model folder (``mlp.py`` and ``mlp.pt``), the bodies, and the MLP's answers."""
    model_dir = home / "root"  # the aicloud server's root: serve jobs run here
    model_dir.mkdir()
    (model_dir / "mlp.py").write_bytes((SERVERS / "mlp.py").read_bytes())
    mlp.save(model_dir)
    model = mlp.load(model_dir)
    answers = {}
    for rows, (path, batch) in write_bodies(home).items():
        with torch.inference_mode():
            answers[rows] = (path, model(torch.from_numpy(batch)).numpy())
    return model_dir, answers


def start_all(
    names: list[str], setup: Setup, answers: dict, stack: contextlib.ExitStack
) -> dict[str, Target]:
    """Start every variant (kept running for all rounds); each must answer the MLP's output."""
    targets = {}
    for name in names:
        print(f"starting {name}", flush=True)
        targets[name] = stack.enter_context(VARIANTS[name](setup))
        if name != "floor":
            for path, expected in answers.values():
                check_answer(name, targets[name], path, expected)
    return targets


def run_rounds(
    args: argparse.Namespace, wrk: str, targets: dict[str, Target], answers: dict
) -> dict[str, dict[str, list[Cell]]]:
    """Every variant under every load once a round, the order rotated between rounds."""
    cells: dict[str, dict[str, list[Cell]]] = {v: {ld: [] for ld in LOADS} for v in targets}
    names = list(targets)
    for round_ in range(args.rounds):
        shift = round_ % len(names)
        order = names[shift:] + names[:shift]
        for load, (connections, rows) in LOADS.items():
            for name in order:
                target = targets[name]
                spec = Load(
                    answers[rows][0], connections, args.seconds, args.threads, target.authorization
                )
                cell = measure(wrk, target.infer_url, spec, target.pid, args.warmup)
                cells[name][load].append(cell)
                print(
                    f"round {round_ + 1} {load:<12} {name:<20} {cell.rps:>8.0f} req/s "
                    f"p99 {cell.p99_ms:>7.2f} ms  errors {cell.errors}",
                    flush=True,
                )
    return cells


def main() -> int:
    args = parse_args()
    handle_signals()
    wrk = ensure_wrk()
    began = time.monotonic()
    results: dict = {"date": now_iso(), "machine": machine(), "load_before": load_average()}
    results["commit"] = commit()
    results["settings"] = {**vars(args), "torch_threads": 1, "wrk": wrk}
    with (
        tempfile.TemporaryDirectory(prefix="aicloud-bench-serving-") as tmp,
        contextlib.ExitStack() as stack,
    ):
        home = Path(tmp)
        model_dir, answers = prepare_model(home)
        servers: list[Server] = []

        def aicloud() -> Server:
            if not servers:
                servers.append(stack.enter_context(running_server(home, settle=True)))
            return servers[0]

        setup = Setup(model_dir, home, aicloud, args.workers, args.aicloud_option)
        targets = start_all(args.variants, setup, answers, stack)
        cells = run_rounds(args, wrk, targets, answers)
        results["servers"] = {name: target.settings for name, target in targets.items()}
    results["load_after"] = load_average()
    results["cells"] = {
        n: {ld: [c.model() for c in cs] for ld, cs in rows.items()} for n, rows in cells.items()
    }
    results["table"] = {
        n: {ld: median_row(cs) for ld, cs in rows.items()} for n, rows in cells.items()
    }
    results["goals"] = check_goals(results["table"])
    results["wall_seconds"] = round(time.monotonic() - began, 1)
    print_report(results)
    save_results(results, OUT)
    return 0


if __name__ == "__main__":
    sys.exit(main())
