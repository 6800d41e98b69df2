"""What travels from the kernel to the workers by pickle: signed, versioned, checked.

A payload is cloudpickled in the kernel, signed with HMAC-SHA256 under a per-kernel key that
reaches the workers in the job's environment (``JOB_PAYLOAD_KEY``, hidden in API output), and
carries the versions of Python, cloudpickle and the packages its objects come from. A worker
refuses a payload whose signature does not match (it was changed after signing) before it
unpickles anything, and refuses one whose versions differ from its own, naming the package.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import hmac
import json
import os
import platform
import secrets
import sys
import zlib
from typing import Any

KEY_ENV = "JOB_PAYLOAD_KEY"
# The job spec's inline source holds at most 1,000,000 characters; leave room for the script.
MAX_INLINE_BYTES = 700_000
_KERNEL_KEY: str | None = None


class PayloadError(RuntimeError):
    """A payload that cannot be made, or that a worker must refuse."""


def kernel_key() -> str:
    """This kernel's signing key (made once per kernel process)."""
    global _KERNEL_KEY
    if _KERNEL_KEY is None:
        _KERNEL_KEY = secrets.token_hex(32)
    return _KERNEL_KEY


def _signature(key: str, meta: str, data: bytes) -> str:
    return hmac.new(key.encode(), meta.encode() + b"\0" + data, hashlib.sha256).hexdigest()


@functools.cache
def _distributions() -> dict[str, list[str]]:
    from importlib.metadata import packages_distributions

    return packages_distributions()


def _distribution_version(module_name: str) -> str | None:
    """The installed version of the distribution that provides a top-level module."""
    from importlib.metadata import PackageNotFoundError, version

    for dist in _distributions().get(module_name, [module_name]):
        try:
            return version(dist)
        except PackageNotFoundError:
            continue
    return None


def versions_of(modules: set[str]) -> dict[str, str]:
    """Python, cloudpickle, and the installed version of each top-level module given."""
    import cloudpickle

    found = {
        "python": ".".join(platform.python_version_tuple()[:2]),
        "cloudpickle": cloudpickle.__version__,
    }
    for name in sorted(modules):
        if (
            name in ("builtins", "__main__", "python", "cloudpickle")
            or name in sys.builtin_module_names
        ):
            continue
        version = _distribution_version(name)
        if version is not None:
            found[name] = version
    return found


def modules_of(value: Any) -> set[str]:
    """Top-level modules a value's type (and, for containers, its items' types) come from."""
    seen: set[str] = set()
    stack, budget = [value], 1000
    while stack and budget:
        budget -= 1
        item = stack.pop()
        module = getattr(type(item), "__module__", "") or ""
        seen.add(module.split(".")[0])
        if callable(item) and getattr(item, "__module__", None):
            seen.add(item.__module__.split(".")[0])
        if isinstance(item, dict):
            stack.extend(item.values())
        elif isinstance(item, (list, tuple, set, frozenset)):
            stack.extend(item)
    return {m for m in seen if m}


def pack(value: Any, key: str, modules: set[str] = frozenset()) -> dict[str, str]:
    """Cloudpickle ``value`` and sign it; the result is plain JSON-able text."""
    import cloudpickle

    data = cloudpickle.dumps(value)
    meta = json.dumps({"versions": versions_of(set(modules) | modules_of(value))}, sort_keys=True)
    blob = base64.b64encode(zlib.compress(data, 6)).decode()
    if len(blob) > MAX_INLINE_BYTES:
        raise PayloadError(
            f"{len(blob) / 1e6:.1f} MB pickled, more than the {MAX_INLINE_BYTES / 1e6:.1f} MB that "
            "travel inline; save large data to a file the job reads"
        )
    return {"meta": meta, "sig": _signature(key, meta, data), "data": blob}


def check_versions(expected: dict[str, str]) -> None:
    """Refuse to unpickle when this process's versions differ from the kernel's."""
    mine = versions_of({name for name in expected if name not in ("python", "cloudpickle")})
    for name, version in expected.items():
        if mine.get(name) != version:
            raise PayloadError(
                f"version mismatch for {name}: the kernel has {version}, this worker has "
                f"{mine.get(name, 'none')}; install the same version on both"
            )


def unpack(payload: dict[str, str], key: str | None = None) -> Any:
    """Verify and unpickle a payload made by :func:`pack` (in a worker)."""
    import cloudpickle

    key = key if key is not None else os.environ.get(KEY_ENV)
    if not key:
        raise PayloadError(f"{KEY_ENV} is not set: this process cannot check the payload")
    data = zlib.decompress(base64.b64decode(payload["data"]))
    if not hmac.compare_digest(_signature(key, payload["meta"], data), payload["sig"]):
        raise PayloadError(
            "the payload's signature does not match: it was changed after it was signed; "
            "refusing to unpickle it"
        )
    check_versions(json.loads(payload["meta"])["versions"])
    return cloudpickle.loads(data)


def sign_bytes(data: bytes, key: str) -> bytes:
    """``data`` behind its HMAC (hex, then a newline): for results written by a worker."""
    return hmac.new(key.encode(), data, hashlib.sha256).hexdigest().encode() + b"\n" + data


def verify_bytes(blob: bytes, key: str) -> bytes:
    """The data of :func:`sign_bytes`, or :class:`PayloadError` when it was changed."""
    sig, _, data = blob.partition(b"\n")
    expected = hmac.new(key.encode(), data, hashlib.sha256).hexdigest().encode()
    if not hmac.compare_digest(sig, expected):
        raise PayloadError("the result's signature does not match; refusing to unpickle it")
    return data
