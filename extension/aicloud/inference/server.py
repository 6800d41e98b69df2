"""The Open Inference Protocol (v2) model server: ``python -m aicloud.inference.server``.

The routes are in :mod:`aicloud.inference.routes`. The server binds 127.0.0.1 unless
``--host`` (or the config's ``host``) says otherwise, on a free port unless one is given,
loads the model in a thread while it already answers ``live``, starts the gRPC server when
``grpc_port`` is set, and then writes the endpoint file that clients find it by. The URL it
advertises there is the config's ``advertise_url``, else ``http://<host>:<port>``; a server
on every address (``0.0.0.0``) advertises this machine's address (a pod's IP), since
``0.0.0.0`` reaches nobody. With ``workers`` above 1 it spawns that many processes in all on
the same port (:mod:`aicloud.inference.workers`). A config with ``token_file`` turns on
token authentication (:mod:`aicloud.inference.auth`).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import signal
import socket
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aicloud.inference.options import InferenceOptions
from aicloud.inference.workers import MULTIPROC_ENV

MAX_BODY = 256 * 2**20
DEFAULT_HOST = "127.0.0.1"
ANY_ADDRESS = ("0.0.0.0", "::", "")
WORKER_READY_TIMEOUT = 600.0


@dataclass
class ServerConfig:
    """What one server process serves, where, and for whom."""

    options: InferenceOptions
    name: str
    cwd: Path
    endpoint_file: Path | None
    host: str = DEFAULT_HOST
    advertise_url: str | None = None
    token_file: Path | None = None  # None: no authentication
    worker_index: int = 0
    bound_port: int | None = None


def write_endpoint(path: Path, url: str, name: str, grpc_port: int | None = None) -> None:
    """Write the endpoint file atomically: how clients find this server."""
    path.parent.mkdir(parents=True, exist_ok=True)
    document: dict[str, Any] = {
        "url": url,
        "model": name,
        "protocol": "v2",
        "infer_url": f"{url}/v2/models/{name}/infer",
        "pid": os.getpid(),
    }
    if grpc_port is not None:
        host = url.split("://", 1)[-1].rsplit(":", 1)[0]
        document.update(grpc_port=grpc_port, grpc_url=f"{host}:{grpc_port}")
    temporary = path.with_name(f".{path.name}.tmp")
    temporary.write_text(json.dumps(document, indent=2))
    os.replace(temporary, path)


def advertised_url(host: str, port: int) -> str:
    """``http://<host>:<port>``; for a server on every address, this machine's own address."""
    if host in ANY_ADDRESS:
        name = socket.gethostname()
        try:
            host = socket.gethostbyname(name)  # the pod's IP, as ``hostname -i`` gives it
        except OSError:
            host = name
    if ":" in host:
        host = f"[{host}]"
    return f"http://{host}:{port}"


async def start_grpc(state, host: str, port: int, auth=None):
    """The gRPC server of ``state`` (``aicloud.inference.grpc_server``) on ``port``, behind the
    same token check as the REST routes."""
    from aicloud.inference.grpc_server import start_grpc_server

    return await start_grpc_server(state, host, port, authorize=auth.check if auth else None)


def _stop_event() -> asyncio.Event:
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        asyncio.get_running_loop().add_signal_handler(sig, stop.set)
    return stop


