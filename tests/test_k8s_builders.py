"""Golden tests of the pure manifest builders, and every manifest against the official schemas.

Schemas (vendored in ``tests/schemas``): Kubernetes v1.33 in the strict form that refuses
unknown fields, and the Kubeflow Trainer ``TrainJob`` CRD (made strict here the same way:
the API server would silently prune a misspelt field, which is the bug to catch).
"""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest
import yaml
from jsonschema import Draft202012Validator

from aicloud.backends.kubernetes.builders import (
    AttemptContext,
    ClusterConfig,
    with_owner,
)
from aicloud.backends.kubernetes.planning import make_manifests
from aicloud.backends.kubernetes.shapes import Images, PodShape, pod_shape
from aicloud.catalog import load_catalog
from aicloud.spec import JobSpec

ROOT = Path(__file__).parent.parent
SCHEMAS = Path(__file__).parent / "schemas"
K8S = json.loads((SCHEMAS / "kubernetes-v1.33-strict.json").read_text())
CATALOG = load_catalog(ROOT / "spawner_config" / "hardware.yaml")
IMAGES = Images("ghcr.io/aicloud/worker-cpu:0.1.0", "ghcr.io/aicloud/worker-cuda:0.1.0")
JOB_ID = "job-0123456789ab"
NAME = "job-0123456789ab-a1"
RUN_DIR = "/srv/aicloud/runs/job-0123456789ab"
CONFIG = ClusterConfig(namespace="ml", runs_claim="aicloud-runs")
FULL_CONFIG = ClusterConfig(
    namespace="ml",
    runs_claim="aicloud-runs",
    workspace_claim="aicloud-home",
    workspace_path="/home/jovyan",
    service_account="aicloud-jobs",
    image_pull_secrets=("regcred",),
    queue_name="team-a",
)


def k8s_validator(kind: str) -> Draft202012Validator:
    schema = {"$ref": f"#/$defs/{K8S['kinds'][kind]}", "$defs": K8S["$defs"]}
    return Draft202012Validator(schema)


def strict(node):
    """The CRD schema with unknown fields refused (the API server would prune them)."""
    if isinstance(node, dict):
        node = {k: strict(v) for k, v in node.items()}
        if node.get("type") == "object" and "properties" in node:
            node.setdefault("additionalProperties", False)
        return node
    if isinstance(node, list):
        return [strict(v) for v in node]
    return node


TRAINJOB = Draft202012Validator(
    strict(json.loads((SCHEMAS / "trainjob-v1alpha1.json").read_text()))
)


def check_schema(obj: dict) -> None:
    """Validate ``obj`` against its kind's official schema; fail with every error."""
    if obj["kind"] == "TrainJob":
        errors = list(TRAINJOB.iter_errors(obj))
        errors += list(k8s_validator_meta().iter_errors(obj["metadata"]))
    else:
        errors = list(k8s_validator(obj["kind"]).iter_errors(obj))
    assert not errors, [f"{list(e.absolute_path)}: {e.message}" for e in errors]


def k8s_validator_meta() -> Draft202012Validator:
    ref = "io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"
    return Draft202012Validator({"$ref": f"#/$defs/{ref}", "$defs": K8S["$defs"]})


def context(spec: JobSpec, **overrides) -> AttemptContext:
    values = {
        "job_id": JOB_ID,
        "attempt": 1,
        "shape": pod_shape(spec, CATALOG, IMAGES),
        "working_dir": "/home/jovyan/work",
        "run_dir": RUN_DIR,
        "env": {"AICLOUD_JOB_ID": JOB_ID, "AICLOUD_RUN_DIR": RUN_DIR},
        "timeout_seconds": 600,
    }
    return AttemptContext(**{**values, **overrides})


