"""The KServe ``InferenceService`` builder, against the vendored v1beta1 CRD schema.

Kubernetes prunes unknown fields of a structural schema without an error, which would hide a
misspelled key; the validator here treats every unknown field as an error instead.
"""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest

from aicloud.errors import InvalidSpec
from aicloud.inference.kserve import inference_service
from aicloud.inference.options import InferenceOptions
from aicloud.inference.server import parse_args
from aicloud.spec import JobSpec
from tests.k8s_schemas import strict

SCHEMA = json.loads(
    (Path(__file__).parent / "schemas/kserve/inferenceservice-v1beta1.json").read_text()
)


VALIDATOR = jsonschema.Draft7Validator(strict(SCHEMA))


def serve_spec(**extra) -> JobSpec:
    inference = {"model": "models/churn.pt", "input_shape": [4], **extra.pop("inference", {})}
    return JobSpec.model_validate(
        {"kind": "serve", "name": "Churn Model", "image": "ghcr.io/acme/aicloud:1.0",
         "inference": inference, **extra}
    )  # fmt: skip


def test_manifest_is_valid_and_runs_the_aicloud_server():
    spec = serve_spec(
        env={"LOG_LEVEL": "debug"},
        resources={
            "cpu": 2,
            "memory": "4Gi",
            "accelerator": "nvidia.com/gpu",
            "accelerator_count": 1,
        },
        inference={"max_batch_size": 16, "max_wait_ms": 10},
    )
    manifest = inference_service(spec, "s3://models/churn", namespace="team-a")
    VALIDATOR.validate(manifest)
    assert manifest["metadata"]["name"] == "churn-model"
    (container,) = manifest["spec"]["predictor"]["containers"]
    assert container["image"] == "ghcr.io/acme/aicloud:1.0"
    assert container["command"] == ["python", "-m", "aicloud.inference.server"]
    # The server takes relative model paths only: it works where the storage initializer
    # downloads to, and binds every address so that the kubelet's probes on the pod IP pass.
    assert container["workingDir"] == "/mnt/models"
    assert "--model=churn.pt" in container["args"]
    assert "--host=0.0.0.0" in container["args"] and "--port=8080" in container["args"]
    assert container["readinessProbe"] == {"httpGet": {"path": "/v2/health/ready", "port": 8080}}
    assert "--max-batch-size=16" in container["args"] and "--input-shape=4" in container["args"]
    assert {"name": "STORAGE_URI", "value": "s3://models/churn"} in container["env"]
    assert container["resources"] == {
        "requests": {"cpu": "2", "memory": "4Gi"},
        "limits": {"cpu": "2", "memory": "4Gi", "nvidia.com/gpu": "1"},
    }


def test_the_server_accepts_the_predictor_arguments():
    """The server's own parser and options take the predictor's arguments (an absolute model
    path was refused with rc 1); the end-to-end run is in test_k8s_emulated_kserve.py."""
    (container,) = inference_service(serve_spec(), "s3://m")["spec"]["predictor"]["containers"]
    args = parse_args(container["args"])
    assert (args.host, args.port, args.name) == ("0.0.0.0", 8080, "churn-model")
    options = InferenceOptions.model_validate({"model": args.model, "input_shape": [4]})
    assert Path(container["workingDir"], options.model) == Path("/mnt/models/churn.pt")
    with pytest.raises(ValueError, match="must be relative"):
        InferenceOptions.model_validate({"model": "/mnt/models/churn.pt"})


def test_a_misspelled_field_would_be_caught():
    manifest = inference_service(serve_spec(), "gs://bucket/m")
    manifest["spec"]["predictor"]["containers"][0]["imagee"] = "typo"
    with pytest.raises(jsonschema.ValidationError, match="imagee"):
        VALIDATOR.validate(manifest)


@pytest.mark.parametrize(
    ("change", "storage", "message"),
    [
        ({"image": None}, "s3://m", "image: required on Kubernetes"),
        ({}, "models/churn.pt", "storage_uri:"),
        ({"name": "123"}, "s3://m", "name: '123' gives no valid Kubernetes name"),
        (
            {"inference": {"model": "w.pt", "model_class": "m:Net", "input_shape": [4]}},
            "s3://m",
            "inference.format: state_dict models are not served on Kubernetes yet",
        ),
    ],
)
def test_what_a_cluster_cannot_run_is_refused(change, storage, message):
    base = {"kind": "serve", "name": "m", "image": "img:1", "inference": {"model": "m.pt"}}
    spec = JobSpec.model_validate({**base, **change})
    with pytest.raises(InvalidSpec) as e:
        inference_service(spec, storage)
    assert message in e.value.message
