"""The v2 gRPC port of a real serve job through Triton's own client (``tritonclient.grpc``):
health, metadata, config, statistics and the repository index; raw and typed infer equal to
the model run in-process; bad inputs answered with their status code and the field's name;
tokens; concurrent calls of the async client batched together. And the committed protocol
modules: what protoc makes of the ``.proto`` files, and wire-compatible with Triton's.

aicloud's generated ``inference.*`` messages and tritonclient's cannot load into one process
(one protobuf pool), so this file speaks only Triton's: the server runs in the serve job.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import queue
import re
import socket
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import grpc
import httpx
import numpy as np
import pytest
import tritonclient.grpc as triton
import tritonclient.grpc.aio as triton_aio
from google.protobuf import descriptor_pb2
from tritonclient.grpc import model_config_pb2, service_pb2, service_pb2_grpc
from tritonclient.utils import InferenceServerException

from aicloud.client import AICloudClient, APIError, Connection
from aicloud.inference.grpc_tensors import parse_infer_call
from aicloud.inference.options import Datatype
from aicloud.inference.protocol import ProtocolError, TensorSpec
from aicloud.inference.v2grpc import generate
from tests.conftest import wait_for
from tests.inference_models import (
    cancel_active_jobs,
    rows,
    save_torch_models,
    tiny_net,
    torch_outputs,
)

MODEL = "tiny"
SCRIPTS = Path(__file__).parent / "scripts"


class Served:
    """The serve job's gRPC address and REST URL, its token, and the model run in-process."""

    def __init__(self, address: str, url: str, token: str, model):
        self.address, self.url, self.token, self.model = address, url, token, model
        self.headers = {"authorization": f"token {token}"}
        self.metadata = (("authorization", f"Bearer {token}"),)

    def client(self) -> triton.InferenceServerClient:
        return triton.InferenceServerClient(self.address)

    def expected(self, x: np.ndarray) -> np.ndarray:
        return torch_outputs(self.model, x)


@pytest.fixture(scope="module")
def served(module_live_server):
    server = module_live_server
    save_torch_models(server.root_dir)
    spec = {
        "kind": "serve",
        "framework": "none",
        "name": "grpc-tiny",
        "inference": {
            # TinyNet's weights as a state dict, 20 ms a call: concurrent calls pile up.
            "model": "tiny_state.pt",
            "model_class": "tiny_model:TinyNet",
            "model_kwargs": {"delay": 0.02},
            "model_name": MODEL,
            "input_shape": [4],
            "max_wait_ms": 20,
            "grpc_port": 0,
        },
    }
    with AICloudClient(Connection(server.url, server.token, "test")) as api:
        job = api.submit(spec)

        def endpoint() -> dict | None:
            try:
                return json.loads(api.download(job["id"], "endpoint.json"))
            except APIError as e:
                if e.status != 404:
                    raise
                assert api.get(job["id"])["status"] not in ("failed", "cancelled")
                return None

        found = wait_for(endpoint, timeout=120, interval=0.2)
    assert found["grpc_url"] == f"127.0.0.1:{found['grpc_port']}"
    yield Served(found["grpc_url"], found["url"], server.token, tiny_net(server.root_dir))
    cancel_active_jobs(server)


def triton_input(x: np.ndarray, name: str = "input", datatype: str = "FP32") -> triton.InferInput:
    tensor = triton.InferInput(name, list(x.shape), datatype)
    tensor.set_data_from_numpy(x)
    return tensor


