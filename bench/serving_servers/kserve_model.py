"""KServe's Python model server (``kserve.ModelServer``) with the benchmark's MLP.

Run by ``bench/serving.py`` in ``bench/.venvs/kserve``, from the model folder, as KServe's
docs write a custom predictor: a ``kserve.Model`` whose ``predict`` takes the v2
``InferRequest`` and answers an ``InferResponse``; every other flag is KServe's own
(``--http_port``, ``--workers``, ``--enable_grpc`` ...). KServe's Python server has no
batching of its own (batching is its Go agent's, a sidecar in a cluster).

    python kserve_model.py --model_dir DIR --http_port PORT [KServe's flags]
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

import torch
from kserve import InferOutput, InferRequest, InferResponse, Model, ModelServer, model_server
from kserve.utils.utils import generate_uuid

NAME = "mlp"


class MLPModel(Model):
    """The MLP behind ``/v2/models/mlp/infer``."""

    def __init__(self, name: str, folder: Path):
        super().__init__(name)
        self.folder = folder
        self.module: torch.nn.Module | None = None

    def load(self) -> bool:
        sys.path.insert(0, str(self.folder))
        import mlp

        self.module = mlp.load(self.folder)
        self.ready = True
        return self.ready

    def predict(self, payload: InferRequest, headers: dict | None = None) -> InferResponse:
        batch = payload.inputs[0].as_numpy()
        with torch.inference_mode():
            result = self.module(torch.from_numpy(batch)).numpy()
        output = InferOutput(name="output", shape=list(result.shape), datatype="FP32")
        output.set_data_from_numpy(result, binary_data=False)
        return InferResponse(
            response_id=payload.id or generate_uuid(), model_name=self.name, infer_outputs=[output]
        )


def main() -> None:
    parser = argparse.ArgumentParser(parents=[model_server.parser])
    parser.add_argument("--model_dir", type=Path, required=True)
    args, _ = parser.parse_known_args()
    model = MLPModel(NAME, args.model_dir)
    model.load()
    server = ModelServer()  # reads KServe's flags itself; configures its logging
    # No per-request log lines, as aicloud writes none: KServe's latency line is off by flag,
    # its access log and request trace by level.
    for name in ("uvicorn.access", "kserve.trace"):
        logging.getLogger(name).setLevel(logging.WARNING)
    server.start([model])


if __name__ == "__main__":
    main()
