"""The routes of the Open Inference Protocol (v2) REST model server.

Routes (``NAME`` is the model's name, ``VERSION`` its only version, ``1``):

- ``GET /v2/health/live``, ``GET /v2/health/ready``: 200 once live / once the model is loaded
  (the only routes open without a token, for Kubernetes' probes);
- ``GET /v2``: server metadata;
- ``GET /v2/models/NAME[/versions/VERSION]``: model metadata (inputs and outputs);
- ``GET /v2/models/NAME[/versions/VERSION]/ready``;
- ``GET /v2/models/NAME[/versions/VERSION]/config``: Triton's model configuration;
- ``GET /v2/models[/NAME[/versions/VERSION]]/stats``: the statistics extension;
- ``POST /v2/repository/index``: the model repository extension's index (this one model);
- ``POST /v2/models/NAME[/versions/VERSION]/infer``: JSON or binary tensor data;
- ``GET /metrics``: Prometheus metrics.

Errors are ``{"error": message}`` with a 4xx status (503 with ``Retry-After`` when the queue
is full); the server keeps serving. The processes and their lifecycle are in
:mod:`aicloud.inference.server`.
"""

from __future__ import annotations

import json
import time
from typing import Any

from tornado import web

from aicloud import __version__
from aicloud.inference.auth import AuthError, ServingAuth
from aicloud.inference.binary import HEADER_LENGTH
from aicloud.inference.metrics import ServingMetrics
from aicloud.inference.protocol import ProtocolError, infer_response, parse_infer_request
from aicloud.inference.state import (
    VERSION,
    ModelCallError,
    ModelNotReady,
    ModelState,
    QueueFull,
)

EXTENSIONS = ["binary_tensor_data", "statistics", "model_configuration", "model_repository"]
RETRY_AFTER_SECONDS = 1


class V2Handler(web.RequestHandler):
    """Base of the routes: a token on every route but the probes; JSON errors."""

    public = False
    retry_after: int | None = None

    def initialize(
        self, state: ModelState, auth: ServingAuth | None, metrics: ServingMetrics
    ) -> None:
        self.state, self.auth, self.metrics = state, auth, metrics

    async def prepare(self) -> None:
        if self.auth is not None and not self.public:
            try:
                await self.auth.check(self.request.headers.get("Authorization"))
            except AuthError as e:
                raise web.HTTPError(e.status, "%s", e) from None

    def write_json(self, document: Any, status: int = 200) -> None:
        self.set_status(status)
        self.set_header("Content-Type", "application/json")
        self.finish(json.dumps(document))

    def write_error(self, status_code: int, **kwargs) -> None:
        message = self._reason
        exc = kwargs.get("exc_info", (None, None))[1]
        if isinstance(exc, web.HTTPError) and exc.log_message:
            message = exc.log_message % exc.args if exc.args else exc.log_message
        if self.retry_after is not None:
            self.set_header("Retry-After", str(self.retry_after))
        if status_code == 401:
            self.set_header("WWW-Authenticate", 'Bearer realm="aicloud model server"')
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
    public = True

    def get(self):
        self.write_json({"live": True})


class ReadyHandler(V2Handler):
    public = True

    def get(self):
        self.write_json({"ready": self.state.ready}, 200 if self.state.ready else 503)


class ServerMetadataHandler(V2Handler):
    def get(self):
        self.write_json({"name": "aicloud", "version": __version__, "extensions": EXTENSIONS})


class ModelMetadataHandler(V2Handler):
    def get(self, name: str, version: str | None = None):
        self.write_json(self.model(name, version).metadata())


class ModelReadyHandler(V2Handler):
    def get(self, name: str, version: str | None = None):
        state = self.model(name, version)
        self.write_json({"name": name, "ready": state.ready}, 200 if state.ready else 503)


class ModelConfigHandler(V2Handler):
    def get(self, name: str, version: str | None = None):
        state = self.model(name, version)
        if not state.ready:
            raise web.HTTPError(503, "model %r is still loading", name)
        self.write_json(state.config())


