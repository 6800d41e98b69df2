"""The Open Inference Protocol (v2) REST model server: ``python -m aicloud.inference.server``.

Routes (``NAME`` is the model's name, ``VERSION`` its only version, ``1``):

- ``GET /v2/health/live``, ``GET /v2/health/ready``: 200 once live / once the model is loaded;
- ``GET /v2``: server metadata;
- ``GET /v2/models/NAME[/versions/VERSION]``: model metadata (inputs and outputs);
- ``GET /v2/models/NAME[/versions/VERSION]/ready``;
- ``POST /v2/models/NAME[/versions/VERSION]/infer``;
- ``GET /v2/models/NAME/stats``: request, row and model-call counts (aicloud's own extension).

Errors are ``{"error": message}`` with a 4xx status; the server keeps serving. It binds
127.0.0.1 unless ``--host`` (or the config's ``host``) says otherwise, on a free port unless one
is given, loads the model in a thread while it already answers ``live``, and then writes the
endpoint file that clients find it by. The URL it advertises there is the config's
``advertise_url``, else ``http://<host>:<port>``; a server on every address (``0.0.0.0``)
advertises this machine's address (a pod's IP), since ``0.0.0.0`` reaches nobody.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import socket
import sys
from pathlib import Path
from typing import Any

from tornado import httpserver, netutil, web

from aicloud import __version__
from aicloud.inference.batching import DynamicBatcher
from aicloud.inference.options import InferenceOptions
from aicloud.inference.protocol import (
    INPUT_NAME,
    OUTPUT_NAME,
    ProtocolError,
    TensorSpec,
    infer_response,
    parse_infer_request,
)

VERSION = "1"
MAX_BODY = 256 * 2**20
DEFAULT_HOST = "127.0.0.1"
ANY_ADDRESS = ("0.0.0.0", "::", "")


class ModelState:
    """The model behind the routes: its name, tensors, batcher, and whether it is loaded."""

    def __init__(self, name: str, options: InferenceOptions, cwd: Path):
        self.name, self.options, self.cwd = name, options, cwd
        self.ready = False
        self.platform = ""
        self.spec = TensorSpec(INPUT_NAME, options.datatype, options.input_shape)
        self.output: dict[str, Any] = {"name": OUTPUT_NAME, "datatype": "FP32", "shape": [-1]}
        self.batcher: DynamicBatcher | None = None

    def load(self) -> None:
        """Load the model and learn its output from one row of zeros when its shape is known."""
        import numpy as np

        from aicloud.inference.loading import NUMPY_TYPES, datatype_of, load_model

        loaded = load_model(self.options, self.cwd)
        self.platform = loaded.platform
        self.spec = TensorSpec(INPUT_NAME, self.options.datatype, loaded.row_shape)
        if loaded.row_shape is not None:
            row = [1 if d == -1 else d for d in loaded.row_shape]
            probe = loaded.predict(np.zeros([1, *row], dtype=NUMPY_TYPES[self.options.datatype]))
            self.output = {
                "name": OUTPUT_NAME,
                "datatype": datatype_of(probe).value,
                "shape": [-1, *probe.shape[1:]],
            }
        self.batcher = DynamicBatcher(
            loaded.predict, self.options.max_batch_size, self.options.max_wait_ms / 1000
        )
        self.ready = True

    def metadata(self) -> dict[str, Any]:
        """The model metadata document."""
        row = self.spec.row_shape if self.spec.row_shape is not None else [-1]
        return {
            "name": self.name,
            "versions": [VERSION],
            "platform": self.platform,
            "inputs": [
                {"name": INPUT_NAME, "datatype": self.spec.datatype.value, "shape": [-1, *row]}
            ],
            "outputs": [self.output],
            "parameters": {
                "max_batch_size": self.options.max_batch_size,
                "max_wait_ms": self.options.max_wait_ms,
            },
        }


class V2Handler(web.RequestHandler):
    """Base of the routes: JSON in and out, errors as ``{"error": ...}``."""

    def initialize(self, state: ModelState) -> None:
        self.state = state

    def write_json(self, document: Any, status: int = 200) -> None:
        self.set_status(status)
        self.set_header("Content-Type", "application/json")
        self.finish(json.dumps(document))

    def write_error(self, status_code: int, **kwargs) -> None:
        message = self._reason
        exc = kwargs.get("exc_info", (None, None))[1]
        if isinstance(exc, web.HTTPError) and exc.log_message:
            message = exc.log_message % exc.args if exc.args else exc.log_message
        self.set_header("Content-Type", "application/json")
        self.finish(json.dumps({"error": message}))

    def model(self, name: str, version: str | None) -> ModelState:
        if name != self.state.name:
            raise web.HTTPError(
                404, "model %r not found; this server serves %r", name, self.state.name
            )
        if version is not None and version != VERSION:
            raise web.HTTPError(
                404, "model %r has no version %r; it has %r", name, version, VERSION
            )
        return self.state

    def log_exception(self, typ, value, tb) -> None:
        if not isinstance(value, web.HTTPError):  # 4xx are the client's; no traceback
            super().log_exception(typ, value, tb)


class LiveHandler(V2Handler):
    def get(self):
        self.write_json({"live": True})


class ReadyHandler(V2Handler):
    def get(self):
        self.write_json({"ready": self.state.ready}, 200 if self.state.ready else 503)


class ServerMetadataHandler(V2Handler):
    def get(self):
        self.write_json({"name": "aicloud", "version": __version__, "extensions": ["stats"]})


class ModelMetadataHandler(V2Handler):
    def get(self, name: str, version: str | None = None):
        self.write_json(self.model(name, version).metadata())


class ModelReadyHandler(V2Handler):
    def get(self, name: str, version: str | None = None):
        state = self.model(name, version)
        self.write_json({"name": name, "ready": state.ready}, 200 if state.ready else 503)


class ModelStatsHandler(V2Handler):
    def get(self, name: str):
        state = self.model(name, None)
        stats = state.batcher.stats.model() if state.batcher else {}
        self.write_json({"name": name, "stats": stats})


class InferHandler(V2Handler):
    async def post(self, name: str, version: str | None = None):
        state = self.model(name, version)
        if not state.ready or state.batcher is None:
            raise web.HTTPError(503, "model %r is still loading", name)
        try:
            array, request = parse_infer_request(self.request.body, state.spec)
        except ProtocolError as e:
            raise web.HTTPError(400, "%s", e) from None
        try:
            output = await state.batcher.submit(array)
        except Exception as e:
            first = (str(e).strip().splitlines() or [""])[0][:500]
            raise web.HTTPError(
                400, "the model cannot run on this input: %s: %s", type(e).__name__, first
            ) from None
        self.write_json(infer_response(name, VERSION, output, request))


class NotFoundHandler(V2Handler):
    def prepare(self):
        raise web.HTTPError(404, "no route %s", self.request.path)


def make_app(state: ModelState) -> web.Application:
    """The tornado application of the v2 routes."""
    model = r"/v2/models/(?P<name>[^/]+)(?:/versions/(?P<version>[^/]+))?"
    args = {"state": state}
    return web.Application(
        [
            (r"/v2/health/live", LiveHandler, args),
            (r"/v2/health/ready", ReadyHandler, args),
            (r"/v2/?", ServerMetadataHandler, args),
            (r"/v2/models/(?P<name>[^/]+)/stats", ModelStatsHandler, args),
            (rf"{model}/ready", ModelReadyHandler, args),
            (rf"{model}/infer", InferHandler, args),
            (rf"{model}/?", ModelMetadataHandler, args),
        ],
        default_handler_class=NotFoundHandler,
        default_handler_args=args,
    )


def write_endpoint(path: Path, url: str, name: str) -> None:
    """Write the endpoint file atomically: how clients find this server."""
    path.parent.mkdir(parents=True, exist_ok=True)
    document = {
        "url": url,
        "model": name,
        "protocol": "v2",
        "infer_url": f"{url}/v2/models/{name}/infer",
        "pid": os.getpid(),
    }
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


async def serve(
    state: ModelState,
    port: int,
    endpoint_file: Path | None,
    host: str = DEFAULT_HOST,
    advertise_url: str | None = None,
) -> None:
    """Listen, load the model, announce the endpoint, and serve until SIGTERM or SIGINT."""
    sockets = netutil.bind_sockets(port, address=host or None)
    server = httpserver.HTTPServer(make_app(state), max_body_size=MAX_BODY, xheaders=False)
    server.add_sockets(sockets)
    bound = sockets[0].getsockname()[1]
    url = (advertise_url or advertised_url(host, bound)).rstrip("/")
    where = url if url == f"http://{host}:{bound}" else f"{url} (bound to {host}:{bound})"
    print(f"listening on {where}; loading {state.options.model}", flush=True)
    await asyncio.get_running_loop().run_in_executor(None, state.load)
    print(f"serving model {state.name!r} at {url}/v2/models/{state.name}", flush=True)
    if endpoint_file is not None:
        write_endpoint(endpoint_file, url, state.name)
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        asyncio.get_running_loop().add_signal_handler(sig, stop.set)
    await stop.wait()
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
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument(
        "--host",
        default=DEFAULT_HOST,
        help="without --config: the address to bind (0.0.0.0 in a pod, for its probes)",
    )
    parser.add_argument("--endpoint-file", type=Path)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Entry point of the model server."""
    args = parse_args(argv)
    if args.config is not None:
        config = json.loads(args.config.read_text())
        options = InferenceOptions.model_validate(config["options"])
        name, cwd = config["name"], Path(config["cwd"])
        endpoint_file = Path(config["endpoint_file"])
        host = config.get("host") or DEFAULT_HOST
        advertise_url = config.get("advertise_url")
    elif args.model:
        fields: dict[str, Any] = {
            "model": args.model,
            "datatype": args.datatype,
            "max_batch_size": args.max_batch_size,
            "max_wait_ms": args.max_wait_ms,
        }
        if args.format:
            fields["format"] = args.format
        if args.input_shape:
            fields["input_shape"] = [int(d) for d in args.input_shape.split(",")]
        options, name, cwd = InferenceOptions.model_validate(fields), args.name, Path.cwd()
        endpoint_file, host, advertise_url = args.endpoint_file, args.host, None
    else:
        print("aicloud: give --config, or --model", file=sys.stderr)
        return 2
    port = options.port if options.port is not None else args.port
    from aicloud.inference.loading import ModelLoadError
    from aicloud.inference.runner import fail

    try:
        state = ModelState(name, options, cwd)
        asyncio.run(serve(state, port, endpoint_file, host, advertise_url))
    except ModelLoadError as e:
        return fail(str(e))
    except OSError as e:
        return fail(f"inference.port: cannot listen on {host}:{port}: {e.strerror or e}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
