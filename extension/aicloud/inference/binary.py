"""The binary tensor data extension of the Open Inference Protocol (REST).

A request or response body is a JSON header followed by the raw bytes of some tensors; the
``Inference-Header-Content-Length`` HTTP header gives the JSON's length, and each binary
tensor says its byte count in ``parameters.binary_data_size``, in the order of the tensors.
Tensors are row-major and little-endian; ``BOOL`` is one byte per element; ``BYTES``
elements are each a 4-byte little-endian length followed by that many bytes.
"""

from __future__ import annotations

import math
import struct

import numpy as np

HEADER_LENGTH = "Inference-Header-Content-Length"
#: The numpy type of each fixed-size datatype, little-endian.
RAW_TYPES = {
    "FP64": "<f8",
    "FP32": "<f4",
    "FP16": "<f2",
    "INT64": "<i8",
    "INT32": "<i4",
    "INT16": "<i2",
    "INT8": "i1",
    "UINT64": "<u8",
    "UINT32": "<u4",
    "UINT16": "<u2",
    "UINT8": "u1",
    "BOOL": "?",
}
_LENGTH = struct.Struct("<I")


class BinaryDataError(ValueError):
    """Binary tensor data that does not match its header; the message names the field."""


def split_body(body: bytes, header_length: str | None) -> tuple[bytes, memoryview]:
    """The JSON header and the binary part of a body (all JSON when no header length)."""
    if header_length is None:
        return body, memoryview(b"")
    try:
        length = int(header_length)
    except ValueError:
        raise BinaryDataError(f"{HEADER_LENGTH}: {header_length!r} is not an integer") from None
    if not 0 <= length <= len(body):
        raise BinaryDataError(
            f"{HEADER_LENGTH}: {length} is not within the body's {len(body)} bytes"
        )
    view = memoryview(body)
    return bytes(view[:length]), view[length:]


def decode_tensor(raw: memoryview, datatype: str, shape: list[int], where: str) -> np.ndarray:
    """The array of ``shape`` that ``raw`` holds (a read-only view where it can be)."""
    count = math.prod(shape)
    if datatype == "BYTES":
        return decode_bytes(raw, count, where).reshape(shape)
    dtype = np.dtype(RAW_TYPES[datatype])
    if len(raw) != count * dtype.itemsize:
        raise BinaryDataError(
            f"{where}.parameters.binary_data_size: {len(raw)} bytes for shape {shape} of"
            f" {datatype} ({count * dtype.itemsize})"
        )
    array = np.frombuffer(raw, dtype=dtype).reshape(shape)
    if dtype.kind == "b" and count and raw.tobytes().strip(b"\x00\x01"):
        raise BinaryDataError(f"{where}: BOOL elements are bytes 0 or 1")
    return array.astype(dtype.newbyteorder("="), copy=False)


def decode_bytes(raw: memoryview, count: int, where: str) -> np.ndarray:
    """``count`` length-prefixed ``BYTES`` elements as an object array of ``bytes``."""
    elements, offset = [], 0
    for _ in range(count):
        if offset + 4 > len(raw):
            raise BinaryDataError(f"{where}: BYTES data ends inside an element's length")
        (length,) = _LENGTH.unpack_from(raw, offset)
        offset += 4
        if offset + length > len(raw):
            raise BinaryDataError(f"{where}: BYTES element of {length} bytes runs past the data")
        elements.append(bytes(raw[offset : offset + length]))
        offset += length
    if offset != len(raw):
        raise BinaryDataError(f"{where}: {len(raw) - offset} bytes after {count} BYTES elements")
    array = np.empty(count, dtype=object)
    array[:] = elements
    return array


def encode_tensor(array: np.ndarray) -> bytes:
    """The raw bytes of ``array``: little-endian, row-major; object arrays as ``BYTES``."""
    if array.dtype == object or array.dtype.kind in "SU":
        return encode_bytes(array)
    little = array.astype(array.dtype.newbyteorder("<"), copy=False)
    return np.ascontiguousarray(little).tobytes()


def encode_bytes(array: np.ndarray) -> bytes:
    """``BYTES`` elements (``bytes`` or ``str``), each after its 4-byte length."""
    parts = []
    for element in array.reshape(-1):
        data = element.encode() if isinstance(element, str) else bytes(element)
        parts += [_LENGTH.pack(len(data)), data]
    return b"".join(parts)