class ModelStatsHandler(V2Handler):
    def get(self, name: str | None = None, version: str | None = None):
        state = self.model(name, version) if name is not None else self.state
        self.write_json({"model_stats": [state.statistics()]})


class RepositoryIndexHandler(V2Handler):
    def post(self):
        body = json.loads(self.request.body or b"{}") if self.request.body.strip() else {}
        if not isinstance(body, dict):
            raise web.HTTPError(400, "body: must be a JSON object")
        entry = self.state.repository_entry()
        if body.get("ready") and entry["state"] != "READY":
            self.write_json([])
            return
        self.write_json([entry])


class MetricsHandler(V2Handler):
    def get(self):
        data, content_type = self.metrics.exposition()
        self.set_header("Content-Type", content_type)
        self.finish(data)


class InferHandler(V2Handler):
    """``POST .../infer``: decode, run through the batcher, encode; timed for the stats."""

    async def post(self, name: str, version: str | None = None):
        state = self.model(name, version)
        stats = state.stats.phases
        began = time.perf_counter_ns()
        try:
            request = parse_infer_request(
                self.request.body, state.spec, self.request.headers.get(HEADER_LENGTH)
            )
        except ProtocolError as e:
            raise web.HTTPError(400, "%s", e) from None
        decoded = time.perf_counter_ns()
        stats["compute_input"].add(decoded - began)
        try:
            output = await state.infer(request.array)
        except ModelNotReady as e:
            raise web.HTTPError(503, "%s", e) from None
        except QueueFull as e:
            self.retry_after = RETRY_AFTER_SECONDS  # send_error clears headers set here
            raise web.HTTPError(503, "the model server is busy: %s", e) from None
        except ModelCallError as e:
            raise web.HTTPError(400, "%s", e) from None
        encoding = time.perf_counter_ns()
        try:
            body, header_length = infer_response(name, VERSION, output, request)
        except ProtocolError as e:
            raise web.HTTPError(400, "%s", e) from None
        if header_length is None:
            self.set_header("Content-Type", "application/json")
        else:
            self.set_header("Content-Type", "application/octet-stream")
            self.set_header(HEADER_LENGTH, str(header_length))
        done = time.perf_counter_ns()
        stats["compute_output"].add(done - encoding)
        stats["success"].add(done - began)
        self.finish(body)

    def on_finish(self) -> None:
        status = self.get_status()
        if status != 200:
            self.state.stats.phases["fail"].add(int(self.request.request_time() * 1e9))
        self.metrics.request(status, self.request.request_time())


class NotFoundHandler(V2Handler):
    def prepare(self):
        raise web.HTTPError(404, "no route %s", self.request.path)


def make_app(
    state: ModelState, auth: ServingAuth | None = None, metrics: ServingMetrics | None = None
) -> web.Application:
    """The tornado application of the v2 routes."""
    model = r"/v2/models/(?P<name>[^/]+)(?:/versions/(?P<version>[^/]+))?"
    args = {"state": state, "auth": auth, "metrics": metrics or ServingMetrics(state.name)}
    return web.Application(
        [
            (r"/v2/health/live", LiveHandler, args),
            (r"/v2/health/ready", ReadyHandler, args),
            (r"/v2/?", ServerMetadataHandler, args),
            (r"/v2/models/stats", ModelStatsHandler, args),
            (r"/v2/repository/index", RepositoryIndexHandler, args),
            (r"/metrics", MetricsHandler, args),
            (rf"{model}/stats", ModelStatsHandler, args),
            (rf"{model}/ready", ModelReadyHandler, args),
            (rf"{model}/config", ModelConfigHandler, args),
            (rf"{model}/infer", InferHandler, args),
            (rf"{model}/?", ModelMetadataHandler, args),
        ],
        default_handler_class=NotFoundHandler,
        default_handler_args=args,
    )
