"""The servers ``bench/serving.py`` compares, each started and stopped the same way.

Every variant serves the same MLP (``serving_servers/mlp.py``: the state dict loaded into one
``nn.Sequential``) as ``/v2/models/mlp/infer`` on 127.0.0.1, from the same model folder, with
one torch thread (``THREADS``) in each of ``Setup.workers`` processes. Each ``start_*`` is a
context manager that yields a :class:`Target` once the model answers and stops the server's
whole process tree on the way out.
"""

from __future__ import annotations

import contextlib
import json
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from _common import Server, cancel_and_wait, clean_env, free_port, stop_group, submit_job
from aicloud.launchers.serve import TOKEN_FILE  # the job's serving token (0600)
from serving_venvs import venv_python

SERVERS = Path(__file__).parent / "serving_servers"
MODEL_NAME = "mlp"
THREADS = {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
BATCH = {"max_batch_size": 32, "max_wait_ms": 2}  # aicloud's and MLServer's batching, alike
ENDED = ("succeeded", "failed", "cancelled")


@dataclass
class Target:
    """A started server: where to POST, whose CPU to count, what header it needs."""

    infer_url: str
    pid: int
    settings: str  # what runs, in words, for the results
    authorization: str | None = None


@dataclass
class Setup:
    """What every variant shares: folders, aicloud's server, processes, aicloud's options."""

    model_dir: Path
    log_dir: Path
    aicloud: Callable[[], Server]  # the jupyter server with aicloud, started on first use
    workers: int = 1  # server processes of every variant (aicloud, KServe, MLServer)
    aicloud_extra: dict[str, Any] = field(default_factory=dict)  # --aicloud-option KEY=VALUE


def tail(log: Path, lines: int = 30) -> str:
    """The end of a server's log, for errors."""
    return "\n".join(log.read_text(errors="replace").splitlines()[-lines:]) if log.exists() else ""


def wait_ready(url: str, process: subprocess.Popen, log: Path, timeout: float = 180) -> None:
    """Wait until ``url`` answers 200 (a health route), or fail with the server's log."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server exited with {process.returncode}:\n{tail(log)}")
        with contextlib.suppress(httpx.TransportError):
            if httpx.get(url, timeout=5).status_code == 200:
                return
        time.sleep(0.2)
    raise TimeoutError(f"{url} did not answer within {timeout} s:\n{tail(log)}")


@contextlib.contextmanager
def process(
    argv: list[str], setup: Setup, name: str, env: dict[str, str] | None = None
) -> Iterator[tuple[subprocess.Popen, Path]]:
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


def local_url(port: int) -> str:
    """The infer URL of a server on 127.0.0.1."""
    return f"http://127.0.0.1:{port}/v2/models/{MODEL_NAME}/infer"


@contextlib.contextmanager
def start_floor(setup: Setup) -> Iterator[Target]:
    """The floor: a fixed answer, no model (the client's ceiling)."""
    port = free_port()
    argv = [sys.executable, str(SERVERS / "floor.py"), str(port)]
    with process(argv, setup, "floor") as (child, log):
        wait_ready(f"http://127.0.0.1:{port}/v2/health/ready", child, log)
        yield Target(local_url(port), child.pid, "asyncio, a fixed answer, no model")


# -- aicloud ----------------------------------------------------------------------------------


def aicloud_options(setup: Setup, batching: bool) -> dict[str, Any]:
    """The ``inference`` options of aicloud's server: the MLP's state dict, batching or not."""
    from aicloud.inference.options import InferenceOptions

    options: dict[str, Any] = {
        "model": "mlp.pt",
        "model_class": "mlp:MLP",
        "model_name": MODEL_NAME,
        "input_shape": [64],
    }
    options.update(BATCH if batching else {"max_batch_size": 1})
    known = InferenceOptions.model_fields
    options.update({k: v for k, v in (("threads", 1), ("workers", setup.workers)) if k in known})
    options.update(setup.aicloud_extra)
    return options


def describe_aicloud(how: str, options: dict[str, Any]) -> str:
    """What aicloud's server ran with, in words: the options beyond the model's."""
    shown = {k: v for k, v in options.items() if k not in ("model", "model_name", "input_shape")}
    return f"{how}, {json.dumps(shown, sort_keys=True)}"


def authorization(token_file: Path) -> str | None:
    """The header for aicloud's serving token, once written; None for a server without one."""
    with contextlib.suppress(FileNotFoundError):
        return f"token {token_file.read_text().strip()}"
    return None


def wait_endpoint(path: Path, ended: Callable[[], str | None], timeout: float = 180) -> dict:
    """aicloud's endpoint file once written; ``ended`` says why the server ended, if it did."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(FileNotFoundError, json.JSONDecodeError):
            return json.loads(path.read_text())
        if (why := ended()) is not None:
            raise RuntimeError(f"aicloud's server ended before serving: {why}")
        time.sleep(0.1)
    raise TimeoutError(f"{path} not written within {timeout} s")


@contextlib.contextmanager
def start_aicloud_job(setup: Setup, batching: bool) -> Iterator[Target]:
    """aicloud's server as users run it: a ``serve`` job through the job service."""
    server = setup.aicloud()
    options = aicloud_options(setup, batching)
    spec = {
        "kind": "serve",
        "name": f"bench-{'on' if batching else 'off'}",
        "inference": options,
        "env": THREADS,
    }
    with server.client() as client:
        job_id = submit_job(client, spec)
        run_dir = server.run_dir(job_id)

        def ended() -> str | None:
            job = client.get(f"jobs/{job_id}").json()
            if job["status"] not in ENDED:
                return None
            return f"{job['status']}: {job.get('reason')}\n{tail(run_dir / 'output.log')}"

        try:
            endpoint = wait_endpoint(run_dir / "outputs" / "endpoint.json", ended)
            yield Target(
                endpoint["infer_url"],
                endpoint["pid"],
                describe_aicloud("serve job", options),
                authorization(run_dir / TOKEN_FILE),
            )
        finally:
            cancel_and_wait(client, job_id)


@contextlib.contextmanager
def start_aicloud_module(setup: Setup, batching: bool) -> Iterator[Target]:
    """aicloud's server started by hand (``python -m aicloud.inference.server``), no job."""
    name = f"aicloud-module-{'on' if batching else 'off'}"
    endpoint_file = setup.log_dir / f"{name}-endpoint.json"
    token_file = setup.log_dir / f"{name}-token"
    options = {**aicloud_options(setup, batching), "port": free_port()}
    config = {
        "options": options,
        "name": MODEL_NAME,
        "cwd": str(setup.model_dir),
        "endpoint_file": str(endpoint_file),
        "token_file": str(token_file),
    }
    config_file = setup.log_dir / f"{name}-config.json"
    config_file.write_text(json.dumps(config))
    argv = [sys.executable, "-m", "aicloud.inference.server", f"--config={config_file}"]
    with process(argv, setup, name) as (child, log):

        def ended() -> str | None:
            return None if child.poll() is None else f"exit {child.returncode}\n{tail(log)}"

        endpoint = wait_endpoint(endpoint_file, ended)
        yield Target(
            endpoint["infer_url"],
            child.pid,
            describe_aicloud("python -m aicloud.inference.server", options),
            authorization(token_file),
        )


# -- peers ------------------------------------------------------------------------------------


@contextlib.contextmanager
def start_kserve(setup: Setup) -> Iterator[Target]:
    """KServe's ``ModelServer`` with a custom ``kserve.Model``, in its own venv."""
    python = venv_python("kserve")
    port = free_port()
    flags = ["--enable_grpc=false", "--enable_latency_logging=false", f"--workers={setup.workers}"]
    argv = [str(python), str(SERVERS / "kserve_model.py"), f"--model_dir={setup.model_dir}"]
    with process([*argv, f"--http_port={port}", *flags], setup, "kserve") as (child, log):
        wait_ready(f"http://127.0.0.1:{port}/v2/health/ready", child, log)
        words = (
            f"kserve 0.21.0 ModelServer: {setup.workers} uvicorn worker(s), "
            "no per-request log lines, gRPC off"
        )
        yield Target(local_url(port), child.pid, words)


def mlserver_folder(setup: Setup, name: str, batching: bool) -> tuple[Path, int]:
    """MLServer's model repository (runtime, settings, model settings); its HTTP port."""
    folder = setup.log_dir / name
    folder.mkdir(exist_ok=True)
    for source in ("mlp.py", "mlserver_runtime.py"):
        (folder / source).write_bytes((SERVERS / source).read_bytes())
    http = free_port()
    settings = {
        "debug": False,
        "host": "127.0.0.1",
        "http_port": http,
        "grpc_port": free_port(),
        "metrics_port": free_port(),
        "parallel_workers": setup.workers,
    }
    (folder / "settings.json").write_text(json.dumps(settings))
    model: dict[str, Any] = {
        "name": MODEL_NAME,
        "implementation": "mlserver_runtime.MLPRuntime",
        "parameters": {"uri": str(setup.model_dir)},
    }
    if batching:
        model["max_batch_size"] = BATCH["max_batch_size"]
        model["max_batch_time"] = BATCH["max_wait_ms"] / 1000
    (folder / "model-settings.json").write_text(json.dumps(model))
    return folder, http


@contextlib.contextmanager
def start_mlserver(setup: Setup, batching: bool) -> Iterator[Target]:
    """MLServer with a custom ``MLModel`` runtime, in its own venv (adaptive batching or not)."""
    python = venv_python("mlserver")
    name = f"mlserver-{'on' if batching else 'off'}"
    folder, port = mlserver_folder(setup, name, batching)
    argv = [str(python.with_name("mlserver")), "start", str(folder)]
    with process(argv, setup, name, {"PYTHONPATH": str(folder)}) as (child, log):
        wait_ready(f"http://127.0.0.1:{port}/v2/models/{MODEL_NAME}/ready", child, log)
        batching_words = (
            f"adaptive batching max_batch_size {BATCH['max_batch_size']}, "
            f"max_batch_time {BATCH['max_wait_ms'] / 1000} s"
            if batching
            else "no adaptive batching"
        )
        words = (
            f"mlserver 1.7.1: parallel_workers {setup.workers}, debug off, "
            f"metrics on (its default), {batching_words}"
        )
        yield Target(local_url(port), child.pid, words)