def test_health_metadata_config_statistics_and_index(served):
    with served.client() as client:
        assert client.is_server_live() and client.is_server_ready()  # open, for probes
        assert client.is_model_ready(MODEL, headers=served.headers)
        assert client.is_model_ready(MODEL, "1", headers=served.headers)
        server = client.get_server_metadata(headers=served.headers, as_json=True)
        assert server["name"] == "aicloud" and "statistics" in server["extensions"]
        meta = client.get_model_metadata(MODEL, headers=served.headers, as_json=True)
        assert meta["versions"] == ["1"] and meta["platform"] == "pytorch_state_dict"
        assert meta["inputs"] == [{"name": "input", "datatype": "FP32", "shape": ["-1", "4"]}]
        assert meta["outputs"] == [{"name": "output", "datatype": "FP32", "shape": ["-1", "2"]}]
        config = client.get_model_config(MODEL, headers=served.headers).config
        assert config.name == MODEL and config.max_batch_size == 32
        assert config.input[0].data_type == model_config_pb2.TYPE_FP32
        assert list(config.input[0].dims) == [4] and list(config.output[0].dims) == [2]
        assert config.dynamic_batching.max_queue_delay_microseconds == 20_000
        index = client.get_model_repository_index(headers=served.headers, as_json=True)
        assert index["models"] == [{"name": MODEL, "version": "1", "state": "READY"}]
        stats = client.get_inference_statistics(MODEL, headers=served.headers, as_json=True)
        (entry,) = stats["model_stats"]
        assert entry["name"] == MODEL and entry["version"] == "1"


def test_raw_and_typed_infer_equal_the_model_in_process(served):
    x = rows(5, seed=7)
    with served.client() as client:
        before = client.get_inference_statistics(MODEL, headers=served.headers).model_stats[0]
        result = client.infer(
            MODEL, [triton_input(x)], request_id="r-1", model_version="1", headers=served.headers
        )
        response = result.get_response()
        assert response.id == "r-1" and response.model_name == MODEL
        assert len(response.raw_output_contents) == 1  # raw bytes, as tritonclient expects
        out = result.as_numpy("output")
        assert out.dtype == np.float32 and out.shape == (5, 2)
        np.testing.assert_allclose(out, served.expected(x), rtol=1e-6)
        after = client.get_inference_statistics(MODEL, headers=served.headers).model_stats[0]
    assert after.inference_count == before.inference_count + 5
    assert after.inference_stats.success.count == before.inference_stats.success.count + 1
    assert after.inference_stats.compute_input.ns > before.inference_stats.compute_input.ns

    # Typed contents in, and typed contents out where every output asks binary_data false.
    request = service_pb2.ModelInferRequest(model_name=MODEL, id="typed")
    tensor = request.inputs.add(name="input", datatype="FP32", shape=[5, 4])
    tensor.contents.fp32_contents.extend(x.reshape(-1).tolist())
    output = request.outputs.add(name="output")
    output.parameters["binary_data"].bool_param = False
    with grpc.insecure_channel(served.address) as channel:
        stub = service_pb2_grpc.GRPCInferenceServiceStub(channel)
        typed = stub.ModelInfer(request, metadata=served.metadata, timeout=30)
    assert not typed.raw_output_contents and typed.id == "typed"
    (tensor,) = typed.outputs
    assert tensor.datatype == "FP32" and list(tensor.shape) == [5, 2]
    values = np.asarray(tensor.contents.fp32_contents, dtype=np.float32).reshape(5, 2)
    np.testing.assert_allclose(values, served.expected(x), rtol=1e-6)


def _request(shape=(2, 4), name="input", datatype="FP32", raw=None, outputs=(), **fields):
    """A ModelInfer request with raw contents (ones of ``shape`` unless ``raw`` is given)."""
    request = service_pb2.ModelInferRequest(model_name=fields.pop("model", MODEL), **fields)
    request.inputs.add(name=name, datatype=datatype, shape=list(shape))
    x = np.ones(shape, dtype=np.float32)
    request.raw_input_contents.extend([x.tobytes()] if raw is None else raw)
    for output in outputs:
        request.outputs.add(name=output)
    return request


def _typed(field: str, values: list, shape=(2, 4), datatype="FP32"):
    """A ModelInfer request with typed contents."""
    request = service_pb2.ModelInferRequest(model_name=MODEL)
    tensor = request.inputs.add(name="input", datatype=datatype, shape=list(shape))
    getattr(tensor.contents, field).extend(values)
    return request


