"""One launch plan, placed on Kubernetes: for every kind and framework, what each node of the plan
runs (argv, environment, working directory, staged files, ports) is exactly what the pods
of the generated manifests run once the kubelet has resolved them (emulated by
``tests/k8s_pods.py``), and every generated object is valid at every Kubernetes version the
chart supports."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest

from aicloud.backends.kubernetes.builders import (
    NODE_RANK,
    AttemptContext,
    ClusterConfig,
    place,
    with_owner,
)
from aicloud.backends.kubernetes.planning import cluster_plan
from aicloud.backends.kubernetes.shapes import Images, pod_shape
from aicloud.catalog import parse_catalog
from aicloud.launchers.plan import render
from aicloud.spec import JobSpec, is_secret_env
from tests.k8s_pods import IMAGE_PYTHON, job_pods, remap, trainjob_pods
from tests.k8s_schemas import validate_k8s_object

JOB_ID = "job-00aa11bb22cc"
RUNS = "/srv/aicloud/runs"
RUN_DIR = f"{RUNS}/{JOB_ID}"
IMAGES = Images("ghcr.io/aicloud/worker-cpu:0.1.0", "ghcr.io/aicloud/worker-cuda:0.1.0")
CONFIG = ClusterConfig(namespace="ml", runs_claim="aicloud-runs", runs_path=RUNS)
CATALOG = parse_catalog(
    {
        "images": {"cpu": "ghcr.io/aicloud/singleuser-cpu:0.1.0"},
        "profiles": [
            {"slug": "cpu", "display_name": "CPU", "image": "cpu", "cpu": 4, "memory": "8Gi"},
            {
                "slug": "tpu-v5e-4x4",
                "display_name": "TPU v5e 4x4: four hosts",
                "image": "cpu",
                "tpu": {"accelerator": "tpu-v5-lite-podslice", "topology": "4x4"},
            },
        ],
    },
    "test catalog",
)
#: What the job service puts in every job's environment, and a secret the pods get through the
#: attempt's Secret, never in the manifest.
JOB_ENV = {
    "AICLOUD_JOB_ID": JOB_ID,
    "AICLOUD_RUN_DIR": RUN_DIR,
    "AICLOUD_ATTEMPT": "1",
    "AICLOUD_TOKEN": "job-token-value",
}
#: Set by the kubelet or by aicloud's placement, not by the plan.
POD_ONLY = {"JOB_COMPLETION_INDEX", "HOSTNAME", NODE_RANK}


@pytest.fixture(scope="module")
def workspace(tmp_path_factory) -> Path:
    """The owner's files that the launchers check: a script, a notebook, models, data."""
    root = tmp_path_factory.mktemp("home")
    (root / "train.py").write_text("print('train')\n")
    (root / "report.ipynb").write_text(
        json.dumps(
            {
                "cells": [],
                "metadata": {"kernelspec": {"name": "python3", "display_name": "Python 3"}},
                "nbformat": 4,
                "nbformat_minor": 5,
            }
        )
    )
    (root / "model.pt").write_bytes(b"not read by the planner")
    (root / "saved").mkdir()
    (root / "saved" / "saved_model.pb").write_bytes(b"")
    (root / "data").mkdir()
    import numpy as np

    for i in range(3):
        np.save(root / "data" / f"part-{i}.npy", np.zeros((2, 4), dtype="float32"))
    return root


# (id, spec) for every kind x framework, and the shapes that change the plan's form.
CASES = [
    ("torch-1node", {"kind": "train", "framework": "torch", "script": "train.py",
                     "resources": {"procs_per_node": 2}}),
    ("torch-3nodes", {"kind": "train", "framework": "torch", "script": "train.py",
                      "args": ["--lr=$0.1"], "resources": {"nodes": 3, "procs_per_node": 2}}),
    ("torch-elastic", {"kind": "train", "framework": "torch", "source": "print(1)",
                       "resources": {"nodes": 4, "min_nodes": 2}, "max_restarts": 2}),
    ("tensorflow-3workers", {"kind": "train", "framework": "tensorflow",
                             "script": "train.py", "resources": {"nodes": 3}}),
    ("notebook", {"kind": "notebook", "notebook": "report.ipynb", "parameters": {"n": 3}}),
    ("command-argv", {"kind": "command", "command": ["echo", "$(HOME)", "hi"]}),
    ("command-script", {"kind": "command", "script": "train.py", "args": ["x"],
                        "secret_env": ["API_KEY"], "env": {"API_KEY": "sk-123"}}),
    ("command-tpu-4hosts", {"kind": "command", "command": ["python", "-m", "jaxjob"],
                            "resources": {"profile": "tpu-v5e-4x4", "nodes": 4}}),
    ("infer-torch", {"kind": "infer", "framework": "torch", "resources": {"nodes": 2},
                     "inference": {"model": "model.pt", "data": ["data/*.npy"]}}),
    ("infer-tensorflow", {"kind": "infer", "framework": "tensorflow",
                          "inference": {"model": "saved", "format": "savedmodel",
                                        "data": ["data/part-0.npy"]}}),
    ("serve-torch", {"kind": "serve", "framework": "torch", "inference": {"model": "model.pt"}}),
    ("serve-tensorflow", {"kind": "serve", "framework": "tensorflow",
                          "inference": {"model": "saved", "format": "savedmodel"}}),
]  # fmt: skip


