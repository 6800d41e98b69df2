"""A serve job as a KServe ``InferenceService`` (``serving.kserve.io/v1beta1``): a pure builder.

The predictor is a custom container running aicloud's own model server from the job's
``image`` (which must have aicloud and the model's framework installed), so that the same
formats, batching and error answers hold on the cluster. KServe's storage initializer
downloads ``storage_uri`` (``STORAGE_URI``: the model file itself, or a folder that holds it
under its own name) into ``/mnt/models``. The container works in ``/mnt/models`` and names the
model relative to it (the server takes relative model paths only). The server listens on
``0.0.0.0:8080``, the port KServe routes to and the kubelet probes on the pod's IP, and speaks
the Open Inference Protocol v2 (the same routes).
"""

from __future__ import annotations

import re
from pathlib import PurePosixPath
from typing import Any

from aicloud.errors import InvalidSpec
from aicloud.spec import JobKind, JobSpec

MODEL_DIR = "/mnt/models"
HOST = "0.0.0.0"  # every address: the kubelet's probes and KServe's Service reach the pod IP
PORT = 8080
READY_PATH = "/v2/health/ready"
LIVE_PATH = "/v2/health/live"
DNS_1035 = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")


def service_name(spec: JobSpec) -> str:
    """A DNS-1035 name from the model's or the job's name."""
    assert spec.inference is not None
    raw = spec.inference.model_name or spec.name or "model"
    name = re.sub(r"[^a-z0-9-]+", "-", raw.lower()).strip("-")
    name = re.sub(r"^[^a-z]+", "", name)[:45].rstrip("-")
    if not DNS_1035.match(name):
        raise InvalidSpec("name", f"{raw!r} gives no valid Kubernetes name; use letters first")
    return name


def _resources(spec: JobSpec) -> dict[str, Any]:
    r = spec.resources
    amounts: dict[str, Any] = {}
    if r.cpu is not None:
        amounts["cpu"] = f"{r.cpu:g}"
    if r.memory is not None:
        amounts["memory"] = r.memory
    limits = dict(amounts)
    if r.accelerator and r.accelerator_count:
        limits[r.accelerator] = str(r.accelerator_count)
    result: dict[str, Any] = {}
    if amounts:
        result["requests"] = amounts
    if limits:
        result["limits"] = limits
    return result


def model_file(spec: JobSpec) -> str:
    """The model's name in :data:`MODEL_DIR`, where the storage initializer puts it."""
    assert spec.inference is not None
    return PurePosixPath(spec.inference.model).name


def server_args(spec: JobSpec) -> list[str]:
    """The model server's arguments inside the container, which works in :data:`MODEL_DIR`."""
    options = spec.inference
    assert options is not None
    args = [
        f"--model={model_file(spec)}",
        f"--format={options.resolved_format.value}",
        f"--name={options.model_name or service_name(spec)}",
        f"--datatype={options.datatype.value}",
        f"--max-batch-size={options.max_batch_size}",
        f"--max-wait-ms={options.max_wait_ms:g}",
        f"--host={HOST}",
        f"--port={PORT}",
    ]
    if options.input_shape is not None:
        args.append("--input-shape=" + ",".join(str(d) for d in options.input_shape))
    return args


def inference_service(
    spec: JobSpec,
    storage_uri: str,
    namespace: str = "default",
    labels: dict[str, str] | None = None,
    service_account: str | None = None,
) -> dict[str, Any]:
    """The ``InferenceService`` manifest of a serve ``spec`` whose model is at ``storage_uri``.

    Raises :class:`InvalidSpec` for what a cluster cannot run: no ``image``, state-dict models
    (their class would have to be in the image; save TorchScript or ``torch.export``).
    """
    if spec.kind is not JobKind.serve or spec.inference is None:
        raise InvalidSpec("kind", "only serve jobs become an InferenceService")
    if not spec.image:
        raise InvalidSpec(
            "image", "required on Kubernetes: an image with aicloud and the model's framework"
        )
    if spec.inference.model_class is not None:
        raise InvalidSpec("inference.format", "state_dict models are not served on Kubernetes yet")
    if not re.match(r"^[a-z][a-z0-9+.-]*://", storage_uri):
        raise InvalidSpec("storage_uri", f"{storage_uri!r} is not a URI (s3://, gs://, pvc://...)")
    name = service_name(spec)
    env = [{"name": key, "value": value} for key, value in sorted(spec.env.items())]
    env.append({"name": "STORAGE_URI", "value": storage_uri})
    container: dict[str, Any] = {
        "name": "kserve-container",
        "image": spec.image,
        "command": ["python", "-m", "aicloud.inference.server"],
        "args": server_args(spec),
        "workingDir": MODEL_DIR,
        "env": env,
        "ports": [{"containerPort": PORT, "name": "http1", "protocol": "TCP"}],
        "readinessProbe": {"httpGet": {"path": READY_PATH, "port": PORT}},
        "livenessProbe": {"httpGet": {"path": LIVE_PATH, "port": PORT}},
    }
    resources = _resources(spec)
    if resources:
        container["resources"] = resources
    predictor: dict[str, Any] = {"minReplicas": 1, "containers": [container]}
    if service_account:
        predictor["serviceAccountName"] = service_account
    metadata: dict[str, Any] = {
        "name": name,
        "namespace": namespace,
        "labels": {"app.kubernetes.io/managed-by": "aicloud", **(labels or {})},
        "annotations": {"serving.kserve.io/deploymentMode": "RawDeployment"},
    }
    return {
        "apiVersion": "serving.kserve.io/v1beta1",
        "kind": "InferenceService",
        "metadata": metadata,
        "spec": {"predictor": predictor},
    }