BAD_CALLS = [
    (
        _request((2, 3), outputs=["output"]),
        "INVALID_ARGUMENT",
        "inputs[0].shape: the model takes [-1, 4], got [2, 3]",
    ),
    (_request(datatype="INT32"), "INVALID_ARGUMENT", "inputs[0].datatype: the model takes FP32"),
    (_request(datatype="FP8"), "INVALID_ARGUMENT", "inputs[0].datatype: 'FP8' is not supported"),
    (_request(name="x"), "INVALID_ARGUMENT", "inputs[0].name: unknown input 'x'; use 'input'"),
    (_request(shape=()), "INVALID_ARGUMENT", "inputs[0].shape: needs a batch dimension"),
    (
        _request(raw=[b"\0" * 28]),
        "INVALID_ARGUMENT",
        "raw_input_contents[0]: 28 bytes for shape [2, 4] of FP32 (32)",
    ),
    (
        _request(raw=[b"\0" * 32, b"\0" * 32]),
        "INVALID_ARGUMENT",
        "raw_input_contents: 2 entries for 1 input",
    ),
    (
        _typed("fp32_contents", [1.0] * 7),
        "INVALID_ARGUMENT",
        "inputs[0].contents.fp32_contents: 7 values for shape [2, 4] (8)",
    ),
    (
        _typed("int_contents", [1] * 8),
        "INVALID_ARGUMENT",
        "inputs[0].contents.int_contents: does not hold FP32; use fp32_contents",
    ),
    (
        service_pb2.ModelInferRequest(model_name=MODEL),
        "INVALID_ARGUMENT",
        "inputs: must hold exactly one tensor, got 0",
    ),
    (_request(model="nobody"), "NOT_FOUND", "model 'nobody' not found; this server serves"),
    (_request(model_version="2"), "NOT_FOUND", "model 'tiny' has no version '2'"),
    (
        _request(outputs=["y"]),
        "INVALID_ARGUMENT",
        "outputs[0].name: unknown output 'y'; use 'output'",
    ),
]


def test_bad_inputs_get_their_status_and_the_field(served):
    with grpc.insecure_channel(served.address) as channel:
        stub = service_pb2_grpc.GRPCInferenceServiceStub(channel)
        for request, code, message in BAD_CALLS:
            with pytest.raises(grpc.RpcError) as caught:
                stub.ModelInfer(request, metadata=served.metadata, timeout=30)
            assert caught.value.code().name == code, (message, caught.value.details())
            assert message in caught.value.details()
        with pytest.raises(grpc.RpcError) as caught:
            stub.ModelConfig(
                service_pb2.ModelConfigRequest(name="nobody"), metadata=served.metadata
            )
        assert caught.value.code() == grpc.StatusCode.NOT_FOUND
    x = rows(2)
    with served.client() as client:  # still serving
        out = client.infer(MODEL, [triton_input(x)], headers=served.headers).as_numpy("output")
    np.testing.assert_allclose(out, served.expected(x), rtol=1e-6)


@dataclass
class Guarded:
    """The script's gRPC server, its token, and how it was refused a port already taken."""

    address: str
    token: str
    refusal: str
    taken_port: int


@pytest.fixture(scope="module")
def guarded(tmp_path_factory):
    """The gRPC server behind the serve jobs' token check, and its token."""
    folder = tmp_path_factory.mktemp("guarded")
    save_torch_models(folder)
    token = "grpc-test-token-0123456789"
    with socket.socket() as taken:  # the script tries it first: a bind that must fail
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        taken_port = taken.getsockname()[1]
        process = subprocess.Popen(
            [sys.executable, str(SCRIPTS / "grpc_auth_server.py"), str(taken_port)],
            cwd=folder,
            env={**os.environ, "AICLOUD_TEST_TOKEN": token},
            stdout=subprocess.PIPE,
            text=True,
        )
        try:
            refusal, port = process.stdout.readline(), int(process.stdout.readline())
        except ValueError:
            process.kill()
            raise
    try:
        yield Guarded(f"127.0.0.1:{port}", token, refusal, taken_port)
    finally:
        process.terminate()
        process.wait(timeout=20)


def test_a_taken_port_is_refused_naming_the_field(guarded):
    expected = f"inference.grpc_port: cannot listen on 127.0.0.1:{guarded.taken_port} (in use"
    assert guarded.refusal.startswith(f"GrpcBindError: {expected}")


