"""Validate Kubernetes objects against the official schemas of every Kubernetes version aicloud
supports on z2jh: :func:`validate_k8s_object` is the one entry point.

- Core kinds (Job, Service, ConfigMap, Secret, Pod, PVC, Role, ...): the "local-strict" JSON
  schemas that ``kubernetes-validate`` bundles per Kubernetes version (unknown fields refused,
  which is the bug to catch: the API server drops a misspelt field without an error).
- CRDs: Kubeflow Trainer's ``TrainJob`` and KServe's ``InferenceService``, through the CRD
  schemas vendored in ``tests/schemas`` (made strict the same way), their ``metadata`` through
  each version's ``ObjectMeta``.

The versions: z2jh 4.4.0 (``Chart.yaml`` ``kubeVersion: ">=1.28.0-0"``, CI up to k3s
``latest``) supports Kubernetes 1.28 and newer; aicloud's Jobs need 1.31 or newer: elastic
torch Jobs carry a ``successPolicy`` (JobSuccessPolicy: alpha and off by default in 1.30, beta
and on from 1.31; 1.28 and 1.29 do not know the field). So every minor version from
:data:`OLDEST` to :data:`NEWEST` (the newest kubernetes-validate bundles) is checked.
"""

from __future__ import annotations

import copy
import importlib.resources
import json
from functools import cache
from pathlib import Path
from typing import Any

from jsonschema import Draft7Validator, Draft202012Validator

SCHEMAS = Path(__file__).parent / "schemas"
#: The z2jh chart whose values and Kubernetes range the deployment targets.
Z2JH_VERSION = "4.4.0"
Z2JH_KUBE_VERSION = ">=1.28.0-0"
#: The oldest Kubernetes version aicloud's objects are valid at (see the module docstring).
OLDEST = (1, 31)
#: The newest version kubernetes-validate (pinned in the test extra) has schemas of.
NEWEST = (1, 37)
KUBERNETES_VERSIONS: tuple[str, ...] = tuple(
    f"{OLDEST[0]}.{minor}" for minor in range(OLDEST[1], NEWEST[1] + 1)
)
#: Custom resources: (apiVersion, kind) -> (schema file under tests/schemas, JSON-schema draft).
CRDS = {
    ("trainer.kubeflow.org/v1alpha1", "TrainJob"): ("trainjob-v1alpha1.json", Draft202012Validator),
    ("serving.kserve.io/v1beta1", "InferenceService"): (
        "kserve/inferenceservice-v1beta1.json",
        Draft7Validator,
    ),
}
OBJECT_META = "io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"


def schema_dir(version: str) -> Path:
    """kubernetes-validate's strict schemas of Kubernetes ``version`` (``"1.31"``)."""
    root = importlib.resources.files("kubernetes_validate") / "kubernetes-json-schema"
    path = Path(str(root / f"v{version}.0-local-strict"))
    if not path.is_dir():
        raise LookupError(f"kubernetes-validate has no schemas of Kubernetes {version}")
    return path


@cache
def definitions(version: str) -> dict[str, Any]:
    """Every definition of Kubernetes ``version``, by its OpenAPI name."""
    return json.loads((schema_dir(version) / "_definitions.json").read_text())["$defs"]


@cache
def kinds(version: str) -> dict[tuple[str, str], str]:
    """(apiVersion, kind) -> definition name, from each definition's group-version-kind."""
    found = {}
    for name, definition in definitions(version).items():
        for gvk in definition.get("x-kubernetes-group-version-kind", []):
            group, api = gvk.get("group", ""), gvk["version"]
            found[(f"{group}/{api}" if group else api, gvk["kind"])] = name
    return found


@cache
def core_validator(version: str, name: str) -> Draft202012Validator:
    """The validator of definition ``name`` of Kubernetes ``version``."""
    return Draft202012Validator({"$ref": f"#/$defs/{name}", "$defs": definitions(version)})


def strict(schema: Any) -> Any:
    """A CRD schema with unknown fields refused wherever the API server would prune them."""
    schema = copy.deepcopy(schema)

    def visit(node):
        if isinstance(node, dict):
            if "properties" in node and not node.get("x-kubernetes-preserve-unknown-fields"):
                node.setdefault("additionalProperties", False)
            for value in node.values():
                visit(value)
        elif isinstance(node, list):
            for value in node:
                visit(value)

    visit(schema)
    return schema


@cache
def crd_validator(api_version: str, kind: str):
    """The strict validator of a vendored custom resource."""
    filename, draft = CRDS[(api_version, kind)]
    return draft(strict(json.loads((SCHEMAS / filename).read_text())))


def k8s_errors(obj: dict[str, Any], version: str) -> list[str]:
    """Why ``obj`` is not valid at Kubernetes ``version`` (empty: it is)."""
    key = (obj.get("apiVersion", ""), obj.get("kind", ""))
    if key in CRDS:
        errors = list(crd_validator(*key).iter_errors(obj))
        meta = core_validator(version, OBJECT_META)
        errors += list(meta.iter_errors(obj.get("metadata", {})))
    elif key in kinds(version):
        errors = list(core_validator(version, kinds(version)[key]).iter_errors(obj))
    else:
        return [f"no schema for {key[0]} {key[1]} in Kubernetes {version} or tests/schemas"]
    return [f"{list(e.absolute_path)}: {e.message}" for e in errors]


def validate_k8s_object(obj: dict[str, Any]) -> None:
    """Fail (AssertionError, every error named with its version) unless ``obj`` is valid at
    every Kubernetes version in :data:`KUBERNETES_VERSIONS`."""
    errors = {version: k8s_errors(obj, version) for version in KUBERNETES_VERSIONS}
    errors = {version: found for version, found in errors.items() if found}
    name = f"{obj.get('kind')} {obj.get('metadata', {}).get('name')!r}"
    assert not errors, f"{name} is not valid: {errors}"
