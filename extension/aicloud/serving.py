"""A serve job's request statistics, read from its model server's Prometheus ``/metrics``.

The server (:mod:`aicloud.inference.server`) exports ``aicloud_inference_requests_total``
(labels ``model``, ``code``), the histograms ``aicloud_inference_request_duration_seconds``
and ``aicloud_inference_batch_size``, and the gauge ``aicloud_inference_queue_depth``. The
service fetches the page with the job's serving token (the file :data:`TOKEN_FILE` in the run
directory, where the server has one) and reduces it: quantiles from buckets as Prometheus'
``histogram_quantile`` computes them.

The job writes its endpoint file, so the URL is the job's choice: only numbers of the answer
are passed on, never its text, and only an http(s) URL is fetched.
"""

from __future__ import annotations

import math
from typing import Any

import httpx
from prometheus_client.parser import text_string_to_metric_families

from aicloud.errors import AICloudError, JobConflict, UnsafeRunFile
from aicloud.models import endpoint_model
from aicloud.runs import read_run_file
from aicloud.store import Job

TOKEN_FILE = "serving.token"  # written 0600 by the serve launcher, read as the service
REQUESTS = "aicloud_inference_requests"
DURATION = "aicloud_inference_request_duration_seconds"
BATCH_SIZE = "aicloud_inference_batch_size"
QUEUE_DEPTH = "aicloud_inference_queue_depth"
FETCH_TIMEOUT = 5.0


class ServerUnreachable(AICloudError):
    """The model server did not answer ``/metrics``."""

    status = 502


def histogram_quantile(quantile: float, buckets: list[tuple[float, float]]) -> float | None:
    """The ``quantile`` of a histogram from cumulative ``(le, count)`` buckets, as Prometheus
    does: linear within the bucket it falls in; the highest finite bound if in ``+Inf``."""
    buckets = sorted(buckets)
    if not buckets or buckets[-1][0] != math.inf or buckets[-1][1] <= 0:
        return None
    rank = quantile * buckets[-1][1]
    lower_bound, lower_count = 0.0, 0.0
    for bound, count in buckets:
        if count >= rank:
            if bound == math.inf:
                return lower_bound
            if count == lower_count:
                return bound
            share = (rank - lower_count) / (count - lower_count)
            return lower_bound + (bound - lower_bound) * share
        lower_bound, lower_count = bound, count
    return None


def _buckets(samples: list, name: str) -> list[tuple[float, float]]:
    """Cumulative buckets of histogram ``name``, summed over its label sets."""
    summed: dict[float, float] = {}
    for sample in samples:
        if sample.name == f"{name}_bucket":
            bound = float(sample.labels["le"])
            summed[bound] = summed.get(bound, 0.0) + sample.value
    return sorted(summed.items())


def reduce_metrics(text: str) -> dict[str, Any]:
    """Requests, errors, latency quantiles (ms), cumulative batch-size buckets (the last one's
    bound ``"+Inf"``) and queue depth."""
    samples = [s for family in text_string_to_metric_families(text) for s in family.samples]
    requests = errors = 0
    queue_depth = None
    for sample in samples:
        if sample.name == f"{REQUESTS}_total":
            requests += int(sample.value)
            if not str(sample.labels.get("code", "200")).startswith("2"):
                errors += int(sample.value)
        elif sample.name == QUEUE_DEPTH:
            queue_depth = (queue_depth or 0) + int(sample.value)
    latency = _buckets(samples, DURATION)
    quantiles = {
        name: (None if (value := histogram_quantile(q, latency)) is None else value * 1000)
        for name, q in (("p50", 0.5), ("p99", 0.99))
    }
    batch_sizes = [  # cumulative, as Prometheus keeps them
        {"le": "+Inf" if bound == math.inf else bound, "count": count}
        for bound, count in _buckets(samples, BATCH_SIZE)
    ]
    return {
        "requests": requests,
        "errors": errors,
        "latency_ms": quantiles,
        "batch_sizes": batch_sizes,
        "queue_depth": queue_depth,
    }


async def serving_stats(job: Job) -> dict[str, Any]:
    """The statistics of a serving serve job; 409 for any other job, 502 if it won't answer."""
    endpoint = endpoint_model(job)
    if endpoint is None:
        raise JobConflict(f"job {job.id} is not a serve job that is serving ({job.status})")
    if not endpoint["url"].startswith(("http://", "https://")):
        raise ServerUnreachable(f"job {job.id}: its endpoint is not an http(s) URL")
    headers = {}
    try:
        token = (read_run_file(job.run_dir, TOKEN_FILE, 4096) or "").strip()
    except UnsafeRunFile:
        token = ""
    if token:
        headers["Authorization"] = f"Bearer {token}"
    try:
        async with httpx.AsyncClient(timeout=FETCH_TIMEOUT) as client:
            answer = await client.get(f"{endpoint['url']}/metrics", headers=headers)
    except httpx.HTTPError as e:
        raise ServerUnreachable(f"job {job.id}: the model server did not answer: {e}") from None
    if answer.status_code != 200:
        raise ServerUnreachable(
            f"job {job.id}: the model server answered /metrics with {answer.status_code}"
        )
    try:
        stats = reduce_metrics(answer.text)
    except (ValueError, KeyError, IndexError):  # what it said is not repeated: the job names
        raise ServerUnreachable(f"job {job.id}: /metrics is not Prometheus text") from None
    return {"endpoint": endpoint, **stats}