GOLDEN_TORCH = yaml.safe_load(
    """
- apiVersion: batch/v1
  kind: Job
  metadata:
    name: job-0123456789ab-a1
    namespace: ml
    labels: {app.kubernetes.io/managed-by: aicloud, aicloud.dev/job-id: job-0123456789ab,
             aicloud.dev/attempt: '1'}
  spec:
    completionMode: Indexed
    completions: 2
    parallelism: 2
    backoffLimit: 0
    podFailurePolicy:
      rules:
      - {action: Ignore, onPodConditions: [{type: DisruptionTarget, status: 'True'}]}
      - action: FailJob
        onExitCodes: {containerName: worker, operator: NotIn, values: [0]}
    activeDeadlineSeconds: 600
    ttlSecondsAfterFinished: 86400
    template:
      metadata:
        labels: {app.kubernetes.io/managed-by: aicloud, aicloud.dev/job-id: job-0123456789ab,
                 aicloud.dev/attempt: '1'}
      spec:
        restartPolicy: Never
        subdomain: job-0123456789ab-a1
        automountServiceAccountToken: false
        enableServiceLinks: false
        terminationGracePeriodSeconds: 30
        containers:
        - name: worker
          image: ghcr.io/aicloud/worker-cpu:0.1.0
          command:
          - python
          - -m
          - torch.distributed.run
          - --max-restarts=0
          - --tee=3
          - --monitor-interval=0.5
          - --log-dir=__LOG_DIR__
          - train.py
          - --lr=$$0.1
          workingDir: /home/jovyan/work
          env:
          - name: AICLOUD_NODE_RANK
            valueFrom:
              fieldRef:
                fieldPath: "metadata.annotations['batch.kubernetes.io/job-completion-index']"
          - {name: PYTHONUNBUFFERED, value: '1'}
          - {name: AICLOUD_JOB_ID, value: job-0123456789ab}
          - {name: AICLOUD_RUN_DIR, value: /srv/aicloud/runs/job-0123456789ab}
          - {name: SEED, value: '1'}
          - {name: TORCHELASTIC_LOG_LINE_PREFIX_TEMPLATE, value: '[rank$${rank}]:'}
          - {name: OMP_NUM_THREADS, value: '2'}
          - {name: PET_NNODES, value: '2'}
          - {name: PET_NPROC_PER_NODE, value: '2'}
          - name: PET_NODE_RANK
            valueFrom:
              fieldRef:
                fieldPath: "metadata.annotations['batch.kubernetes.io/job-completion-index']"
          - {name: PET_MASTER_ADDR, value: job-0123456789ab-a1-0.job-0123456789ab-a1}
          - {name: PET_MASTER_PORT, value: '29400'}
          - {name: PET_RDZV_BACKEND, value: c10d}
          - {name: PET_RDZV_ENDPOINT, value: 'job-0123456789ab-a1-0.job-0123456789ab-a1:29400'}
          - {name: PET_RDZV_ID, value: job-0123456789ab-a1}
          - {name: PET_RDZV_CONF, value: '__RDZV_CONF__'}
          resources:
            requests: {cpu: '4', memory: 8Gi}
            limits: {cpu: '4', memory: 8Gi}
          ports: [{name: rendezvous, containerPort: 29400, protocol: TCP}]
          volumeMounts:
          - {name: runs, mountPath: /srv/aicloud/runs/job-0123456789ab, subPath: job-0123456789ab}
          - {name: dshm, mountPath: /dev/shm}
          securityContext:
            allowPrivilegeEscalation: false
            capabilities: {drop: [ALL]}
        securityContext:
          runAsUser: 1000
          runAsGroup: 100
          fsGroup: 100
          fsGroupChangePolicy: OnRootMismatch
          runAsNonRoot: true
          seccompProfile: {type: RuntimeDefault}
        volumes:
        - {name: runs, persistentVolumeClaim: {claimName: aicloud-runs}}
        - {name: dshm, emptyDir: {medium: Memory, sizeLimit: 1Gi}}
- apiVersion: v1
  kind: Service
  metadata:
    name: job-0123456789ab-a1
    namespace: ml
    labels: {app.kubernetes.io/managed-by: aicloud, aicloud.dev/job-id: job-0123456789ab,
             aicloud.dev/attempt: '1'}
  spec:
    clusterIP: None
    publishNotReadyAddresses: true
    selector: {app.kubernetes.io/managed-by: aicloud, aicloud.dev/job-id: job-0123456789ab,
               aicloud.dev/attempt: '1'}
    ports: [{name: rendezvous, port: 29400, targetPort: 29400, protocol: TCP}]
    clusterIP: None
    publishNotReadyAddresses: true
""".replace(
        "__RDZV_CONF__",
        "join_timeout=1800,last_call_timeout=2,keep_alive_interval=2,keep_alive_max_attempt=3",
    ).replace("__LOG_DIR__", f"{RUN_DIR}/torchrun/attempt-1/node-$(AICLOUD_NODE_RANK)")
)