def test_calls_need_the_token(guarded):
    address, token = guarded.address, guarded.token
    x = rows(1)
    with triton.InferenceServerClient(address) as client:
        assert client.is_server_live() and client.is_server_ready()  # open, for probes
        for header in (f"token {token}", f"Bearer {token}"):
            assert client.get_model_metadata(MODEL, headers={"authorization": header})
        for headers, status, text in [
            ({}, "StatusCode.UNAUTHENTICATED", "authentication required"),
            ({"authorization": "token someone-elses"}, "StatusCode.PERMISSION_DENIED", "may not"),
        ]:
            calls = [
                (client.get_model_metadata, (MODEL,)),
                (client.infer, (MODEL, [triton_input(x)])),
                (client.get_inference_statistics, (MODEL,)),
            ]
            for call, args in calls:
                with pytest.raises(InferenceServerException) as caught:
                    call(*args, headers=headers)
                assert caught.value.status() == status and text in caught.value.message()
        answers: queue.Queue = queue.Queue()
        client.start_stream(lambda result, error: answers.put(error))  # no token
        with contextlib.suppress(InferenceServerException):  # when the refusal came first
            client.async_stream_infer(MODEL, [triton_input(x)])
        client.stop_stream()
        assert answers.get(timeout=30).status() == "StatusCode.UNAUTHENTICATED"


def test_stream_answers_each_request_or_its_error(served):
    xs = {str(i): rows(2, seed=200 + i) for i in range(8)}
    answers: queue.Queue = queue.Queue()
    with served.client() as client:
        client.start_stream(
            lambda result, error: answers.put((result, error)), headers=served.headers
        )
        for request_id, x in xs.items():
            client.async_stream_infer(MODEL, [triton_input(x)], request_id=request_id)
        client.async_stream_infer(MODEL, [triton_input(rows(1)[:, :3].copy())], request_id="bad")
        client.stop_stream()  # half-closes, then waits for every answer
    results = [answers.get_nowait() for _ in range(len(xs) + 1)]
    assert answers.empty()
    errors = [error for result, error in results if error is not None]
    assert len(errors) == 1 and "inputs[0].shape: the model takes [-1, 4]" in errors[0].message()
    for result, _ in (r for r in results if r[1] is None):
        request_id = result.get_response().id
        np.testing.assert_allclose(result.as_numpy("output"), served.expected(xs.pop(request_id)))
    assert not xs


def test_concurrent_async_calls_are_batched(served):
    xs = [rows(1, seed=100 + i) for i in range(24)]

    async def main():
        async with triton_aio.InferenceServerClient(served.address) as client:
            before = await client.get_inference_statistics(MODEL, headers=served.headers)
            results = await asyncio.gather(
                *(client.infer(MODEL, [triton_input(x)], headers=served.headers) for x in xs)
            )
            after = await client.get_inference_statistics(MODEL, headers=served.headers)
        return before.model_stats[0], [r.as_numpy("output") for r in results], after.model_stats[0]

    before, outs, after = asyncio.run(main())
    for x, out in zip(xs, outs, strict=True):
        np.testing.assert_allclose(out, served.expected(x), rtol=1e-5, atol=1e-6)
    assert after.inference_count - before.inference_count == 24
    calls = after.execution_count - before.execution_count
    assert calls < 24, f"{calls} model calls for 24 concurrent requests"
    assert max(b.batch_size for b in after.batch_stats) > 1
    rest = httpx.get(f"{served.url}/v2/models/{MODEL}/stats", headers=served.headers, timeout=30)
    (entry,) = rest.json()["model_stats"]  # one model state behind both ports
    assert entry["execution_count"] == after.execution_count
    assert entry["inference_count"] == after.inference_count


# The parser on its own, with Triton's messages (the same fields as aicloud's).


@pytest.mark.parametrize(
    ("datatype", "request_", "message"),
    [
        ("INT8", _typed("int_contents", [1, 300], (1, 2), "INT8"), "300 overflows INT8"),
        ("UINT8", _typed("uint_contents", [256], (1, 1), "UINT8"), "256 overflows UINT8 (0"),
        ("FP16", _typed("fp32_contents", [1.0], (1, 1), "FP16"), "FP16 travels only as raw"),
        ("BOOL", _request((1, 2), datatype="BOOL", raw=[b"\x01\x02"]), "bytes 0 or 1"),
    ],
)
def test_typed_and_raw_contents_are_checked(datatype, request_, message):
    spec = TensorSpec("input", Datatype(datatype), [-1])
    with pytest.raises(ProtocolError, match=re.escape(message)):
        parse_infer_call(request_, spec)


