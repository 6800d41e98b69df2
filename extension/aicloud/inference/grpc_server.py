"""The Open Inference Protocol v2 over gRPC: ``inference.GRPCInferenceService`` on a second port.

It serves KServe's six methods (``v2grpc/grpc_predict_v2.proto``) and the four of Triton's
that tritonclient calls (ModelConfig, ModelStatistics, RepositoryIndex, and ModelStreamInfer,
whose requests run concurrently, through the batcher, each answered with its response or its
error as it finishes), with ``grpc.aio`` on
the model server's event loop, around the same :class:`~aicloud.inference.server.ModelState`
as the REST routes: one batcher, one set of statistics. Every method but ServerLive and
ServerReady checks the ``authorization`` metadata (``token <t>`` or ``Bearer <t>``) as the REST
routes check the header. Refusals: ``INVALID_ARGUMENT`` naming the field, ``NOT_FOUND`` for
another model or version, ``UNAVAILABLE`` while the model loads or its queue is full,
``UNAUTHENTICATED`` without a token, ``PERMISSION_DENIED`` with another one.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import grpc
from google.protobuf import json_format

from aicloud import __version__
from aicloud.inference.grpc_tensors import infer_response, parse_infer_call
from aicloud.inference.protocol import ProtocolError
from aicloud.inference.state import VERSION, ModelCallError, ModelNotReady, ModelState, QueueFull
from aicloud.inference.v2grpc import grpc_predict_v2_pb2 as pb
from aicloud.inference.v2grpc import grpc_predict_v2_pb2_grpc as pb_grpc
from aicloud.inference.v2grpc import triton_extensions_pb2 as triton

SERVICE = "inference.GRPCInferenceService"
OPEN_METHODS = frozenset({f"/{SERVICE}/ServerLive", f"/{SERVICE}/ServerReady"})
STREAMING_METHODS = frozenset({f"/{SERVICE}/ModelStreamInfer"})
#: The largest request or response, as the REST server's body limit.
MAX_MESSAGE = 256 * 2**20
EXTENSIONS = ["statistics", "model_configuration", "model_repository"]
#: The gRPC status of each HTTP status that the authorizer's errors carry.
AUTH_STATUS_CODES = {
    401: grpc.StatusCode.UNAUTHENTICATED,
    403: grpc.StatusCode.PERMISSION_DENIED,
    503: grpc.StatusCode.UNAVAILABLE,  # the hub could not be asked
}

Authorize = Callable[[str | None], Awaitable[None] | None]


class GrpcBindError(OSError):
    """The gRPC port cannot be bound; the message names ``inference.grpc_port``."""


class RpcAbort(Exception):
    """A refusal with its gRPC status code, raised inside the servicer."""

    def __init__(self, code: grpc.StatusCode, message: str):
        super().__init__(message)
        self.code, self.message = code, message


def _status_of(error: Exception) -> int | None:
    """The HTTP status an authorization error carries (``status`` or tornado's ``status_code``)."""
    status = getattr(error, "status", None) or getattr(error, "status_code", None)
    return status if isinstance(status, int) else None


class TokenInterceptor(grpc.aio.ServerInterceptor):
    """Refuses each call (but the health checks) whose ``authorization`` does not pass."""

    def __init__(self, authorize: Authorize):
        self.authorize = authorize

    async def intercept_service(self, continuation, details: grpc.HandlerCallDetails):
        if details.method in OPEN_METHODS:
            return await continuation(details)
        metadata = dict(details.invocation_metadata or ())
        try:
            result = self.authorize(metadata.get("authorization"))
            if inspect.isawaitable(result):
                await result
        except Exception as e:
            code = AUTH_STATUS_CODES.get(_status_of(e) or 0)
            if code is None:
                raise
            return _refusal(code, str(e), details.method in STREAMING_METHODS)
        return await continuation(details)


def _refusal(code: grpc.StatusCode, message: str, streaming: bool) -> grpc.RpcMethodHandler:
    async def refuse(request: Any, context: grpc.aio.ServicerContext) -> None:
        await context.abort(code, message)

    if streaming:
        return grpc.stream_stream_rpc_method_handler(refuse)
    return grpc.unary_unary_rpc_method_handler(refuse)


def _aborts(method):
    """Turn :class:`RpcAbort` raised by ``method`` into the call's status."""

    @functools.wraps(method)
    async def call(self, request, context: grpc.aio.ServicerContext):
        try:
            return await method(self, request)
        except RpcAbort as e:
            await context.abort(e.code, e.message)

    return call


class InferenceServicer(pb_grpc.GRPCInferenceServiceServicer):
    """The methods of ``inference.GRPCInferenceService`` over one model state."""

    def __init__(self, state: ModelState):
        self.state = state

    def model(self, name: str, version: str) -> ModelState:
        """The state if ``name`` and ``version`` (empty: the only one) name its model."""
        if name != self.state.name:
            raise RpcAbort(
                grpc.StatusCode.NOT_FOUND,
                f"model {name!r} not found; this server serves {self.state.name!r}",
            )
        if version not in ("", VERSION):
            raise RpcAbort(
                grpc.StatusCode.NOT_FOUND,
                f"model {name!r} has no version {version!r}; it has {VERSION!r}",
            )
        return self.state

    def ready_model(self, name: str, version: str) -> ModelState:
        state = self.model(name, version)
        if not state.ready:
            raise RpcAbort(grpc.StatusCode.UNAVAILABLE, f"model {name!r} is still loading")
        return state

    async def infer(self, request: pb.ModelInferRequest) -> pb.ModelInferResponse:
        """Decode, run through the batcher, encode; each step timed for the statistics."""
        began = time.perf_counter_ns()
        try:
            return await self._infer(request, began)
        except RpcAbort:
            self.state.stats.phases["fail"].add(time.perf_counter_ns() - began)
            raise

    async def _infer(self, request: pb.ModelInferRequest, began: int) -> pb.ModelInferResponse:
        state = self.model(request.model_name, request.model_version)
        phases = state.stats.phases
        try:
            call = parse_infer_call(request, state.spec)
        except ProtocolError as e:
            raise RpcAbort(grpc.StatusCode.INVALID_ARGUMENT, str(e)) from None
        decoded = time.perf_counter_ns()
        phases["compute_input"].add(decoded - began)
        try:
            output = await state.infer(call.array)
        except ModelNotReady as e:
            raise RpcAbort(grpc.StatusCode.UNAVAILABLE, str(e)) from None
        except QueueFull as e:
            raise RpcAbort(grpc.StatusCode.UNAVAILABLE, f"the model server is busy: {e}") from None
        except ModelCallError as e:
            raise RpcAbort(grpc.StatusCode.INVALID_ARGUMENT, str(e)) from None
        encoding = time.perf_counter_ns()
        response = infer_response(state.name, VERSION, output, call)
        done = time.perf_counter_ns()
        phases["compute_output"].add(done - encoding)
        phases["success"].add(done - began)
        return response

    @_aborts
    async def ServerLive(self, request: pb.ServerLiveRequest) -> pb.ServerLiveResponse:
        return pb.ServerLiveResponse(live=True)

    @_aborts
    async def ServerReady(self, request: pb.ServerReadyRequest) -> pb.ServerReadyResponse:
        return pb.ServerReadyResponse(ready=bool(self.state.ready))

    @_aborts
    async def ModelReady(self, request: pb.ModelReadyRequest) -> pb.ModelReadyResponse:
        state = self.model(request.name, request.version)
        return pb.ModelReadyResponse(ready=bool(state.ready))

    @_aborts
    async def ServerMetadata(self, request: pb.ServerMetadataRequest) -> pb.ServerMetadataResponse:
        return pb.ServerMetadataResponse(name="aicloud", version=__version__, extensions=EXTENSIONS)

    @_aborts
    async def ModelMetadata(self, request: pb.ModelMetadataRequest) -> pb.ModelMetadataResponse:
        state = self.model(request.name, request.version)
        return json_format.ParseDict(
            state.metadata(), pb.ModelMetadataResponse(), ignore_unknown_fields=True
        )

    @_aborts
    async def ModelInfer(self, request: pb.ModelInferRequest) -> pb.ModelInferResponse:
        return await self.infer(request)

    async def ModelStreamInfer(
        self, requests: AsyncIterator[pb.ModelInferRequest], context: grpc.aio.ServicerContext
    ) -> AsyncIterator[triton.ModelStreamInferResponse]:
        """Every request of the stream at once; answers in the order they finish."""
        answers: asyncio.Queue[triton.ModelStreamInferResponse | None] = asyncio.Queue()
        running: set[asyncio.Task] = set()

        async def answer(request: pb.ModelInferRequest) -> None:
            try:
                response = await self.infer(request)
            except RpcAbort as e:
                answers.put_nowait(triton.ModelStreamInferResponse(error_message=e.message))
            else:
                answers.put_nowait(triton.ModelStreamInferResponse(infer_response=response))

        async def read() -> None:
            try:
                async for request in requests:
                    task = asyncio.create_task(answer(request))
                    running.add(task)
                    task.add_done_callback(running.discard)
                if running:
                    await asyncio.wait(set(running))
            finally:  # the client half-closed, or went away
                answers.put_nowait(None)

        reader = asyncio.create_task(read())
        try:
            while (item := await answers.get()) is not None:
                yield item
        finally:
            reader.cancel()
            for task in list(running):
                task.cancel()

    @_aborts
    async def ModelConfig(self, request: triton.ModelConfigRequest) -> triton.ModelConfigResponse:
        state = self.ready_model(request.name, request.version)
        config = json_format.ParseDict(
            state.config(), triton.ModelConfig(), ignore_unknown_fields=True
        )
        return triton.ModelConfigResponse(config=config)

    @_aborts
    async def ModelStatistics(
        self, request: triton.ModelStatisticsRequest
    ) -> triton.ModelStatisticsResponse:
        if request.name:  # no name: every model's, as Triton answers
            self.model(request.name, request.version)
        document = {"model_stats": [self.state.statistics()]}
        return json_format.ParseDict(
            document, triton.ModelStatisticsResponse(), ignore_unknown_fields=True
        )

    @_aborts
    async def RepositoryIndex(
        self, request: triton.RepositoryIndexRequest
    ) -> triton.RepositoryIndexResponse:
        entry = self.state.repository_entry()
        if request.ready and entry["state"] != "READY":
            return triton.RepositoryIndexResponse()
        return json_format.ParseDict({"models": [entry]}, triton.RepositoryIndexResponse())


def triton_handlers(servicer: InferenceServicer) -> grpc.GenericRpcHandler:
    """The handlers of Triton's methods, on the same service as KServe's."""
    stream = grpc.stream_stream_rpc_method_handler(
        servicer.ModelStreamInfer,
        request_deserializer=pb.ModelInferRequest.FromString,
        response_serializer=triton.ModelStreamInferResponse.SerializeToString,
    )
    messages = {
        "ModelConfig": (triton.ModelConfigRequest, triton.ModelConfigResponse),
        "ModelStatistics": (triton.ModelStatisticsRequest, triton.ModelStatisticsResponse),
        "RepositoryIndex": (triton.RepositoryIndexRequest, triton.RepositoryIndexResponse),
    }
    handlers = {
        name: grpc.unary_unary_rpc_method_handler(
            getattr(servicer, name),
            request_deserializer=request.FromString,
            response_serializer=response.SerializeToString,
        )
        for name, (request, response) in messages.items()
    }
    return grpc.method_handlers_generic_handler(SERVICE, {**handlers, "ModelStreamInfer": stream})


@dataclass
class GrpcServer:
    """A started gRPC server and the port it bound."""

    server: grpc.aio.Server
    port: int

    async def stop(self, grace: float = 1.0) -> None:
        """Stop taking calls and let the running ones finish for ``grace`` seconds."""
        await self.server.stop(grace)


def _address(host: str, port: int) -> str:
    if host in ("", "::"):
        return f"[::]:{port}"
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


async def start_grpc_server(
    state: ModelState, host: str, port: int, *, authorize: Authorize | None = None
) -> GrpcServer:
    """Serve ``state`` on ``host:port`` (0: a free port); ``authorize`` defaults to the state's.

    ``authorize(header)`` gets the ``authorization`` metadata (None when absent) and returns,
    or raises an error whose ``status`` is 401 or 403 (or 503); it may be a coroutine. Without
    one (neither given nor ``state.authorize``) every call is let in.
    """
    authorize = authorize or getattr(state, "authorize", None)
    server = grpc.aio.server(
        interceptors=[TokenInterceptor(authorize)] if authorize else [],
        options=[
            ("grpc.max_receive_message_length", MAX_MESSAGE),
            ("grpc.max_send_message_length", MAX_MESSAGE),
            ("grpc.so_reuseport", 0),  # a second server on a taken port fails, as REST does
        ],
    )
    servicer = InferenceServicer(state)
    pb_grpc.add_GRPCInferenceServiceServicer_to_server(servicer, server)
    server.add_generic_rpc_handlers((triton_handlers(servicer),))
    refused = GrpcBindError(
        f"inference.grpc_port: cannot listen on {host}:{port} (in use, or not an address here)"
    )
    try:
        bound = server.add_insecure_port(_address(host, port))
    except RuntimeError:
        raise refused from None
    if bound == 0:  # older grpcio reports a failed bind as port 0
        raise refused
    await server.start()
    return GrpcServer(server, bound)
