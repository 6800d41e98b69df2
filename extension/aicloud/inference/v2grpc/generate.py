"""Generate the ``*_pb2.py`` and ``*_pb2_grpc.py`` modules of this package with grpcio-tools.

``python -m aicloud.inference.v2grpc.generate [OUT]``: OUT is the folder that holds the
``aicloud`` package (default: the one this module is in), so that the generated modules import
each other as ``aicloud.inference.v2grpc.*``.
"""

from __future__ import annotations

import sys
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent
SOURCE_ROOT = PACKAGE.parents[2]  # the folder that holds aicloud/
SERVICE_PROTO = "grpc_predict_v2.proto"  # messages and the service
MESSAGE_PROTOS = ("triton_extensions.proto",)  # messages only


def _protoc(out: Path, name: str, with_service: bool) -> list[Path]:
    from grpc_tools import protoc

    args = [
        "grpc_tools.protoc",
        f"--proto_path={SOURCE_ROOT}",
        f"--python_out={out}",
        *([f"--grpc_python_out={out}"] if with_service else []),
        str((PACKAGE / name).relative_to(SOURCE_ROOT)),
    ]
    if protoc.main(args) != 0:
        raise RuntimeError(f"protoc failed: {' '.join(args)}")
    stem = out / PACKAGE.relative_to(SOURCE_ROOT) / name.removesuffix(".proto")
    return [Path(f"{stem}_pb2.py"), *([Path(f"{stem}_pb2_grpc.py")] if with_service else [])]


def generate(out: Path = SOURCE_ROOT) -> list[Path]:
    """Run protoc on the ``.proto`` files into ``out``; the generated files' paths."""
    try:
        import grpc_tools  # noqa: F401
    except ImportError:
        raise SystemExit(
            "generating the gRPC modules needs grpcio-tools: pip install aicloud[test]"
        ) from None
    paths = _protoc(out, SERVICE_PROTO, with_service=True)
    for name in MESSAGE_PROTOS:
        paths += _protoc(out, name, with_service=False)
    return paths


if __name__ == "__main__":
    for path in generate(Path(sys.argv[1]) if len(sys.argv) > 1 else SOURCE_ROOT):
        print(path)
