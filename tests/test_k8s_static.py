"""Static checks of the Kubernetes deliverables: Dockerfiles (hadolint, pins), RBAC, explain."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from aicloud._version import __version__
from aicloud.backends.kubernetes.backend import KubernetesBackend
from aicloud.backends.kubernetes.explain import explain_pending
from aicloud.catalog import load_catalog
from tests.k8s_schemas import validate_k8s_object

ROOT = Path(__file__).parent.parent
IMAGES = sorted((ROOT / "spawner_config" / "images").glob("*.Dockerfile"))
HADOLINT = str(Path(sys.executable).with_name("hadolint"))


def pins() -> dict[str, str]:
    """The versions the project itself pins: torch and TensorFlow (test extra), aicloud."""
    text = (ROOT / "pyproject.toml").read_text()
    test_extra = text[text.index("\ntest = [") : text.index("]", text.index("\ntest = ["))]
    found = {"AICLOUD_VERSION": __version__}
    for name, variable in (("torch", "TORCH_VERSION"), ("tensorflow-cpu", "TENSORFLOW_VERSION")):
        match = re.search(rf'"{re.escape(name)}==([^"]+)"', test_extra)
        if match:
            found[variable] = match[1]
    return found


def test_there_are_cpu_and_gpu_images_for_notebooks_and_workers():
    names = {path.name for path in IMAGES}
    assert names == {
        "singleuser-cpu.Dockerfile",
        "singleuser-cuda.Dockerfile",
        "worker-cpu.Dockerfile",
        "worker-cuda.Dockerfile",
    }


@pytest.mark.parametrize("dockerfile", IMAGES, ids=lambda p: p.name)
def test_dockerfile_passes_hadolint(dockerfile):
    result = subprocess.run(
        [HADOLINT, "--no-color", "--failure-threshold", "style", str(dockerfile)],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("dockerfile", IMAGES, ids=lambda p: p.name)
def test_dockerfile_pins_match_the_project(dockerfile):
    args = dict(re.findall(r"^ARG (\w+)=(\S+)$", dockerfile.read_text(), re.MULTILINE))
    expected = pins()
    assert set(expected) == {"AICLOUD_VERSION", "TORCH_VERSION", "TENSORFLOW_VERSION"}
    assert {name: args.get(name) for name in expected} == expected
    text = dockerfile.read_text()
    for name in expected:
        assert f"=${{{name}}}" in text  # the pin is used, not only declared
    assert re.search(r"^FROM \S+:\S*\d", text, re.MULTILINE), "base image tag not pinned"


def test_catalog_and_backend_images_carry_the_aicloud_version():
    catalog = load_catalog(ROOT / "spawner_config" / "hardware.yaml")
    for key in ("cpu", "cuda"):
        image = catalog.images[key]
        assert image == f"ghcr.io/aicloud/singleuser-{key}:{__version__}"
        assert (ROOT / "spawner_config" / "images" / f"singleuser-{key}.Dockerfile").exists()
    backend = KubernetesBackend()
    for image in (backend.worker_image, backend.worker_gpu_image):
        name, tag = image.rsplit(":", 1)
        assert tag == __version__
        flavour = name.rsplit("/", 1)[1]
        assert (ROOT / "spawner_config" / "images" / f"{flavour}.Dockerfile").exists()


def rbac() -> list[dict]:
    path = ROOT / "spawner_config" / "kubernetes" / "aicloud-rbac.yaml"
    return list(yaml.safe_load_all(path.read_text()))


def test_rbac_is_valid_and_grants_only_what_the_backend_uses():
    documents = rbac()
    for document in documents:
        validate_k8s_object(document)
    (role,) = [d for d in documents if d["kind"] == "Role"]
    # What it grants is derived from the backend's own requests in test_deploy_chart.py.
    (binding,) = [d for d in documents if d["kind"] == "RoleBinding"]
    assert binding["roleRef"]["name"] == role["metadata"]["name"]
    jobs_account = next(
        d
        for d in documents
        if d["kind"] == "ServiceAccount" and d["metadata"]["name"] == "aicloud-jobs"
    )
    assert jobs_account["automountServiceAccountToken"] is False


def pod(name: str, phase: str = "Pending", waiting: dict | None = None) -> dict:
    status: dict = {"phase": phase}
    if waiting:
        status["containerStatuses"] = [
            {"name": "worker", "image": "repo/img:1", "state": {"waiting": waiting}}
        ]
    return {"metadata": {"name": name}, "spec": {}, "status": status}


def event(reason: str, message: str, when: str = "2026-01-01T00:00:00Z") -> dict:
    return {"reason": reason, "message": message, "lastTimestamp": when}


def test_explain_names_untolerated_taints_and_selectors():
    message = (
        "0/5 nodes are available: 2 node(s) had untolerated taint {nvidia.com/gpu: present}, "
        "3 node(s) didn't match Pod's node affinity/selector. preemption: not helpful."
    )
    why = explain_pending(None, [pod("p-0")], [event("FailedScheduling", message)])
    assert why == (
        "no node can run the pod (0/5 available): 2 node(s) have a taint the pod does not "
        "tolerate {nvidia.com/gpu: present}; 3 node(s) do not match the node selector"
    )


def test_explain_quota_image_kueue_and_running():
    quota = event(
        "FailedCreate",
        'Error creating: pods "j-0-x" is forbidden: exceeded quota: gpu, requested: '
        "requests.nvidia.com/gpu=8, used: requests.nvidia.com/gpu=0, "
        "limited: requests.nvidia.com/gpu=4",
    )
    why = explain_pending(None, [], [quota])
    assert why.startswith("the namespace's resource quota is used up: Error creating")
    pulling = pod("p-0", waiting={"reason": "ErrImagePull", "message": "manifest unknown"})
    assert explain_pending(None, [pulling], []) == (
        "image pull back-off: repo/img:1 cannot be pulled (manifest unknown)"
    )
    suspended = {
        "metadata": {"labels": {"kueue.x-k8s.io/queue-name": "team-a"}},
        "spec": {"suspend": True},
    }
    assert explain_pending(suspended, [], []) == (
        "waiting in Kueue queue 'team-a': the Job is suspended until it is admitted"
    )
    assert explain_pending(None, [pod("p-0", "Running")], []) is None
    assert explain_pending(None, [pod("p-0")], []) == "1 pod(s) waiting for the scheduler"
