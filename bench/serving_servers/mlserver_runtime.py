"""MLServer with the benchmark's MLP: a custom ``mlserver.MLModel`` runtime.

``bench/serving.py`` copies this file and ``mlp.py`` into a model repository folder with
``settings.json`` (ports, ``debug`` off) and ``model-settings.json`` (``implementation:
mlserver_runtime.MLPRuntime``; adaptive batching through ``max_batch_size`` and
``max_batch_time`` when the variant asks), and runs ``mlserver start FOLDER`` in
``bench/.venvs/mlserver``. MLServer runs ``predict`` in its inference worker process
(``parallel_workers``, default 1).
"""

from __future__ import annotations

from pathlib import Path

import mlp
import torch
from mlserver import MLModel
from mlserver.codecs import NumpyCodec
from mlserver.types import InferenceRequest, InferenceResponse


class MLPRuntime(MLModel):
    """The MLP behind ``/v2/models/mlp/infer``."""

    async def load(self) -> bool:
        self.module = mlp.load(Path(self.settings.parameters.uri))
        return True

    async def predict(self, payload: InferenceRequest) -> InferenceResponse:
        batch = NumpyCodec.decode_input(payload.inputs[0])
        with torch.inference_mode():
            result = self.module(torch.from_numpy(batch)).numpy()
        return InferenceResponse(
            model_name=self.name,
            id=payload.id,
            outputs=[NumpyCodec.encode_output("output", result)],
        )
