"""Open Inference Protocol (v2, REST) tensors: check a request, build a response.

Requests carry one input tensor ``{"name", "shape", "datatype", "data"}`` with ``data`` flat
(row-major) or nested, or, with the binary tensor data extension
(:mod:`~aicloud.inference.binary`), ``parameters.binary_data_size`` bytes after the JSON.
JSON values must be finite and fit the datatype (FP32 ``1e39`` and INT8 ``300`` are refused).
Outputs go as JSON unless the request asks for binary (``parameters.binary_data_output``, or
an output's ``parameters.binary_data``); non-finite model outputs travel only as binary,
since JSON has no NaN or Infinity. Every check raises :class:`ProtocolError` with a message
that names the offending field, which the server answers as 400.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from aicloud.inference.binary import (
    RAW_TYPES,
    BinaryDataError,
    decode_tensor,
    encode_tensor,
    split_body,
)
from aicloud.inference.loading import NUMPY_TYPES, datatype_of
from aicloud.inference.options import Datatype

INPUT_NAME = "input"
OUTPUT_NAME = "output"
MAX_ELEMENTS = 64 * 2**20
#: Every datatype of the protocol (the model takes one of :class:`Datatype`).
PROTOCOL_TYPES = frozenset({*RAW_TYPES, "BYTES", "BF16"})
# Which numpy kinds of decoded JSON values each target kind accepts.
ACCEPTS = {"f": "iuf", "i": "iu", "u": "iu", "b": "b"}


class ProtocolError(ValueError):
    """A request that does not follow the protocol or does not fit the model."""


@dataclass(frozen=True)
class TensorSpec:
    """What the model takes: its input name, datatype and one row's shape (-1: any)."""

    name: str
    datatype: Datatype
    row_shape: list[int] | None


@dataclass
class InferRequest:
    """A checked infer call: the input array, the request's id and how to send the output."""

    array: np.ndarray
    id: str | None = None
    binary_output: bool = False
    parameters: dict[str, Any] = field(default_factory=dict)


def parse_json(body: bytes) -> dict[str, Any]:
    """The request body as a JSON object."""
    try:
        document = json.loads(body)
    except (ValueError, UnicodeDecodeError) as e:
        raise ProtocolError(f"malformed JSON: {e}") from None
    if not isinstance(document, dict):
        raise ProtocolError("body: must be a JSON object")
    return document


def _shape(value: Any, where: str) -> list[int]:
    if not isinstance(value, list) or not all(
        isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in value
    ):
        raise ProtocolError(f"{where}.shape: must be a list of non-negative integers")
    if not value:
        raise ProtocolError(f"{where}.shape: needs a batch dimension")
    return value


def _parameters(value: Any, where: str) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise ProtocolError(f"{where}.parameters: must be an object")
    return value


def check_values(values: np.ndarray, target: np.dtype, where: str, datatype: str) -> None:
    """Refuse JSON values that are not finite or do not fit ``target``."""
    if not values.size:
        return
    if values.dtype.kind not in ACCEPTS[target.kind]:
        raise ProtocolError(
            f"{where}.data: values of kind {values.dtype.name} do not fit {datatype}"
        )
    if values.dtype.kind == "f" and not np.isfinite(values).all():
        raise ProtocolError(
            f"{where}.data: non-finite values (NaN, Infinity) are not JSON; send them as"
            " binary data"
        )
    if target.kind == "f" and values.dtype.kind == "f":
        largest = float(np.finfo(target).max)
        peak = float(np.abs(values).max())
        if peak > largest:
            raise ProtocolError(
                f"{where}.data: {peak:g} overflows {datatype} (largest {largest:g})"
            )
    elif target.kind in "iu":
        info = np.iinfo(target)
        low, high = int(values.min()), int(values.max())
        if low < info.min or high > info.max:
            bad = low if low < info.min else high
            raise ProtocolError(
                f"{where}.data: {bad} overflows {datatype} ({info.min} to {info.max})"
            )


def _json_values(data: Any, where: str) -> np.ndarray:
    try:
        values = np.asarray(data)
    except (ValueError, OverflowError) as e:  # ragged nesting
        raise ProtocolError(f"{where}.data: {e}") from None
    if values.dtype == object and values.size:
        flat = values.reshape(-1)
        if all(isinstance(v, int) and not isinstance(v, bool) for v in flat):
            raise ProtocolError(f"{where}.data: {max(flat, key=abs)} overflows every integer type")
    return values