def test_torch_indexed_job_and_headless_service_golden():
    spec = JobSpec(
        kind="train",
        framework="torch",
        script="train.py",
        args=["--lr=$0.1"],
        resources={"nodes": 2, "procs_per_node": 2, "cpu": 4, "memory": "8Gi"},
        env={"SEED": "1"},
    )
    manifests = make_manifests(spec, context(spec), CONFIG)
    assert manifests.all == GOLDEN_TORCH
    for obj in manifests.all:
        check_schema(obj)


def test_elastic_torch_job_leader_decides_and_nnodes_is_a_range():
    spec = JobSpec(
        kind="train",
        framework="torch",
        module="trainer.main",
        resources={"nodes": 4, "min_nodes": 2},
        max_restarts=3,
    )
    job = make_manifests(spec, context(spec), CONFIG).primary
    env = {
        e["name"]: e.get("value") for e in job["spec"]["template"]["spec"]["containers"][0]["env"]
    }
    assert env["PET_NNODES"] == "2:4"
    assert job["spec"]["successPolicy"] == {"rules": [{"succeededIndexes": "0"}]}
    assert job["spec"]["backoffLimit"] == 3  # pods lost to infrastructure may be replaced
    command = job["spec"]["template"]["spec"]["containers"][0]["command"]
    assert command[-2:] == ["-m", "trainer.main"] and "--max-restarts=3" in command
    check_schema(job)


def test_tensorflow_tf_config_from_completion_index_golden():
    spec = JobSpec(kind="train", framework="tensorflow", script="mwms.py", resources={"nodes": 3})
    job, service = make_manifests(spec, context(spec), CONFIG).all
    container = job["spec"]["template"]["spec"]["containers"][0]
    assert container["command"] == ["python", "mwms.py"]
    assert container["env"][0] == {
        "name": "AICLOUD_NODE_RANK",
        "valueFrom": {
            "fieldRef": {
                "fieldPath": "metadata.annotations['batch.kubernetes.io/job-completion-index']"
            }
        },
    }
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert env["TF_CONFIG"] == (
        '{"cluster":{"worker":['
        f'"{NAME}-0.{NAME}:2222","{NAME}-1.{NAME}:2222","{NAME}-2.{NAME}:2222"'
        ']},"task":{"type":"worker","index":$(AICLOUD_NODE_RANK)}}'
    )
    assert env["TF_CPP_MIN_LOG_LEVEL"] == "1"
    assert job["spec"]["template"]["metadata"]["annotations"] == {
        "aicloud.dev/rank-prefix": "[rank{index}]:"
    }
    assert service["spec"]["ports"] == [
        {"name": "tf", "port": 2222, "targetPort": 2222, "protocol": "TCP"}
    ]
    check_schema(job)
    check_schema(service)


