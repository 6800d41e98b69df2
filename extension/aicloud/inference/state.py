"""The served model: its name, tensors, batcher, statistics, and the protocol's documents.

:class:`ModelState` is what both front ends call, the REST routes and the gRPC server:
``name``, ``ready``, :meth:`~ModelState.metadata`, :meth:`~ModelState.config`,
:meth:`~ModelState.statistics` and ``await`` :meth:`~ModelState.infer`, on the event loop
that runs the batcher.
"""

from __future__ import annotations

import os
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import numpy as np

from aicloud.inference.batching import BatchObserver, DynamicBatcher, QueueFull
from aicloud.inference.options import TORCH_FORMATS, InferenceOptions
from aicloud.inference.protocol import INPUT_NAME, OUTPUT_NAME, TensorSpec
from aicloud.inference.stats import ModelStatistics

VERSION = "1"
#: Triton's model configuration names of the protocol's datatypes.
CONFIG_TYPES = {"BYTES": "TYPE_STRING"}

__all__ = ["VERSION", "ModelCallError", "ModelNotReady", "ModelState", "QueueFull"]


class ModelNotReady(RuntimeError):
    """The model is still loading."""


class ModelCallError(ValueError):
    """The model raised on this input; the message is its first line."""


def thread_env(threads: int) -> dict[str, str]:
    """Variables that size the frameworks' intra-op thread pools (set before they load)."""
    n = str(threads)
    return {"OMP_NUM_THREADS": n, "MKL_NUM_THREADS": n, "TF_NUM_INTRAOP_THREADS": n}


class ModelState:
    """The model behind the routes: its name, tensors, batcher, and whether it is loaded."""

    def __init__(
        self,
        name: str,
        options: InferenceOptions,
        cwd: Path,
        observer: BatchObserver | None = None,
    ):
        self.name, self.options, self.cwd = name, options, cwd
        self.observer = observer
        self.ready = False
        self.platform = ""
        self.spec = TensorSpec(INPUT_NAME, options.datatype, options.input_shape)
        self.output: dict[str, Any] = {"name": OUTPUT_NAME, "datatype": "FP32", "shape": [-1]}
        self.stats = ModelStatistics()
        self.batcher: DynamicBatcher | None = None
        #: ``await authorize(header)`` raises an error with ``status`` 401/403 for a request
        #: that may not call the model (the gRPC port uses it); None: no authentication.
        self.authorize: Callable[[str | None], Awaitable[None]] | None = None

    def load(self) -> None:
        """Load the model and learn its output from one row of zeros when its shape is known."""
        from aicloud.inference.loading import NUMPY_TYPES, datatype_of, load_model

        for key, value in thread_env(self.options.threads).items():
            os.environ.setdefault(key, value)
        if self.options.resolved_format in TORCH_FORMATS:
            import torch

            torch.set_num_threads(self.options.threads)
        loaded = load_model(self.options, self.cwd)
        self.platform = loaded.platform
        self.spec = TensorSpec(INPUT_NAME, self.options.datatype, loaded.row_shape)
        if loaded.row_shape is not None:
            row = [1 if d == -1 else d for d in loaded.row_shape]
            probe = loaded.predict(np.zeros([1, *row], dtype=NUMPY_TYPES[self.options.datatype]))
            self.output = {
                "name": OUTPUT_NAME,
                "datatype": datatype_of(probe).value,
                "shape": [-1, *probe.shape[1:]],
            }
        self.batcher = DynamicBatcher(
            loaded.predict,
            self.options.max_batch_size,
            self.options.max_wait_ms / 1000,
            max_queue=self.options.max_queue,
            model_thread=self.options.model_thread,
            stats=self.stats,
            observer=self.observer,
        )
        self.ready = True

    async def infer(self, array: np.ndarray) -> np.ndarray:
        """The model's output for ``array`` (rows along axis 0), through the batcher.

        Raises :class:`ModelNotReady`, :class:`QueueFull` or :class:`ModelCallError`.
        """
        if not self.ready or self.batcher is None:
            raise ModelNotReady(f"model {self.name!r} is still loading")
        try:
            return await self.batcher.submit(array)
        except QueueFull:
            raise
        except Exception as e:
            first = (str(e).strip().splitlines() or [""])[0][:500]
            raise ModelCallError(
                f"the model cannot run on this input: {type(e).__name__}: {first}"
            ) from None

    def metadata(self) -> dict[str, Any]:
        """The model metadata document."""
        row = self.spec.row_shape if self.spec.row_shape is not None else [-1]
        return {
            "name": self.name,
            "versions": [VERSION],
            "platform": self.platform,
            "inputs": [
                {"name": INPUT_NAME, "datatype": self.spec.datatype.value, "shape": [-1, *row]}
            ],
            "outputs": [self.output],
            "parameters": {
                "max_batch_size": self.options.max_batch_size,
                "max_wait_ms": self.options.max_wait_ms,
            },
        }

    def config(self) -> dict[str, Any]:
        """The model configuration document, as Triton's ``/config`` has it.

        ``max_batch_size`` is the most rows of one model call; ``dims`` leave out the batch
        dimension, as Triton's do for a model with ``max_batch_size`` above 0.
        """
        row = self.spec.row_shape if self.spec.row_shape is not None else [-1]
        config: dict[str, Any] = {
            "name": self.name,
            "platform": self.platform,
            "backend": "aicloud",
            "version_policy": {"latest": {"num_versions": 1}},
            "max_batch_size": self.options.max_batch_size,
            "input": [_config_tensor(INPUT_NAME, self.spec.datatype.value, row)],
            "output": [
                _config_tensor(OUTPUT_NAME, self.output["datatype"], self.output["shape"][1:])
            ],
            "instance_group": [{"name": self.name, "kind": "KIND_CPU", "count": 1}],
            "parameters": {
                "workers": {"string_value": str(self.options.workers)},
                "threads": {"string_value": str(self.options.threads)},
            },
        }
        if self.options.max_batch_size > 1:
            config["dynamic_batching"] = {
                "max_queue_delay_microseconds": int(self.options.max_wait_ms * 1000),
                "default_queue_policy": {"max_queue_size": self.options.max_queue},
            }
        return config

    def statistics(self) -> dict[str, Any]:
        """This model's entry of the statistics extension's ``model_stats``."""
        return self.stats.model(self.name, VERSION)

    def repository_entry(self) -> dict[str, str]:
        """This model in the repository index."""
        state = "READY" if self.ready else "LOADING"
        return {"name": self.name, "version": VERSION, "state": state, "reason": ""}


def _config_tensor(name: str, datatype: str, dims: list[int]) -> dict[str, Any]:
    data_type = CONFIG_TYPES.get(datatype, f"TYPE_{datatype}")
    return {"name": name, "data_type": data_type, "dims": list(dims) or [1]}