def attempt(spec: JobSpec, workspace: Path) -> AttemptContext:
    return AttemptContext(
        job_id=JOB_ID,
        attempt=1,
        shape=pod_shape(spec, CATALOG, IMAGES),
        working_dir=str(workspace),
        run_dir=RUN_DIR,
        timeout_seconds=3600,
        owner="alice",
    )


def plan_and_manifests(values: dict, workspace: Path, trainjob: bool = False):
    spec = JobSpec(**values)
    ctx = attempt(spec, workspace)
    plan = cluster_plan(spec, ctx, CONFIG, JOB_ENV)
    (role,) = plan.roles
    secrets = frozenset(n for n in role.env if is_secret_env(n, spec.secret_env))
    return spec, plan, place(plan, ctx, CONFIG, trainjob, secrets)


def resolve_secrets(manifests) -> dict:
    """The primary with ``secretKeyRef`` variables read from the attempt's Secret, as the
    kubelet does (checking that the value is in the Secret, not in the manifest)."""
    secret = next((d for d in manifests.dependents if d["kind"] == "Secret"), None)
    primary = copy.deepcopy(manifests.primary)
    if primary["kind"] == "TrainJob":
        env = primary["spec"]["trainer"]["env"]
    else:
        env = primary["spec"]["template"]["spec"]["containers"][0]["env"]
    for entry in env:
        ref = entry.get("valueFrom", {}).get("secretKeyRef")
        if ref:
            assert secret is not None and ref["name"] == secret["metadata"]["name"]
            entry.pop("valueFrom")
            entry["value"] = secret["stringData"][ref["key"]].replace("$", "$$")
    return primary


def planned(value: str) -> str:
    return IMAGE_PYTHON.get(value, value)


@pytest.mark.parametrize(("values"), [c[1] for c in CASES], ids=[c[0] for c in CASES])
def test_pods_run_exactly_what_the_plan_says(values, workspace):
    spec, plan, manifests = plan_and_manifests(values, workspace)
    (role,) = plan.roles
    pods = job_pods(resolve_secrets(manifests))
    assert len(pods) == role.nodes == spec.resources.nodes
    for pod in pods:
        want_argv = [render(a, pod.index) for a in role.argv]
        assert pod.argv == [planned(want_argv[0]), *want_argv[1:]]
        want_env = {name: render(value, pod.index) for name, value in role.env.items()}
        placed = {k: v for k, v in pod.env.items() if k in role.env or k not in POD_ONLY}
        assert placed == want_env
        assert pod.cwd == str(plan.cwd) == str(workspace)
    container = manifests.primary["spec"]["template"]["spec"]["containers"][0]
    ports = {p["name"]: p["containerPort"] for p in container.get("ports", [])}
    assert ports == dict(role.ports)
    # Several nodes find each other by name under a headless Service; one node needs none.
    services = [d for d in manifests.dependents if d["kind"] == "Service"]
    if role.nodes > 1:
        (service,) = services
        assert service["spec"]["clusterIP"] == "None"
        assert {p.subdomain for p in pods} == {service["metadata"]["name"]}
    elif role.serves:
        (service,) = services
        assert "clusterIP" not in service["spec"]  # one stable address in front of the server
    else:
        assert services == []


@pytest.mark.parametrize(("values"), [c[1] for c in CASES], ids=[c[0] for c in CASES])
def test_staged_files_and_secrets_reach_the_pods_not_the_manifest(values, workspace):
    spec, plan, manifests = plan_and_manifests(values, workspace)
    container = manifests.primary["spec"]["template"]["spec"]["containers"][0]
    # The plan's files: a ConfigMap, each file mounted where the plan's argv expects it.
    configmaps = [d for d in manifests.dependents if d["kind"] == "ConfigMap"]
    mounted = {
        m["mountPath"]: m["subPath"] for m in container["volumeMounts"] if m["name"] == "files"
    }
    if plan.files:
        (configmap,) = configmaps
        staged = {path: configmap["data"][mounted[f"{RUN_DIR}/{path}"]] for path in plan.files}
        assert staged == dict(plan.files)
    else:
        assert configmaps == [] and mounted == {}
    # The job token (and the spec's secrets): only in the Secret, never in the manifest.
    text = json.dumps(manifests.primary)
    assert "job-token-value" not in text and "sk-123" not in text
    (secret,) = [d for d in manifests.dependents if d["kind"] == "Secret"]
    assert secret["stringData"]["AICLOUD_TOKEN"] == "job-token-value"
    assert ("API_KEY" in secret["stringData"]) == ("API_KEY" in spec.env)