async def serve(config: ServerConfig, argv: list[str]) -> None:
    """Listen, load the model, announce the endpoint, and serve until SIGTERM or SIGINT."""
    from tornado import httpserver, netutil

    from aicloud.inference import workers as worker_processes
    from aicloud.inference.auth import ServingAuth
    from aicloud.inference.metrics import ServingMetrics
    from aicloud.inference.routes import make_app
    from aicloud.inference.state import ModelState

    options, primary = config.options, config.worker_index == 0
    port = config.bound_port if config.bound_port is not None else options.port or 0
    metrics = ServingMetrics(config.name)
    state = ModelState(config.name, options, config.cwd, observer=metrics)
    auth = None
    if config.token_file is not None:
        given = None if primary else config.token_file.read_text()
        auth = ServingAuth.for_job(config.token_file, given)
        state.authorize = auth.check
    loop = asyncio.get_running_loop()
    stop = _stop_event()
    if not primary:  # load first: the kernel sends connections to a listening socket at once
        await loop.run_in_executor(None, state.load)
    sockets = netutil.bind_sockets(
        port, address=config.host or None, reuse_port=options.workers > 1
    )
    server = httpserver.HTTPServer(
        make_app(state, auth, metrics), max_body_size=MAX_BODY, decompress_request=True
    )
    server.add_sockets(sockets)
    if not primary:
        shared = Path(os.environ[MULTIPROC_ENV])
        worker_processes.ready_marker(shared, config.worker_index).touch()
        watcher = asyncio.create_task(worker_processes.watch_parent(stop))
        await stop.wait()
        watcher.cancel()
        server.stop()
        return
    bound = sockets[0].getsockname()[1]
    url = (config.advertise_url or advertised_url(config.host, bound)).rstrip("/")
    where = (
        url if url == f"http://{config.host}:{bound}" else f"{url} (bound to {config.host}:{bound})"
    )
    print(f"listening on {where}; loading {options.model}", flush=True)
    shared = Path(os.environ[MULTIPROC_ENV]) if options.workers > 1 else None
    children = worker_processes.spawn(argv, options.workers, bound, shared) if shared else []
    grpc = None
    try:
        await loop.run_in_executor(None, state.load)
        if options.grpc_port is not None:
            grpc = await start_grpc(state, config.host, options.grpc_port, auth)
            print(f"gRPC on {config.host}:{grpc.port}", flush=True)
        if shared is not None:
            await worker_processes.wait_ready(children, shared, WORKER_READY_TIMEOUT)
        processes = f" in {options.workers} processes" if children else ""
        print(
            f"serving model {state.name!r} at {url}/v2/models/{state.name}{processes}", flush=True
        )
        if config.endpoint_file is not None:
            write_endpoint(config.endpoint_file, url, state.name, grpc.port if grpc else None)
        await stop.wait()
    finally:
        worker_processes.stop(children)
        if grpc is not None:
            await grpc.stop()
        server.stop()
        if state.batcher is not None:
            await state.batcher.close()
    print("stopped", flush=True)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Serve one model over the Open Inference Protocol v2."
    )
    parser.add_argument("--config", type=Path, help="a JSON file written by the serve launcher")
    parser.add_argument("--model", help="without --config: the model path")
    parser.add_argument("--format")
    parser.add_argument("--name", default="model", help="the model's name in /v2/models/NAME")
    parser.add_argument("--input-shape", help="one row's shape, e.g. 4 or 3,32,32 (-1: any)")
    parser.add_argument("--datatype", default="FP32")
    parser.add_argument("--max-batch-size", type=int, default=32)
    parser.add_argument("--max-wait-ms", type=float, default=5.0)
    parser.add_argument("--max-queue", type=int, help="requests waiting before 503s")
    parser.add_argument("--workers", type=int, help="server processes on the port")
    parser.add_argument("--threads", type=int, help="the model's intra-op threads per process")
    parser.add_argument("--model-thread", action="store_true", help="run the model in a thread")
    parser.add_argument("--grpc-port", type=int, help="also serve v2 gRPC here (0: a free port)")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument(
        "--host",
        default=DEFAULT_HOST,
        help="without --config: the address to bind (0.0.0.0 in a pod, for its probes)",
    )
    parser.add_argument("--endpoint-file", type=Path)
    parser.add_argument("--token-file", type=Path, help="require a token, written here (0600)")
    parser.add_argument("--worker-index", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--bound-port", type=int, help=argparse.SUPPRESS)
    return parser.parse_args(argv)


CLI_OPTIONS = {
    "max_queue": "max_queue",
    "workers": "workers",
    "threads": "threads",
    "grpc_port": "grpc_port",
}


def server_config(args: argparse.Namespace) -> ServerConfig | None:
    """The config of ``--config``, or of ``--model`` and its flags; None without either."""
    if args.config is not None:
        config = json.loads(args.config.read_text())
        token_file = config.get("token_file")
        result = ServerConfig(
            InferenceOptions.model_validate(config["options"]),
            config["name"],
            Path(config["cwd"]),
            Path(config["endpoint_file"]),
            config.get("host") or DEFAULT_HOST,
            config.get("advertise_url"),
            Path(token_file) if token_file else None,
        )
    elif args.model:
        fields: dict[str, Any] = {
            "model": args.model,
            "datatype": args.datatype,
            "max_batch_size": args.max_batch_size,
            "max_wait_ms": args.max_wait_ms,
            "model_thread": args.model_thread,
        }
        fields.update(
            {
                key: getattr(args, flag)
                for key, flag in CLI_OPTIONS.items()
                if getattr(args, flag) is not None
            }
        )
        if args.format:
            fields["format"] = args.format
        if args.input_shape:
            fields["input_shape"] = [int(d) for d in args.input_shape.split(",")]
        if args.port:
            fields["port"] = args.port
        result = ServerConfig(
            InferenceOptions.model_validate(fields),
            args.name,
            Path.cwd(),
            args.endpoint_file,
            args.host,
            token_file=args.token_file,
        )
    else:
        return None
    result.worker_index, result.bound_port = args.worker_index, args.bound_port
    return result


def main(argv: list[str] | None = None) -> int:
    """Entry point of the model server."""
    argv = sys.argv[1:] if argv is None else argv
    args = parse_args(argv)
    config = server_config(args)
    if config is None:
        print("aicloud: give --config, or --model", file=sys.stderr)
        return 2
    from aicloud.inference.loading import ModelLoadError
    from aicloud.inference.runner import fail

    shared = None
    if config.options.workers > 1 and config.worker_index == 0:
        # Before prometheus_client is imported: the workers' metrics go to files here.
        shared = tempfile.mkdtemp(prefix="aicloud-serve-")
        os.environ[MULTIPROC_ENV] = shared
    try:
        asyncio.run(serve(config, argv))
    except ModelLoadError as e:
        return fail(str(e))
    except OSError as e:
        where = f"{config.host}:{config.options.port or 0}"
        return fail(f"inference.port: cannot listen on {where}: {e.strerror or e}")
    finally:
        if shared is not None:
            shutil.rmtree(shared, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