def test_notebook_job_runs_papermill_with_parameters_staged_from_a_configmap():
    spec = JobSpec(
        kind="notebook", notebook="reports/weekly.ipynb", parameters={"day": "mon", "n": 3}
    )
    manifests = make_manifests(spec, context(spec), CONFIG)
    job, configmap = manifests.all
    assert configmap["data"] == {"file-0": '{"day": "mon", "n": 3}'}
    pod = job["spec"]["template"]["spec"]
    assert pod["containers"][0]["command"] == [
        "python",
        "-m",
        "aicloud.launchers.notebook_runner",
        "--input=/home/jovyan/work/reports/weekly.ipynb",
        f"--output={RUN_DIR}/outputs/weekly.ipynb",
        f"--html={RUN_DIR}/outputs/weekly.html",
        f"--parameters={RUN_DIR}/parameters.json",
        "--cwd=/home/jovyan/work/reports",
    ]
    files = {"configMap": {"name": f"{NAME}-files", "items": [{"key": "file-0", "path": "file-0"}]}}
    assert {"name": "files", **files} in pod["volumes"]
    assert {
        "name": "files",
        "mountPath": f"{RUN_DIR}/parameters.json",
        "subPath": "file-0",
        "readOnly": True,
    } in pod["containers"][0]["volumeMounts"]
    assert job["spec"]["completions"] == 1
    for obj in manifests.all:
        check_schema(obj)


def test_trainjob_golden_when_the_crd_is_installed():
    spec = JobSpec(
        kind="train",
        framework="torch",
        script="train.py",
        resources={"nodes": 2, "procs_per_node": 8, "profile": "a100-1"},
    )
    manifests = make_manifests(spec, context(spec), FULL_CONFIG, trainjob=True)
    assert manifests.dependents == []
    trainjob = manifests.primary
    assert trainjob["apiVersion"] == "trainer.kubeflow.org/v1alpha1"
    assert trainjob["metadata"]["labels"]["kueue.x-k8s.io/queue-name"] == "team-a"
    body = trainjob["spec"]
    assert body["runtimeRef"] == {"name": "torch-distributed"}
    assert body["activeDeadlineSeconds"] == 600
    trainer = body["trainer"]
    assert trainer["image"] == "ghcr.io/aicloud/singleuser-cuda:0.1.0"
    assert trainer["command"][:4] == ["sh", "-c", 'cd "$$0" && exec "$$@"', "/home/jovyan/work"]
    assert trainer["command"][4:7] == ["python", "-m", "torch.distributed.run"]
    assert trainer["command"][-1] == "train.py" and "args" not in trainer
    assert (trainer["numNodes"], trainer["numProcPerNode"]) == (2, 8)
    assert trainer["resourcesPerNode"] == {
        "requests": {"cpu": "8", "memory": "64Gi", "nvidia.com/gpu": "1"},
        "limits": {"cpu": "8", "memory": "64Gi", "nvidia.com/gpu": "1"},
    }
    assert not any(e["name"].startswith("PET_") for e in trainer["env"])  # Trainer sets them
    (patch,) = body["runtimePatches"]
    node = patch["trainingRuntimeSpec"]["template"]["spec"]["replicatedJobs"][0]
    pod = node["template"]["spec"]["template"]
    assert node["name"] == "node" and pod["metadata"]["labels"]["aicloud.dev/job-id"] == JOB_ID
    assert pod["spec"]["nodeSelector"] == {"nvidia.com/gpu.product": "NVIDIA-A100-SXM4-80GB"}
    assert pod["spec"]["tolerations"] == [
        {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}
    ]
    assert pod["spec"]["serviceAccountName"] == "aicloud-jobs"
    check_schema(trainjob)


def test_tpu_profile_sets_limits_topology_selectors_and_toleration():
    spec = JobSpec(
        kind="train", framework="torch", script="t.py", resources={"profile": "tpu-v5e-2x4"}
    )
    pod = make_manifests(spec, context(spec), CONFIG).primary["spec"]["template"]["spec"]
    assert pod["containers"][0]["resources"]["limits"]["google.com/tpu"] == "8"
    assert pod["nodeSelector"] == {
        "cloud.google.com/gke-tpu-accelerator": "tpu-v5-lite-podslice",
        "cloud.google.com/gke-tpu-topology": "2x4",
    }
    assert pod["tolerations"] == [
        {"key": "google.com/tpu", "operator": "Exists", "effect": "NoSchedule"}
    ]