def test_a_multi_host_tpu_slice_is_an_indexed_job_of_one_pod_per_host(workspace):
    values = dict(CASES[7][1])
    _, plan, manifests = plan_and_manifests(values, workspace)
    job = manifests.primary
    assert (job["spec"]["completions"], job["spec"]["parallelism"]) == (4, 4)
    pod = job["spec"]["template"]["spec"]
    assert pod["subdomain"] == job["metadata"]["name"]
    assert pod["nodeSelector"] == {
        "cloud.google.com/gke-tpu-accelerator": "tpu-v5-lite-podslice",
        "cloud.google.com/gke-tpu-topology": "4x4",
    }
    assert pod["containers"][0]["resources"]["limits"]["google.com/tpu"] == "4"
    pods = job_pods(resolve_secrets(manifests))
    assert [p.env["AICLOUD_NODE_RANK"] for p in pods] == ["0", "1", "2", "3"]
    hosts = [f"{job['metadata']['name']}-{i}.{job['metadata']['name']}" for i in range(4)]
    assert {p.env["AICLOUD_NODE_HOSTS"] for p in pods} == {",".join(hosts)}
    assert job["spec"]["template"]["metadata"]["annotations"] == {
        "aicloud.dev/rank-prefix": "[node{index}]:"
    }


def test_a_serving_role_gets_a_service_and_a_readiness_probe(workspace):
    _, plan, manifests = plan_and_manifests(CASES[10][1], workspace)
    (role,) = plan.roles
    container = manifests.primary["spec"]["template"]["spec"]["containers"][0]
    assert container["readinessProbe"]["httpGet"] == {"path": "/v2/health/ready", "port": 8080}
    (service,) = [d for d in manifests.dependents if d["kind"] == "Service"]
    assert service["spec"]["ports"] == [
        {"name": "http", "port": 8080, "targetPort": 8080, "protocol": "TCP"}
    ]
    (configmap,) = [d for d in manifests.dependents if d["kind"] == "ConfigMap"]
    (config,) = [json.loads(v) for v in configmap["data"].values()]
    name = manifests.primary["metadata"]["name"]
    # The server listens on the pod's address and tells clients the Service's.
    assert config["host"] == "0.0.0.0"
    assert config["advertise_url"] == f"http://{name}.ml.svc:8080"
    assert role.serves == "http"


def test_a_trainjob_runs_the_plan_from_its_working_directory(workspace, tmp_path):
    values = CASES[1][1]
    _, plan, manifests = plan_and_manifests(values, workspace, trainjob=True)
    (role,) = plan.roles
    trainjob = manifests.primary
    assert trainjob["kind"] == "TrainJob"
    mounts = {RUN_DIR: tmp_path}  # the runs volume, emulated by a folder here
    pods = trainjob_pods(resolve_secrets(manifests), mounts, image_root=tmp_path)
    assert len(pods) == role.nodes == 3
    assert plan.runtime is not None
    for pod in pods:
        # Trainer's runtime has no working directory: the command changes to the plan's.
        assert pod.argv[:4] == ["sh", "-c", 'cd "$0" && exec "$@"', str(plan.cwd)]
        want_argv = [remap(render(a, pod.index), mounts) for a in role.argv]
        assert pod.argv[4:] == want_argv
        want = {
            k: remap(render(v, pod.index), mounts)
            for k, v in role.env.items()
            if k not in plan.runtime.provides
        }
        assert {k: v for k, v in pod.env.items() if k in want} == want
        assert pod.env["PET_NNODES"] == "3" and pod.env["PET_NODE_RANK"] == str(pod.index)


@pytest.mark.parametrize("trainjob", [False, True])
@pytest.mark.parametrize(("values"), [c[1] for c in CASES], ids=[c[0] for c in CASES])
def test_every_object_is_valid_at_every_supported_kubernetes_version(values, trainjob, workspace):
    _, _, manifests = plan_and_manifests(values, workspace, trainjob)
    primary = copy.deepcopy(manifests.primary)
    primary["metadata"]["uid"] = "0d5b1f8e-3f71-4c1b-9a47-7c2f0c6c8a11"
    validate_k8s_object(manifests.primary)
    for dependent in manifests.dependents:
        validate_k8s_object(with_owner(dependent, primary))
