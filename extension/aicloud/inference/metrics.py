"""Prometheus metrics of the model server, served at ``/metrics``.

- ``aicloud_inference_requests_total`` (labels ``model``, ``code``): infer calls by status;
- ``aicloud_inference_request_duration_seconds`` (``model``): a histogram of their latency;
- ``aicloud_inference_batch_size`` (``model``): a histogram of rows per model call;
- ``aicloud_inference_queue_depth`` (``model``): requests waiting for the model.

With several worker processes the metrics live in ``PROMETHEUS_MULTIPROC_DIR`` (set before
this module is imported, as prometheus_client's multiprocess mode requires) and ``/metrics``
sums every worker's.
"""

from __future__ import annotations

import os

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
)

from aicloud.inference.workers import MULTIPROC_ENV

LATENCY_BUCKETS = (
    0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0,
)  # fmt: skip
BATCH_BUCKETS = tuple(2**i for i in range(13))  # 1 to 4096 rows


class ServingMetrics:
    """The server's metrics, in a registry of their own (one per server)."""

    def __init__(self, model: str):
        self.model = model
        self.multiprocess = bool(os.environ.get(MULTIPROC_ENV))
        self.registry = CollectorRegistry(auto_describe=True)
        registry = None if self.multiprocess else self.registry
        if self.multiprocess:
            multiprocess.MultiProcessCollector(self.registry)
            registry = CollectorRegistry()  # the values go to files; this one is not read
        self.requests = Counter(
            "aicloud_inference_requests_total",
            "Infer requests, by model and HTTP status code.",
            ["model", "code"],
            registry=registry,
        )
        self.latency = Histogram(
            "aicloud_inference_request_duration_seconds",
            "Infer request latency in seconds, from the body read to the answer written.",
            ["model"],
            buckets=LATENCY_BUCKETS,
            registry=registry,
        )
        self.batch_rows = Histogram(
            "aicloud_inference_batch_size",
            "Rows per model call.",
            ["model"],
            buckets=BATCH_BUCKETS,
            registry=registry,
        )
        gauge_mode = {"multiprocess_mode": "livesum"} if self.multiprocess else {}
        self.depth = Gauge(
            "aicloud_inference_queue_depth",
            "Requests waiting for the model.",
            ["model"],
            registry=registry,
            **gauge_mode,
        )
        self._depth = self.depth.labels(model)
        self._batch = self.batch_rows.labels(model)
        self._latency = self.latency.labels(model)

    def request(self, code: int, seconds: float) -> None:
        """One infer call answered with ``code`` after ``seconds``."""
        self.requests.labels(self.model, str(code)).inc()
        self._latency.observe(seconds)

    def batch(self, rows: int) -> None:
        """One model call of ``rows`` rows."""
        self._batch.observe(rows)

    def queue_depth(self, depth: int) -> None:
        """Requests now waiting."""
        self._depth.set(depth)

    def exposition(self) -> tuple[bytes, str]:
        """The text exposition format and its content type."""
        return generate_latest(self.registry), CONTENT_TYPE_LATEST