def test_raw_and_typed_contents_decode_alike():
    spec = TensorSpec("input", Datatype.INT16, [3])
    values = np.array([[-300, 0, 7]], dtype=np.int16)
    raw = _request((1, 3), datatype="INT16", raw=[values.astype("<i2").tobytes()])
    typed = _typed("int_contents", values.reshape(-1).tolist(), (1, 3), "INT16")
    for request in (raw, typed):
        call = parse_infer_call(request, spec)
        assert call.array.dtype == np.int16 and np.array_equal(call.array, values)
    both = _request((1, 3), datatype="INT16", raw=[values.tobytes()])
    both.inputs[0].contents.int_contents.extend([1, 2, 3])
    with pytest.raises(ProtocolError, match="give raw_input_contents or contents, not both"):
        parse_infer_call(both, spec)


# The committed protocol modules.


def test_generated_modules_are_what_protoc_makes(tmp_path):
    for path in generate.generate(tmp_path):
        committed = generate.SOURCE_ROOT / path.relative_to(tmp_path)
        assert path.read_bytes() == committed.read_bytes(), f"regenerate {committed.name}"


def _descriptor_set(tmp_path) -> descriptor_pb2.FileDescriptorSet:
    out = tmp_path / "set.pb"
    folder = generate.PACKAGE.relative_to(generate.SOURCE_ROOT)
    names = [str(folder / n) for n in (generate.SERVICE_PROTO, *generate.MESSAGE_PROTOS)]
    subprocess.run(
        [
            sys.executable, "-m", "grpc_tools.protoc", f"--proto_path={generate.SOURCE_ROOT}",
            f"--descriptor_set_out={out}", *names,
        ],
        check=True,
    )  # fmt: skip
    return descriptor_pb2.FileDescriptorSet.FromString(out.read_bytes())


def _messages(
    file: descriptor_pb2.FileDescriptorProto,
) -> dict[str, descriptor_pb2.DescriptorProto]:
    found = {}

    def walk(message, prefix):
        name = f"{prefix}.{message.name}"
        found[name] = message
        for nested in message.nested_type:
            walk(nested, name)

    for message in file.message_type:
        walk(message, f".{file.package}")
    return found


def test_messages_are_wire_compatible_with_tritons(tmp_path):
    theirs_files = []
    for module in (service_pb2, model_config_pb2):
        proto = descriptor_pb2.FileDescriptorProto()
        module.DESCRIPTOR.CopyToProto(proto)
        theirs_files.append(proto)
    theirs = {k: v for f in theirs_files for k, v in _messages(f).items()}
    their_enums = {f".inference.{e.name}": e for f in theirs_files for e in f.enum_type}
    their_methods = {m.name: m for m in theirs_files[0].service[0].method}
    ours = _descriptor_set(tmp_path).file
    checked = 0
    for file in ours:
        for name, message in _messages(file).items():
            assert name in theirs, f"Triton has no message {name}"
            fields = {f.name: f for f in theirs[name].field}
            for field in message.field:
                assert field.name in fields, f"Triton's {name} has no field {field.name}"
                their = fields[field.name]
                ours_wire = (field.number, field.type, field.label, field.type_name)
                assert ours_wire == (their.number, their.type, their.label, their.type_name), (
                    f"{name}.{field.name}"
                )
                checked += 1
        for enum in file.enum_type:
            values = {v.name: v.number for v in their_enums[f".inference.{enum.name}"].value}
            assert {v.name: v.number for v in enum.value}.items() <= values.items()
    (service,) = ours[0].service
    for method in service.method:
        their = their_methods[method.name]
        assert (method.input_type, method.output_type) == (their.input_type, their.output_type)
    assert checked > 80


def test_the_serve_jobs_grpc_port_needs_the_token(served):
    """The job's own gRPC port is behind the REST routes' token check (health excepted)."""
    with triton.InferenceServerClient(served.address) as client:
        assert client.is_server_live()
        with pytest.raises(InferenceServerException, match="UNAUTHENTICATED"):
            client.get_model_metadata(MODEL)
        assert client.get_model_metadata(MODEL, headers=served.headers)
