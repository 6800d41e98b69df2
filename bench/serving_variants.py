"""The servers ``bench/serving.py`` compares, each started and stopped the same way.

Every variant serves the same MLP (``serving_servers/mlp.py``: the state dict loaded into one
``nn.Sequential``) as ``/v2/models/mlp/infer`` on 127.0.0.1, from the same model folder, with
one torch thread (``THREADS``). Each ``start_*`` is a context manager that yields a
:class:`Target` once the model answers and stops the server's whole process tree on the way
out.
"""

from __future__ import annotations

import contextlib
import json
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx

from _common import Server, cancel_and_wait, clean_env, free_port, stop_group, submit_job
from serving_venvs import venv_python

SERVERS = Path(__file__).parent / "serving_servers"
MODEL_NAME = "mlp"
THREADS = {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
BATCH = {"max_batch_size": 32, "max_wait_ms": 2}  # aicloud's and MLServer's batching, alike


@dataclass
class Target:
    """A started server: where to POST, whose CPU to count, what header it needs."""

    infer_url: str
    pid: int
    settings: str  # what runs, in words, for the results
    authorization: str | None = None


@dataclass
class Setup:
    """What every variant shares: the model folder, the log folder, aicloud's server."""

    model_dir: Path
    log_dir: Path
    aicloud: Callable[[], Server]  # the jupyter server with aicloud, started on first use


def wait_ready(url: str, process: subprocess.Popen | None, log: Path, timeout: float = 180):
    """Wait until ``url`` answers 200 (a health route), or fail with the server's log."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"server exited with {process.returncode}:\n{tail(log)}")
        with contextlib.suppress(httpx.TransportError):
            if httpx.get(url, timeout=5).status_code == 200:
                return
        time.sleep(0.2)
    raise TimeoutError(f"{url} did not answer within {timeout} s:\n{tail(log)}")


def tail(log: Path, lines: int = 30) -> str:
    """The end of a server's log, for errors."""
    return "\n".join(log.read_text(errors="replace").splitlines()[-lines:]) if log.exists() else ""


@contextlib.contextmanager
def process(argv: list[str], setup: Setup, name: str, env: dict | None = None) -> Iterator:
    """A server process in its own session, output to ``log_dir/NAME.log``, stopped whole."""
    log = setup.log_dir / f"{name}.log"
    with open(log, "ab") as out:
        child = subprocess.Popen(
            argv,
            cwd=setup.model_dir,
            env={**clean_env(), **THREADS, **(env or {})},
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        yield child, log
    finally:
        stop_group(child)


@contextlib.contextmanager
def start_floor(setup: Setup) -> Iterator[Target]:
    """The floor: a fixed answer, no model (the client's ceiling)."""
    port = free_port()
    argv = [sys.executable, str(SERVERS / "floor.py"), str(port)]
    with process(argv, setup, "floor") as (child, log):
        wait_ready(f"http://127.0.0.1:{port}/v2/health/ready", child, log)
        yield Target(
            f"http://127.0.0.1:{port}/v2/models/{MODEL_NAME}/infer", child.pid, "asyncio, no model"
        )


def aicloud_options(batching: bool) -> dict:
    """The ``inference`` options of aicloud's server: the MLP's state dict, batching or not."""
    options = {
        "model": "mlp.pt",
        "model_class": "mlp:MLP",
        "model_name": MODEL_NAME,
        "input_shape": [64],
    }
    options.update(BATCH if batching else {"max_batch_size": 1})
    return options


def endpoint_target(endpoint: dict, pid: int, settings: str) -> Target:
    """A Target from aicloud's endpoint file (its URL, and its token when it has one)."""
    token = endpoint.get("token")
    return Target(endpoint["infer_url"], pid, settings, f"Bearer {token}" if token else None)


def wait_endpoint(path: Path, alive: Callable[[], str | None], timeout: float = 180) -> dict:
    """aicloud's endpoint file once written; ``alive`` names why the server ended, if it did."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(FileNotFoundError, json.JSONDecodeError):
            return json.loads(path.read_text())
        if (why := alive()) is not None:
            raise RuntimeError(f"aicloud's server ended before serving: {why}")
        time.sleep(0.1)
    raise TimeoutError(f"{path} not written within {timeout} s")


@contextlib.contextmanager
def start_aicloud_job(setup: Setup, batching: bool) -> Iterator[Target]:
    """aicloud's server as users run it: a ``serve`` job through the job service."""
    server = setup.aicloud()
    spec = {
        "kind": "serve",
        "name": f"bench-{'on' if batching else 'off'}",
        "inference": aicloud_options(batching),
        "env": THREADS,
    }
    with server.client() as client:
        job_id = submit_job(client, spec)
        try:

            def ended() -> str | None:
                job = client.get(f"jobs/{job_id}").json()
                active = job["status"] not in ("succeeded", "failed", "cancelled")
                if active:
                    return None
                log = tail(server.run_dir(job_id) / "output.log")
                return f"{job['status']}: {job.get('reason')}\n{log}"

            endpoint_file = server.run_dir(job_id) / "outputs" / "endpoint.json"
            endpoint = wait_endpoint(endpoint_file, ended)
            words = "serve job, " + (f"batching {BATCH}" if batching else "batching off")
            yield endpoint_target(endpoint, endpoint["pid"], words)
        finally:
            cancel_and_wait(client, job_id)


@contextlib.contextmanager
def start_aicloud_module(setup: Setup, batching: bool) -> Iterator[Target]:
    """aicloud's server started by hand (``python -m aicloud.inference.server``), no job."""
    name = f"aicloud-module-{'on' if batching else 'off'}"
    endpoint_file = setup.log_dir / f"{name}-endpoint.json"
    config = {
        "options": {**aicloud_options(batching), "port": free_port()},
        "name": MODEL_NAME,
        "cwd": str(setup.model_dir),
        "endpoint_file": str(endpoint_file),
    }
    config_file = setup.log_dir / f"{name}-config.json"
    config_file.write_text(json.dumps(config))
    argv = [sys.executable, "-m", "aicloud.inference.server", f"--config={config_file}"]
    with process(argv, setup, name) as (child, log):

        def ended() -> str | None:
            return None if child.poll() is None else f"exit {child.returncode}\n{tail(log)}"

        endpoint = wait_endpoint(endpoint_file, ended)
        words = "python -m aicloud.inference.server, " + (
            f"batching {BATCH}" if batching else "batching off"
        )
        yield endpoint_target(endpoint, child.pid, words)


@contextlib.contextmanager
def start_kserve(setup: Setup) -> Iterator[Target]:
    """KServe's ``ModelServer`` with a custom ``kserve.Model``, in its own venv."""
    python = venv_python("kserve")
    port = free_port()
    flags = ["--enable_grpc=false", "--enable_latency_logging=false", "--workers=1"]
    argv = [str(python), str(SERVERS / "kserve_model.py"), f"--model_dir={setup.model_dir}"]
    argv += [f"--http_port={port}", *flags]
    with process(argv, setup, "kserve") as (child, log):
        wait_ready(f"http://127.0.0.1:{port}/v2/health/ready", child, log)
        yield Target(
            f"http://127.0.0.1:{port}/v2/models/{MODEL_NAME}/infer",
            child.pid,
            "kserve 0.21.0 ModelServer: 1 uvicorn worker, no per-request log, gRPC off",
        )


@contextlib.contextmanager
def start_mlserver(setup: Setup, batching: bool) -> Iterator[Target]:
    """MLServer with a custom ``MLModel`` runtime, in its own venv (adaptive batching or not)."""
    python = venv_python("mlserver")
    name = f"mlserver-{'on' if batching else 'off'}"
    folder = setup.log_dir / name
    folder.mkdir(exist_ok=True)
    for source in ("mlp.py", "mlserver_runtime.py"):
        (folder / source).write_bytes((SERVERS / source).read_bytes())
    http, grpc, metrics = free_port(), free_port(), free_port()
    settings = {"debug": False, "host": "127.0.0.1", "http_port": http, "grpc_port": grpc}
    settings["metrics_port"] = metrics
    (folder / "settings.json").write_text(json.dumps(settings))
    model = {
        "name": MODEL_NAME,
        "implementation": "mlserver_runtime.MLPRuntime",
        "parameters": {"uri": str(setup.model_dir)},
    }
    if batching:
        model.update(
            max_batch_size=BATCH["max_batch_size"], max_batch_time=BATCH["max_wait_ms"] / 1000
        )
    (folder / "model-settings.json").write_text(json.dumps(model))
    argv = [str(python.with_name("mlserver")), "start", str(folder)]
    with process(argv, setup, name, {"PYTHONPATH": str(folder)}) as (child, log):
        wait_ready(f"http://127.0.0.1:{http}/v2/models/{MODEL_NAME}/ready", child, log)
        words = "mlserver 1.7.1: 1 inference worker (parallel_workers default), debug off, " + (
            f"adaptive batching max_batch_size {BATCH['max_batch_size']}, "
            f"max_batch_time {BATCH['max_wait_ms'] / 1000} s"
            if batching
            else "no adaptive batching"
        )
        yield Target(f"http://127.0.0.1:{http}/v2/models/{MODEL_NAME}/infer", child.pid, words)
