"""The benchmark's model, the same for every server: a small MLP, 64 → 256 → 256 → 8.

Every server loads ``mlp.pt`` (the state dict, seed 0) into :class:`MLP`, a plain
``nn.Sequential``, and runs it under ``torch.inference_mode`` with one thread
(``OMP_NUM_THREADS=1``, set by ``bench/serving.py``). This file is copied next to the weights,
so each server imports it from the model folder (aicloud as ``model_class: mlp:MLP``).
"""

from __future__ import annotations

from pathlib import Path

import torch

FEATURES = 64
OUTPUTS = 8
WEIGHTS = "mlp.pt"


class MLP(torch.nn.Sequential):
    """64 → 256 → 256 → 8 with ReLUs."""

    def __init__(self) -> None:
        super().__init__(
            torch.nn.Linear(FEATURES, 256),
            torch.nn.ReLU(),
            torch.nn.Linear(256, 256),
            torch.nn.ReLU(),
            torch.nn.Linear(256, OUTPUTS),
        )


def save(folder: Path) -> Path:
    """Write the seeded model's state dict to ``folder/mlp.pt``; its path."""
    torch.manual_seed(0)
    path = folder / WEIGHTS
    torch.save(MLP().state_dict(), path)
    return path


def load(folder: Path) -> MLP:
    """The model from ``folder/mlp.pt``, in eval mode."""
    model = MLP()
    model.load_state_dict(torch.load(folder / WEIGHTS, weights_only=True))
    return model.eval()
