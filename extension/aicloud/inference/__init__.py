"""Batch inference and Open Inference Protocol (v2) model serving.

- :mod:`~aicloud.inference.options`: ``JobSpec.inference`` (model, data, batching);
- :mod:`~aicloud.inference.loading`: load torch and TensorFlow models as one callable;
- :mod:`~aicloud.inference.data` and :mod:`~aicloud.inference.sharding`: read files, split rows;
- :mod:`~aicloud.inference.runner`: one batch worker (``python -m aicloud.inference.runner``);
- :mod:`~aicloud.inference.server`: the v2 model server's processes and lifecycle, with
  :mod:`~aicloud.inference.routes` (REST), :mod:`~aicloud.inference.state` (the model),
  :mod:`~aicloud.inference.batching`, :mod:`~aicloud.inference.protocol` and
  :mod:`~aicloud.inference.binary` (tensors), :mod:`~aicloud.inference.stats`,
  :mod:`~aicloud.inference.metrics`, :mod:`~aicloud.inference.auth` and
  :mod:`~aicloud.inference.workers`;
- :mod:`~aicloud.inference.v2client` and :mod:`~aicloud.inference.api`: the client side,
  ``serve()``, ``predict()`` and ``infer()``;
- :mod:`~aicloud.inference.kserve`: a KServe ``InferenceService`` from a serve spec.

Nothing here imports torch, TensorFlow or numpy until a function needs them.
"""

from __future__ import annotations

from aicloud.inference.options import Datatype, InferenceOptions, ModelFormat

__all__ = [
    "Datatype",
    "InferenceOptions",
    "ModelFormat",
    "endpoint",
    "infer",
    "predict",
    "predictions",
    "serve",
]


def __getattr__(name: str):
    if name in ("serve", "predict", "infer", "endpoint", "predictions"):
        from aicloud.inference import api

        return getattr(api, name)
    raise AttributeError(name)
