"""Open Inference Protocol (v2, REST) tensors: check a request, build a response.

Requests carry one input tensor ``{"name", "shape", "datatype", "data"}`` with ``data`` flat
(row-major) or nested. Every check raises :class:`ProtocolError` with a message that names
the offending field, which the server answers as 400.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from aicloud.inference.loading import NUMPY_TYPES, datatype_of
from aicloud.inference.options import Datatype

INPUT_NAME = "input"
OUTPUT_NAME = "output"
MAX_ELEMENTS = 64 * 2**20
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


def decode_tensor(tensor: Any, where: str, spec: TensorSpec) -> np.ndarray:
    """One request tensor as a numpy array, checked against ``spec``."""
    if not isinstance(tensor, dict):
        raise ProtocolError(f"{where}: must be an object")
    for key in ("name", "shape", "datatype", "data"):
        if key not in tensor:
            raise ProtocolError(f"{where}.{key}: required")
    if tensor["name"] != spec.name:
        raise ProtocolError(f"{where}.name: unknown input {tensor['name']!r}; use {spec.name!r}")
    shape = _shape(tensor["shape"], where)
    if tensor["datatype"] not in Datatype.__members__:
        raise ProtocolError(f"{where}.datatype: {tensor['datatype']!r} is not supported")
    if tensor["datatype"] != spec.datatype.value:
        raise ProtocolError(
            f"{where}.datatype: the model takes {spec.datatype.value}, got {tensor['datatype']}"
        )
    size = math.prod(shape)
    if size > MAX_ELEMENTS:
        raise ProtocolError(f"{where}.shape: more than {MAX_ELEMENTS} elements")
    target = np.dtype(NUMPY_TYPES[spec.datatype])
    try:
        values = np.asarray(tensor["data"])
    except ValueError as e:  # ragged nesting
        raise ProtocolError(f"{where}.data: {e}") from None
    if values.size and values.dtype.kind not in ACCEPTS[target.kind]:
        raise ProtocolError(
            f"{where}.data: values of kind {values.dtype.name} do not fit {spec.datatype.value}"
        )
    if values.size != size:
        raise ProtocolError(f"{where}.data: {values.size} values for shape {shape} ({size})")
    array = values.astype(target).reshape(shape)
    check_shape(array, where, spec)
    return array


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


def parse_infer_request(body: bytes, spec: TensorSpec) -> tuple[np.ndarray, dict[str, Any]]:
    """The input array and the request (``id``, ``outputs``) of an infer call."""
    request = parse_json(body)
    inputs = request.get("inputs")
    if not isinstance(inputs, list) or len(inputs) != 1:
        raise ProtocolError("inputs: must be a list of exactly one tensor")
    outputs = request.get("outputs")
    if outputs is not None:
        if not isinstance(outputs, list) or not all(isinstance(o, dict) for o in outputs):
            raise ProtocolError("outputs: must be a list of objects")
        for i, output in enumerate(outputs):
            if output.get("name") != OUTPUT_NAME:
                raise ProtocolError(
                    f"outputs[{i}].name: unknown output {output.get('name')!r}; use {OUTPUT_NAME!r}"
                )
    if "id" in request and not isinstance(request["id"], str):
        raise ProtocolError("id: must be a string")
    return decode_tensor(inputs[0], "inputs[0]", spec), request


def infer_response(name: str, version: str, output: np.ndarray, request: dict) -> dict:
    """The response document of an infer call."""
    response: dict[str, Any] = {
        "model_name": name,
        "model_version": version,
        "outputs": [
            {
                "name": OUTPUT_NAME,
                "datatype": datatype_of(output).value,
                "shape": list(output.shape),
                "data": output.reshape(-1).tolist(),
            }
        ],
    }
    if "id" in request:
        response["id"] = request["id"]
    return response
