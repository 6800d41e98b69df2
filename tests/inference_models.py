"""Small real models saved in every format the inference jobs load, for the inference tests."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np

FEATURES = 4
# Written into a server's root so that a state_dict job can import ``tiny_model:TinyNet``.
TINY_MODEL_SOURCE = """
import os
import time

import torch


class TinyNet(torch.nn.Module):
    def __init__(self, hidden=8, delay=0.0):
        super().__init__()
        self.delay = delay
        self.layers = torch.nn.Sequential(
            torch.nn.Linear(4, hidden), torch.nn.ReLU(), torch.nn.Linear(hidden, 2)
        )

    def forward(self, x):
        if self.delay:
            time.sleep(self.delay)
        return self.layers(x)
"""


def tiny_net(folder: Path, hidden: int = 8):
    """A seeded ``TinyNet`` imported from ``folder/tiny_model.py`` (written there)."""
    import importlib.util

    import torch

    path = folder / "tiny_model.py"
    path.write_text(TINY_MODEL_SOURCE)
    spec = importlib.util.spec_from_file_location("tiny_model", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    torch.manual_seed(0)
    return module.TinyNet(hidden=hidden).eval()


def rows(n: int, seed: int = 0) -> np.ndarray:
    """``n`` rows of float32 features."""
    return np.random.default_rng(seed).normal(size=(n, FEATURES)).astype(np.float32)


def torch_outputs(model, x: np.ndarray, batch_size: int | None = None) -> np.ndarray:
    """The model's in-process output, ``batch_size`` rows per call (all at once if None)."""
    import torch

    step = batch_size or max(len(x), 1)
    with torch.inference_mode():
        parts = [model(torch.from_numpy(x[i : i + step])).numpy() for i in range(0, len(x), step)]
    return np.concatenate(parts)


def save_torch_models(folder: Path) -> dict[str, dict]:
    """TorchScript, torch.export and state-dict copies of one TinyNet; their inference options."""
    import torch

    model = tiny_net(folder)
    with warnings.catch_warnings():  # TorchScript is deprecated in torch 2.13; still loaded
        warnings.filterwarnings("ignore", "`torch.jit", DeprecationWarning)
        torch.jit.save(torch.jit.script(model.layers), folder / "tiny.pt")
    batch = torch.export.Dim("batch", min=1, max=1_000_000)
    program = torch.export.export(
        model, (torch.zeros(2, FEATURES),), dynamic_shapes={"x": {0: batch}}
    )
    torch.export.save(program, folder / "tiny.pt2")
    torch.save(model.state_dict(), folder / "tiny_state.pt")
    return {
        "torchscript": {"model": "tiny.pt", "input_shape": [FEATURES]},
        "torch_export": {"model": "tiny.pt2"},
        "state_dict": {"model": "tiny_state.pt", "model_class": "tiny_model:TinyNet"},
    }


def save_tf_models(folder: Path):
    """A Keras file and a SavedModel of one small Keras model; the model and their options."""
    import keras
    import tensorflow as tf

    keras.utils.set_random_seed(0)
    model = keras.Sequential(
        [keras.Input((FEATURES,)), keras.layers.Dense(8, activation="relu"), keras.layers.Dense(2)]
    )
    model.save(folder / "tiny.keras")
    module = tf.Module()
    module.model = model
    module.serve = tf.function(
        lambda x: {"output": model(x, training=False)},
        input_signature=[tf.TensorSpec([None, FEATURES], tf.float32, name="x")],
    )
    tf.saved_model.save(
        module, str(folder / "tiny_savedmodel"), signatures={"serving_default": module.serve}
    )
    return model, {
        "keras": {"model": "tiny.keras"},
        "savedmodel": {"model": "tiny_savedmodel", "format": "savedmodel"},
    }


def cancel_active_jobs(live_server) -> None:
    """Cancel a test's jobs that still run: jobs outlive their server, serve jobs never end."""
    with live_server.api() as api:
        for job in api.get("jobs", params={"limit": 500}).json()["jobs"]:
            if job["status"] in ("queued", "starting", "running"):
                api.post(f"jobs/{job['id']}/cancel")