def test_mig_profile_and_plain_gpu_request():
    mig = JobSpec(kind="command", command=["nvidia-smi"], resources={"profile": "a100-mig-1g"})
    limits = make_manifests(mig, context(mig), CONFIG).primary["spec"]["template"]["spec"][
        "containers"
    ][0]["resources"]["limits"]
    assert limits["nvidia.com/mig-1g.10gb"] == "1"
    plain = JobSpec(
        kind="command",
        command=["python", "-c", "print('$(x)')"],
        resources={"accelerator": "nvidia.com/gpu", "accelerator_count": 2},
    )
    manifests = make_manifests(plain, context(plain), CONFIG)
    container = manifests.primary["spec"]["template"]["spec"]["containers"][0]
    assert container["image"] == "ghcr.io/aicloud/worker-cuda:0.1.0"
    assert container["resources"]["limits"] == {"nvidia.com/gpu": "2"}
    assert container["command"] == ["python", "-c", "print('$$(x)')"]  # literal for the kubelet


SPECS = [
    {"kind": "train", "framework": "torch", "script": "t.py", "resources": {"nodes": 3}},
    {
        "kind": "train",
        "framework": "torch",
        "source": "print(1)",
        "resources": {"nodes": 2, "min_nodes": 1},
    },
    {"kind": "train", "framework": "torch", "module": "m", "resources": {"profile": "a100-1"}},
    {
        "kind": "train",
        "framework": "tensorflow",
        "script": "t.py",
        "resources": {"nodes": 2, "cpu": 0.5},
    },
    {"kind": "notebook", "notebook": "n.ipynb", "kernel": "python3", "parameters": {"a": [1]}},
    {"kind": "command", "command": ["echo", "hi"], "resources": {"profile": "tpu-v5e-2x4"}},
    {"kind": "command", "script": "s.py", "args": ["x"], "resources": {"memory": "512Mi"}},
]


@pytest.mark.parametrize(
    "config", [CONFIG, FULL_CONFIG, ClusterConfig(shm_size=None, ttl_seconds=None)]
)
@pytest.mark.parametrize("trainjob", [False, True])
@pytest.mark.parametrize("values", SPECS)
def test_every_manifest_is_valid_against_the_official_schemas(values, trainjob, config):
    spec = JobSpec(**values)
    manifests = make_manifests(spec, context(spec, timeout_seconds=None), config, trainjob)
    primary = copy.deepcopy(manifests.primary)
    primary["metadata"]["uid"] = "0d5b1f8e-3f71-4c1b-9a47-7c2f0c6c8a11"
    check_schema(manifests.primary)
    for dependent in manifests.dependents:
        owned = with_owner(dependent, primary)
        check_schema(owned)
        assert owned["metadata"]["ownerReferences"][0]["uid"] == primary["metadata"]["uid"]


def test_the_schemas_refuse_a_misspelt_field():
    spec = JobSpec(kind="train", framework="torch", script="t.py", resources={"nodes": 2})
    job = make_manifests(spec, context(spec), CONFIG).primary
    job["spec"]["template"]["spec"]["nodeSelecter"] = {"a": "b"}
    with pytest.raises(AssertionError, match="nodeSelecter"):
        check_schema(job)
    trainjob = make_manifests(spec, context(spec), CONFIG, trainjob=True).primary
    trainjob["spec"]["trainer"]["numNode"] = 2
    with pytest.raises(AssertionError, match="numNode"):
        check_schema(trainjob)


def test_threads_follow_the_pod_cpu_limit():
    assert PodShape("i", limits={"cpu": "500m"}).threads(1) == 1
    assert PodShape("i", limits={"cpu": "8"}).threads(2) == 4
    assert PodShape("i").threads(4) is None
