"""``serve()``, ``predict()`` and ``infer()``: what the CLI and the magics call.

They talk to the aicloud service (found by :func:`aicloud.client.discover`) to start jobs,
and to a serve job's model server directly over the Open Inference Protocol::

    from aicloud import inference

    endpoint = inference.serve("model.pt", name="churn", input_shape=[4])
    inference.predict("churn", [[0.1, 0.2, 0.3, 0.4]])
    job = inference.infer("model.pt", ["data/*.parquet"], procs=4)
    scores = inference.predictions(job["id"])
"""

from __future__ import annotations

import io
import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from aicloud.client import AICloudClient, APIError
from aicloud.inference.v2client import V2Client

ENDPOINT_FILE = "endpoint.json"
PREDICTIONS = "predictions.npy"
TERMINAL = ("succeeded", "failed", "cancelled")
OPTION_NAMES = (
    "format",
    "model_class",
    "model_kwargs",
    "model_name",
    "input_shape",
    "datatype",
    "batch_size",
    "shard_rows",
    "output_dir",
    "max_batch_size",
    "max_wait_ms",
    "port",
    "grpc_port",
    "max_queue",
    "workers",
    "threads",
    "model_thread",
)


@dataclass(frozen=True)
class Endpoint:
    """A running model server: the serve job, the model's name and the server's URL.

    ``token`` is the caller's (their aicloud client's), which the model server of their own
    serve job accepts; it is left out of the ``repr``.
    """

    job_id: str
    model: str
    url: str
    token: str = field(default="", repr=False)

    def client(self) -> V2Client:
        """A v2 client of this server, with the caller's token."""
        return V2Client(self.url, token=self.token)

    def predict(self, data: Any) -> np.ndarray:
        """The model's output for ``data`` (see :func:`predict`).

        Integers and floats are sent as the model's floating-point input type; anything else
        goes as it is, and the server says what it would have taken.
        """
        from aicloud.inference.loading import NUMPY_TYPES
        from aicloud.inference.options import Datatype

        array = as_array(data)
        with self.client() as v2:
            (wanted,) = v2.model_metadata(self.model)["inputs"]
            target = np.dtype(NUMPY_TYPES[Datatype(wanted["datatype"])])
            if target.kind == "f" and array.dtype.kind in "iuf":
                array = array.astype(target)
            return v2.infer(self.model, array)


def job_spec(kind: str, model: str, name: str | None, framework: str, **options: Any) -> dict:
    """The job spec of a serve or infer job; options left as None are not sent."""
    inference = {"model": model}
    for key, value in options.items():
        if key not in OPTION_NAMES and key not in ("data",):
            raise TypeError(f"unknown option {key!r}")
        if value is not None:
            inference[key] = value
    spec: dict[str, Any] = {"kind": kind, "framework": framework, "inference": inference}
    if name:
        spec["name"] = name
    return spec


def _client(client: AICloudClient | None) -> AICloudClient:
    return client if client is not None else AICloudClient()


def serve(
    model: str,
    name: str | None = None,
    *,
    framework: str = "none",
    wait: bool = True,
    timeout: float = 300,
    client: AICloudClient | None = None,
    job: dict | None = None,
    **options: Any,
) -> Endpoint | dict:
    """Start a serve job for ``model``; with ``wait``, return its :class:`Endpoint` once ready.

    ``options`` are fields of ``JobSpec.inference`` (``input_shape``, ``max_batch_size``...);
    ``job`` adds job fields (``max_retries``, ``env``...). Without ``wait``, returns the job.
    """
    api = _client(client)
    spec = {**job_spec("serve", model, name, framework, **options), **(job or {})}
    created = api.submit(spec)
    if not wait:
        return created
    return endpoint(created["id"], client=api, timeout=timeout)


def _serve_job(api: AICloudClient, target: str) -> dict:
    """The serve job with id ``target``, else the newest active one named ``target``."""
    try:
        found = api.get(target)
        if found["kind"] == "serve":
            return found
    except APIError as e:
        if e.status != 404:
            raise
    page = api.list(kind="serve", status=["queued", "starting", "running"], limit=500)
    named = [j for j in page["jobs"] if j["name"] == target]
    if not named:
        raise LookupError(f"no running serve job with id or name {target!r}")
    return named[0]


def endpoint(target: str, client: AICloudClient | None = None, timeout: float = 0) -> Endpoint:
    """The endpoint of a serve job (by id or name), waiting up to ``timeout`` s for it."""
    api = _client(client)
    deadline = time.monotonic() + timeout
    job_id = _serve_job(api, target)["id"]
    while True:
        job = api.get(job_id)
        if job["status"] in TERMINAL:
            raise RuntimeError(f"serve job {job_id} {job['status']}: {job['reason']}")
        try:
            found = json.loads(api.download(job_id, ENDPOINT_FILE))
        except APIError as e:
            if e.status != 404:
                raise
        else:
            result = Endpoint(job_id, found["model"], found["url"], api.connection.token)
            with result.client() as v2:
                if v2.ready():
                    return result
        if time.monotonic() > deadline:
            raise TimeoutError(f"serve job {job_id} is {job['status']} but not ready yet")
        time.sleep(0.2)


def as_array(data: Any) -> np.ndarray:
    """``data`` as rows: an array, nested lists, or the path of a data file."""
    if isinstance(data, (str, Path)):
        from aicloud.inference.data import count_rows, read_rows

        path = Path(data)
        rows = read_rows(path, 0, count_rows(path), np.float32)
        return rows
    array = np.asarray(data)
    if array.dtype == np.float64:
        array = array.astype(np.float32)
    return array


def predict(target: Endpoint | str, data: Any, client: AICloudClient | None = None) -> np.ndarray:
    """The predictions of a served model for ``data``.

    ``target``: an :class:`Endpoint`, a serve job's id or name, or a model URL
    (``http://host:port/v2/models/NAME``, called with ``client``'s token, or
    ``$AICLOUD_TOKEN`` without a client). ``data``: an array, nested lists (float64 is sent as
    FP32), or the path of a .npy, .parquet, .csv or .jsonl file.
    """
    if isinstance(target, Endpoint):
        return target.predict(data)
    if target.startswith(("http://", "https://")):
        base, sep, model = target.rstrip("/").partition("/v2/models/")
        if not sep or not model:
            raise ValueError("target: a URL must end in /v2/models/NAME")
        token = client.connection.token if client else os.environ.get("AICLOUD_TOKEN", "")
        return Endpoint("", model.split("/")[0], base, token).predict(data)
    return endpoint(target, client=client).predict(data)


def infer(
    model: str,
    data: list[str] | str,
    *,
    procs: int = 1,
    name: str | None = None,
    framework: str = "none",
    wait: bool = False,
    client: AICloudClient | None = None,
    job: dict | None = None,
    **options: Any,
) -> dict:
    """Start a batch inference job of ``model`` over ``data`` files in ``procs`` workers.

    Returns the job (once it has ended with ``wait``); :func:`predictions` reads the result.
    """
    api = _client(client)
    files = [data] if isinstance(data, str) else list(data)
    spec = job_spec("infer", model, name, framework, data=files, **options)
    spec["resources"] = {"procs_per_node": procs}
    spec.update(job or {})
    created = api.submit(spec)
    return api.wait(created["id"]) if wait else created


def predictions(job_id: str, client: AICloudClient | None = None) -> np.ndarray:
    """The merged predictions of a finished infer job (kept in its outputs)."""
    return np.load(io.BytesIO(_client(client).download(job_id, PREDICTIONS)))
