"""``JobSpec.inference``: what an ``infer`` or ``serve`` job loads, reads, writes and batches.

Kept free of heavy imports (no torch, TensorFlow or numpy) because :mod:`aicloud.spec` uses it.
"""

from __future__ import annotations

import re
from enum import Enum
from pathlib import PurePosixPath
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, field_validator, model_validator

MODEL_NAME = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$"
REMOTE = re.compile(r"^[a-z][a-z0-9+.-]*://", re.IGNORECASE)


def _local_path(value: str) -> str:
    """Refuse NUL and URLs: only files under the server's root can be read for now."""
    if "\x00" in value:
        raise ValueError("must not contain NUL")
    if REMOTE.match(value):
        raise ValueError(
            "remote URLs are not supported yet; copy the files under the server's root directory"
        )
    if PurePosixPath(value).is_absolute():
        raise ValueError("must be relative to the job's working directory")
    return value


LocalPath = Annotated[str, Field(min_length=1, max_length=4096), AfterValidator(_local_path)]


class ModelFormat(str, Enum):
    """How a model was saved."""

    torchscript = "torchscript"  # torch.jit.save
    torch_export = "torch_export"  # torch.export.save (.pt2)
    state_dict = "state_dict"  # torch.save(model.state_dict()) plus model_class
    savedmodel = "savedmodel"  # tf.saved_model.save (a directory)
    keras = "keras"  # model.save("m.keras")


TORCH_FORMATS = frozenset(
    {ModelFormat.torchscript, ModelFormat.torch_export, ModelFormat.state_dict}
)


class Datatype(str, Enum):
    """Open Inference Protocol tensor types that aicloud models take."""

    FP32 = "FP32"
    FP64 = "FP64"
    FP16 = "FP16"
    INT64 = "INT64"
    INT32 = "INT32"
    INT16 = "INT16"
    INT8 = "INT8"
    UINT8 = "UINT8"
    BOOL = "BOOL"


def guess_format(path: str) -> ModelFormat | None:
    """The format a model path's name implies, or None when it says nothing."""
    name = path.rstrip("/").lower()
    if name.endswith(".pt2"):
        return ModelFormat.torch_export
    if name.endswith((".keras", ".h5")):
        return ModelFormat.keras
    if name.endswith((".pt", ".pth", ".ts", ".torchscript")):
        return ModelFormat.torchscript
    return None


class InferenceOptions(BaseModel):
    """The model, the data and the batching of an ``infer`` (batch) or ``serve`` job."""

    model_config = ConfigDict(extra="forbid", validate_default=True)

    model: LocalPath = Field(description="The saved model, relative to the job's cwd.")
    format: ModelFormat | None = Field(
        None, description="How the model was saved (default: from its name, else torchscript)."
    )
    model_class: str | None = Field(
        None,
        max_length=300,
        pattern=r"^[A-Za-z_][A-Za-z0-9_.]*:[A-Za-z_][A-Za-z0-9_]*$",
        description="state_dict models: the nn.Module class, as module.path:ClassName.",
    )
    model_kwargs: dict[str, Any] = Field(
        default_factory=dict, description="state_dict models: keyword arguments of the class."
    )
    model_name: str | None = Field(
        None, pattern=MODEL_NAME, description="The name in /v2/models/NAME (default: job name)."
    )
    input_shape: list[Annotated[int, Field(ge=-1, le=2**31)]] | None = Field(
        None, max_length=8, description="Shape of one row (no batch dimension); -1 for any."
    )
    datatype: Datatype = Field(Datatype.FP32, description="The input tensor's datatype.")
    data: list[LocalPath] = Field(
        default_factory=list,
        max_length=1000,
        description="infer: .npy, .parquet, .csv or .jsonl files or glob patterns.",
    )
    output_dir: LocalPath | None = Field(
        None, description="infer: where predictions.npy goes (default: the job's outputs)."
    )
    batch_size: int = Field(256, ge=1, le=65536, description="infer: rows per model call.")
    shard_rows: int = Field(10_000, ge=1, le=10**9, description="infer: rows per shard.")
    max_batch_size: int = Field(32, ge=1, le=4096, description="serve: 1 turns batching off.")
    max_wait_ms: float = Field(5.0, ge=0, le=10_000, description="serve: longest batch wait.")
    port: int | None = Field(None, ge=1024, le=65535, description="serve: default a free port.")
    grpc_port: int | None = Field(
        None, ge=0, le=65535, description="serve: the v2 gRPC port (0: a free one; None: off)."
    )
    max_queue: int = Field(
        1024,
        ge=1,
        le=1_000_000,
        description="serve: requests waiting for the model before new ones get 503.",
    )
    workers: int = Field(
        1, ge=1, le=64, description="serve: server processes sharing the port (SO_REUSEPORT)."
    )
    threads: int = Field(
        1, ge=1, le=256, description="serve: the model's intra-op threads in each worker."
    )
    model_thread: bool = Field(
        False,
        description="serve: run the model in a thread of its own (long model calls) instead "
        "of on the event loop (the fastest for small models).",
    )

    @field_validator("grpc_port")
    @classmethod
    def _check_grpc_port(cls, value: int | None) -> int | None:
        if value is not None and 0 < value < 1024:
            raise ValueError("0 (a free port) or 1024 to 65535")
        return value

    @field_validator("input_shape")
    @classmethod
    def _check_shape(cls, value: list[int] | None) -> list[int] | None:
        if value is not None and 0 in value:
            raise ValueError("dimensions are positive, or -1 for any size")
        return value

    @model_validator(mode="after")
    def _consistent(self) -> InferenceOptions:
        # model_class goes with format 'state_dict', and implies it when no format is given.
        if self.model_class is None:
            if self.format is ModelFormat.state_dict:
                raise ValueError("model_class is required for format 'state_dict'")
            if self.model_kwargs:
                raise ValueError("model_kwargs go with model_class")
        elif self.format is None:
            self.format = ModelFormat.state_dict
        elif self.format is not ModelFormat.state_dict:
            raise ValueError("model_class is only for format 'state_dict'")
        return self

    @property
    def resolved_format(self) -> ModelFormat:
        """The format given, else the one the name implies, else TorchScript."""
        return self.format or guess_format(self.model) or ModelFormat.torchscript


SERVE_ONLY = (
    "max_batch_size",
    "max_wait_ms",
    "port",
    "grpc_port",
    "max_queue",
    "workers",
    "threads",
    "model_thread",
)
INFER_ONLY = ("data", "output_dir", "shard_rows")


def check_for_kind(options: InferenceOptions, kind: str) -> None:
    """Refuse fields that the job's kind does not use, naming them (ValueError)."""
    given = options.model_fields_set
    if kind == "infer":
        if not options.data:
            raise ValueError("inference.data: an infer job needs at least one data file")
        wrong = [name for name in SERVE_ONLY if name in given]
    else:
        wrong = [name for name in INFER_ONLY if name in given and getattr(options, name)]
    if wrong:
        raise ValueError(f"inference.{wrong[0]}: not used by kind {kind!r}")