def decode_input(
    tensor: Any, where: str, spec: TensorSpec, binary: memoryview, offset: int
) -> tuple[np.ndarray, int]:
    """One request tensor as a numpy array checked against ``spec``; the next binary offset."""
    if not isinstance(tensor, dict):
        raise ProtocolError(f"{where}: must be an object")
    for key in ("name", "shape", "datatype"):
        if key not in tensor:
            raise ProtocolError(f"{where}.{key}: required")
    if tensor["name"] != spec.name:
        raise ProtocolError(f"{where}.name: unknown input {tensor['name']!r}; use {spec.name!r}")
    shape = _shape(tensor["shape"], where)
    datatype = tensor["datatype"]
    if datatype not in PROTOCOL_TYPES:
        raise ProtocolError(f"{where}.datatype: {datatype!r} is not supported")
    if datatype != spec.datatype.value:
        raise ProtocolError(
            f"{where}.datatype: the model takes {spec.datatype.value}, got {datatype}"
        )
    size = math.prod(shape)
    if size > MAX_ELEMENTS:
        raise ProtocolError(f"{where}.shape: more than {MAX_ELEMENTS} elements")
    target = np.dtype(NUMPY_TYPES[spec.datatype])
    binary_size = _parameters(tensor.get("parameters"), where).get("binary_data_size")
    if binary_size is not None:
        if "data" in tensor:
            raise ProtocolError(f"{where}.data: not allowed with parameters.binary_data_size")
        if not isinstance(binary_size, int) or isinstance(binary_size, bool) or binary_size < 0:
            raise ProtocolError(f"{where}.parameters.binary_data_size: a byte count")
        if offset + binary_size > len(binary):
            raise ProtocolError(
                f"{where}.parameters.binary_data_size: {binary_size} bytes, but only"
                f" {len(binary) - offset} follow the JSON"
            )
        try:
            array = decode_tensor(binary[offset : offset + binary_size], datatype, shape, where)
        except BinaryDataError as e:
            raise ProtocolError(str(e)) from None
        offset += binary_size
    else:
        if "data" not in tensor:
            raise ProtocolError(f"{where}.data: required (or parameters.binary_data_size)")
        values = _json_values(tensor["data"], where)
        check_values(values, target, where, datatype)
        if values.size != size:
            raise ProtocolError(f"{where}.data: {values.size} values for shape {shape} ({size})")
        array = values.astype(target).reshape(shape)
    check_shape(array, where, spec)
    return array, offset


def check_shape(array: np.ndarray, where: str, spec: TensorSpec) -> None:
    """Refuse an array whose rows do not have the model's row shape."""
    if spec.row_shape is None:
        return
    rows = list(array.shape[1:])
    fits = len(rows) == len(spec.row_shape) and all(
        want in (-1, got) for want, got in zip(spec.row_shape, rows, strict=True)
    )
    if not fits:
        expected = [-1, *spec.row_shape]
        raise ProtocolError(f"{where}.shape: the model takes {expected}, got {list(array.shape)}")


def _binary_output(request: dict[str, Any], parameters: dict[str, Any]) -> bool:
    binary = parameters.get("binary_data_output", False)
    if not isinstance(binary, bool):
        raise ProtocolError("parameters.binary_data_output: must be true or false")
    outputs = request.get("outputs")
    if outputs is None:
        return binary
    if not isinstance(outputs, list) or not all(isinstance(o, dict) for o in outputs):
        raise ProtocolError("outputs: must be a list of objects")
    for i, output in enumerate(outputs):
        where = f"outputs[{i}]"
        if output.get("name") != OUTPUT_NAME:
            raise ProtocolError(
                f"{where}.name: unknown output {output.get('name')!r}; use {OUTPUT_NAME!r}"
            )
        asked = _parameters(output.get("parameters"), where)
        if asked.get("classification"):
            raise ProtocolError(f"{where}.parameters.classification: not supported")
        if "binary_data" in asked:
            if not isinstance(asked["binary_data"], bool):
                raise ProtocolError(f"{where}.parameters.binary_data: must be true or false")
            binary = asked["binary_data"]
    return binary


def parse_infer_request(
    body: bytes, spec: TensorSpec, header_length: str | None = None
) -> InferRequest:
    """The checked infer call of ``body`` (``header_length``: the binary extension's header)."""
    try:
        header, binary = split_body(body, header_length)
    except BinaryDataError as e:
        raise ProtocolError(str(e)) from None
    request = parse_json(header)
    inputs = request.get("inputs")
    if not isinstance(inputs, list) or len(inputs) != 1:
        raise ProtocolError("inputs: must be a list of exactly one tensor")
    if "id" in request and not isinstance(request["id"], str):
        raise ProtocolError("id: must be a string")
    parameters = _parameters(request.get("parameters"), "body")
    binary_output = _binary_output(request, parameters)
    array, offset = decode_input(inputs[0], "inputs[0]", spec, binary, 0)
    if offset != len(binary):
        raise ProtocolError(
            f"body: {len(binary) - offset} bytes after the JSON belong to no input"
            " (parameters.binary_data_size)"
        )
    return InferRequest(array, request.get("id"), binary_output, parameters)


def infer_response(
    name: str, version: str, output: np.ndarray, request: InferRequest
) -> tuple[bytes, int | None]:
    """The response body of an infer call and its JSON header's length (None: all JSON)."""
    tensor: dict[str, Any] = {
        "name": OUTPUT_NAME,
        "datatype": datatype_of(output).value,
        "shape": list(output.shape),
    }
    raw = b""
    if request.binary_output:
        raw = encode_tensor(output)
        tensor["parameters"] = {"binary_data_size": len(raw)}
    else:
        if output.dtype.kind == "f" and not np.isfinite(output).all():
            raise ProtocolError(
                "outputs[0]: the model returned NaN or Infinity, which JSON cannot carry; ask"
                " for binary output (parameters.binary_data_output: true)"
            )
        tensor["data"] = output.reshape(-1).tolist()
    response: dict[str, Any] = {"model_name": name, "model_version": version, "outputs": [tensor]}
    if request.id is not None:
        response["id"] = request.id
    header = json.dumps(response, allow_nan=False).encode()
    if not request.binary_output:
        return header, None
    return header + raw, len(header)
