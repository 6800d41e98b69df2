"""Inference statistics in the shape of Triton's statistics extension.

``GET /v2/models/NAME[/versions/V]/stats`` answers ``{"model_stats": [...]}`` with, per model,
``inference_count`` (rows inferred), ``execution_count`` (model calls), ``inference_stats``
(count and total nanoseconds of successful and failed requests, of their time queued for the
model, and of decoding the input, running the model and encoding the output) and
``batch_stats`` (the same per batch size of model call), as
``tritonclient``'s ``get_inference_statistics`` returns them. Counts are of this process.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

PHASES = ("success", "fail", "queue", "compute_input", "compute_infer", "compute_output")


@dataclass
class Duration:
    """How many times something happened, and its total nanoseconds."""

    count: int = 0
    ns: int = 0

    def add(self, ns: int, count: int = 1) -> None:
        self.count += count
        self.ns += ns

    def model(self) -> dict[str, int]:
        return {"count": self.count, "ns": self.ns}


@dataclass
class BatchDurations:
    """The model calls of one batch size."""

    compute_input: Duration = field(default_factory=Duration)
    compute_infer: Duration = field(default_factory=Duration)
    compute_output: Duration = field(default_factory=Duration)


@dataclass
class ModelStatistics:
    """Counts and durations of one model's requests and model calls."""

    inference_count: int = 0
    execution_count: int = 0
    last_inference_ms: int = 0
    phases: dict[str, Duration] = field(
        default_factory=lambda: {phase: Duration() for phase in PHASES}
    )
    batches: dict[int, BatchDurations] = field(default_factory=dict)
    largest_batch_rows: int = 0

    def executed(self, rows: int, ns: int) -> None:
        """One model call of ``rows`` rows that took ``ns`` nanoseconds."""
        self.execution_count += 1
        self.inference_count += rows
        self.largest_batch_rows = max(self.largest_batch_rows, rows)
        self.last_inference_ms = time.time_ns() // 1_000_000
        self.batches.setdefault(rows, BatchDurations()).compute_infer.add(ns)
        self.phases["compute_infer"].add(ns)

    def model(self, name: str, version: str) -> dict[str, Any]:
        """One entry of ``model_stats``."""
        return {
            "name": name,
            "version": version,
            "last_inference": self.last_inference_ms,
            "inference_count": self.inference_count,
            "execution_count": self.execution_count,
            "inference_stats": {phase: d.model() for phase, d in self.phases.items()},
            "batch_stats": [
                {
                    "batch_size": size,
                    "compute_input": b.compute_input.model(),
                    "compute_infer": b.compute_infer.model(),
                    "compute_output": b.compute_output.model(),
                }
                for size, b in sorted(self.batches.items())
            ],
        }
