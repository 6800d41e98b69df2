"""Open Inference Protocol v2 gRPC tensors: check a ``ModelInferRequest``, build the response.

The input arrives as ``raw_input_contents`` (what tritonclient sends: row-major little-endian
bytes, decoded by :mod:`~aicloud.inference.binary` as the REST binary extension is) or as the
typed ``contents`` field of its datatype (INT8, INT16 and INT32 share ``int_contents``, UINT8
``uint_contents``; FP16 has none and travels raw). The output goes as ``raw_output_contents``
unless every requested output sets the parameter ``binary_data`` to false. Every check raises
:class:`~aicloud.inference.protocol.ProtocolError` naming the field. Parsing reads the request's
fields only, so it takes Triton's messages (``tritonclient.grpc.service_pb2``) as well.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from aicloud.inference.binary import RAW_TYPES, BinaryDataError, decode_tensor, encode_tensor
from aicloud.inference.loading import NUMPY_TYPES, datatype_of
from aicloud.inference.protocol import (
    MAX_ELEMENTS,
    OUTPUT_NAME,
    PROTOCOL_TYPES,
    ProtocolError,
    TensorSpec,
    check_shape,
)

if TYPE_CHECKING:  # parsing reads any message of the protocol: KServe's, or Triton's superset
    from aicloud.inference.v2grpc import grpc_predict_v2_pb2 as pb

#: The typed ``InferTensorContents`` field of each datatype that has one.
CONTENTS_FIELDS = {
    "BOOL": "bool_contents",
    "INT8": "int_contents",
    "INT16": "int_contents",
    "INT32": "int_contents",
    "INT64": "int64_contents",
    "UINT8": "uint_contents",
    "UINT16": "uint_contents",
    "UINT32": "uint_contents",
    "UINT64": "uint64_contents",
    "FP32": "fp32_contents",
    "FP64": "fp64_contents",
    "BYTES": "bytes_contents",
}
ALL_CONTENTS = sorted(set(CONTENTS_FIELDS.values()))


@dataclass
class GrpcInferCall:
    """A checked ModelInfer request: its input array, id, and whether to answer raw bytes."""

    array: np.ndarray
    id: str
    raw_output: bool


def _shape(tensor: pb.ModelInferRequest.InferInputTensor, where: str) -> list[int]:
    shape = list(tensor.shape)
    if not shape:
        raise ProtocolError(f"{where}.shape: needs a batch dimension")
    if any(d < 0 for d in shape):
        raise ProtocolError(f"{where}.shape: dimensions must be non-negative, got {shape}")
    if math.prod(shape) > MAX_ELEMENTS:
        raise ProtocolError(f"{where}.shape: more than {MAX_ELEMENTS} elements")
    return shape


def _raw(raw: bytes, datatype: str, shape: list[int]) -> np.ndarray:
    where = "raw_input_contents[0]"
    expected = math.prod(shape) * np.dtype(RAW_TYPES[datatype]).itemsize
    if len(raw) != expected:
        raise ProtocolError(
            f"{where}: {len(raw)} bytes for shape {shape} of {datatype} ({expected})"
        )
    try:
        return decode_tensor(memoryview(raw), datatype, shape, where)
    except BinaryDataError as e:
        raise ProtocolError(str(e)) from None


def _typed(contents: pb.InferTensorContents, datatype: str, shape: list[int], where: str):
    field = CONTENTS_FIELDS.get(datatype)
    if field is None:
        raise ProtocolError(f"{where}.contents: {datatype} travels only as raw_input_contents")
    for other in ALL_CONTENTS:
        if other != field and len(getattr(contents, other)):
            raise ProtocolError(f"{where}.contents.{other}: does not hold {datatype}; use {field}")
    values = getattr(contents, field)
    size = math.prod(shape)
    if len(values) != size:
        raise ProtocolError(
            f"{where}.contents.{field}: {len(values)} values for shape {shape} ({size})"
        )
    target = np.dtype(NUMPY_TYPES[datatype])
    if target.kind not in "iu":  # floats and bools fit their own fields
        return np.asarray(values, dtype=target).reshape(shape)
    wide = np.asarray(values, dtype=np.int64 if target.kind == "i" else np.uint64)
    info = np.iinfo(target)
    if wide.size and (int(wide.min()) < info.min or int(wide.max()) > info.max):
        bad = int(wide.min()) if int(wide.min()) < info.min else int(wide.max())
        raise ProtocolError(
            f"{where}.contents.{field}: {bad} overflows {datatype} ({info.min} to {info.max})"
        )
    return wide.astype(target).reshape(shape)


def _raw_output(request: pb.ModelInferRequest) -> bool:
    typed = [o for o in request.outputs if "binary_data" in o.parameters]
    if not typed or len(typed) != len(request.outputs):
        return True
    return any(o.parameters["binary_data"].bool_param for o in typed)


def parse_infer_call(request: pb.ModelInferRequest, spec: TensorSpec) -> GrpcInferCall:
    """The input array of a ModelInfer request, checked against the model's ``spec``."""
    if len(request.inputs) != 1:
        raise ProtocolError(f"inputs: must hold exactly one tensor, got {len(request.inputs)}")
    for i, output in enumerate(request.outputs):
        if output.name != OUTPUT_NAME:
            raise ProtocolError(
                f"outputs[{i}].name: unknown output {output.name!r}; use {OUTPUT_NAME!r}"
            )
    tensor, where = request.inputs[0], "inputs[0]"
    if tensor.name != spec.name:
        raise ProtocolError(f"{where}.name: unknown input {tensor.name!r}; use {spec.name!r}")
    if tensor.datatype not in PROTOCOL_TYPES:
        raise ProtocolError(f"{where}.datatype: {tensor.datatype!r} is not supported")
    if tensor.datatype != spec.datatype.value:
        raise ProtocolError(
            f"{where}.datatype: the model takes {spec.datatype.value}, got {tensor.datatype}"
        )
    shape = _shape(tensor, where)
    if request.raw_input_contents:
        if tensor.HasField("contents"):
            raise ProtocolError(f"{where}.contents: give raw_input_contents or contents, not both")
        if len(request.raw_input_contents) != 1:
            raise ProtocolError(
                f"raw_input_contents: {len(request.raw_input_contents)} entries for 1 input"
            )
        array = _raw(request.raw_input_contents[0], tensor.datatype, shape)
    else:
        array = _typed(tensor.contents, tensor.datatype, shape, where)
    check_shape(array, where, spec)
    return GrpcInferCall(array, request.id, _raw_output(request))


def infer_response(
    name: str, version: str, output: np.ndarray, call: GrpcInferCall
) -> pb.ModelInferResponse:
    """The ModelInferResponse of ``output``: raw bytes, or typed contents when asked."""
    from aicloud.inference.v2grpc.grpc_predict_v2_pb2 import ModelInferResponse

    datatype = datatype_of(output).value
    response = ModelInferResponse(model_name=name, model_version=version, id=call.id)
    tensor = response.outputs.add(name=OUTPUT_NAME, datatype=datatype, shape=list(output.shape))
    field = CONTENTS_FIELDS.get(datatype)
    if call.raw_output or field is None:
        response.raw_output_contents.append(encode_tensor(output))
    else:
        getattr(tensor.contents, field).extend(output.reshape(-1).tolist())
    return response
