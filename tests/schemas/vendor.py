"""Regenerate the vendored schemas in this folder (run by hand; not part of the tests).

    pip download --no-deps kubernetes-validate==1.37.0 -d /tmp/kv
    python tests/schemas/vendor.py /tmp/kv/kubernetes_validate-1.37.0-py3-none-any.whl \
        /path/to/kubeflow-trainer/manifests/base/crds/trainer.kubeflow.org_trainjobs.yaml

Keeps only the definitions reachable from the kinds aicloud builds, without descriptions.
"""

from __future__ import annotations

import json
import sys
import zipfile
from pathlib import Path

import yaml

HERE = Path(__file__).parent
K8S_VERSION = "v1.33.0"
KINDS = {
    "Job": "io.k8s.api.batch.v1.Job",
    "Service": "io.k8s.api.core.v1.Service",
    "ConfigMap": "io.k8s.api.core.v1.ConfigMap",
    "ServiceAccount": "io.k8s.api.core.v1.ServiceAccount",
    "Role": "io.k8s.api.rbac.v1.Role",
    "RoleBinding": "io.k8s.api.rbac.v1.RoleBinding",
    "PersistentVolumeClaim": "io.k8s.api.core.v1.PersistentVolumeClaim",
}


def strip(node):
    """Drop descriptions: they are most of the size and none of the meaning."""
    if isinstance(node, dict):
        return {k: strip(v) for k, v in node.items() if k != "description"}
    if isinstance(node, list):
        return [strip(v) for v in node]
    return node


def refs(node):
    """Every ``$ref`` target name under ``node``."""
    if isinstance(node, dict):
        if "$ref" in node:
            yield node["$ref"].rsplit("/", 1)[-1]
        for value in node.values():
            yield from refs(value)
    elif isinstance(node, list):
        for value in node:
            yield from refs(value)


def vendor_kubernetes(wheel: Path) -> None:
    name = (
        f"kubernetes_validate/kubernetes-json-schema/{K8S_VERSION}-local-strict/_definitions.json"
    )
    with zipfile.ZipFile(wheel) as z:
        defs = json.loads(z.read(name))["$defs"]
    keep: dict = {}
    todo = list(KINDS.values())
    while todo:
        key = todo.pop()
        if key in keep:
            continue
        keep[key] = strip(defs[key])
        todo.extend(refs(keep[key]))
    out = {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$comment": f"Kubernetes {K8S_VERSION} strict schemas from kubernetes-validate 1.37.0",
        "kinds": KINDS,
        "$defs": dict(sorted(keep.items())),
    }
    (HERE / "kubernetes-v1.33-strict.json").write_text(json.dumps(out, indent=None) + "\n")


def vendor_trainjob(crd: Path) -> None:
    doc = yaml.safe_load(crd.read_text().split("\n---\n", 1)[1])
    version = next(v for v in doc["spec"]["versions"] if v["name"] == "v1alpha1")
    schema = strip(version["schema"]["openAPIV3Schema"])
    out = {"$comment": "Kubeflow Trainer TrainJob v1alpha1 openAPIV3Schema", **schema}
    (HERE / "trainjob-v1alpha1.json").write_text(json.dumps(out) + "\n")


if __name__ == "__main__":
    vendor_kubernetes(Path(sys.argv[1]))
    vendor_trainjob(Path(sys.argv[2]))
