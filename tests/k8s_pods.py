"""EMULATED PODS: run the pods of generated manifests on this machine, in network namespaces.

There is no cluster here, so the tests take the exact objects that the builders make and do
what the controllers, the kubelet and cluster DNS would do with them:

- an Indexed ``Job`` (:func:`job_pods`): one pod per completion index, named ``<job>-<index>``
  with the completion-index annotation;
- a Kubeflow Trainer v2 ``TrainJob`` on the ``torch-distributed`` runtime
  (:func:`trainjob_pods`): the JobSet that Trainer would make and the pods of its Jobs, as
  :data:`TRAINER_SOURCE` does it (see that function);
- a RawDeployment KServe ``InferenceService`` (:func:`inference_service_pods`): one pod of its
  predictor Deployment, the storage initializer's download replaced by a folder the test fills;
- the container's environment resolved as the kubelet does: ``valueFrom.fieldRef`` of the
  pod's annotations, labels, name and namespace, ``$(VAR)`` references to earlier variables
  (``$$`` is a literal ``$``), then ``JOB_COMPLETION_INDEX`` (Jobs) and ``HOSTNAME``;
  ``$(VAR)`` expansion in ``command`` and ``args``;
- each pod in a network namespace of its own (``ip netns``) with an ``eth0`` on a private
  10.x bridge that lives in one more namespace, the node's (nothing is added to the host's
  network; the bridge has the node's address ``.1``), a UTS namespace whose hostname is the
  pod's (``unshare --uts``), and an ``/etc/hosts`` that ``ip netns exec`` mounts from
  ``/etc/netns/<ns>/hosts``: the pod's own line as the kubelet writes it, plus every pod's
  headless-Service names as cluster DNS would answer them;
- ``httpGet`` readiness probes, sent from the node's namespace to the pod IP as the kubelet
  sends them (:func:`running_pods`, every half second instead of ``periodSeconds``), and
  requests to a pod IP from there (:meth:`PodNetwork.http`); stopping a pod as the kubelet
  does: SIGTERM, then SIGKILL after the grace period.

Not emulated: images (the container runs with this machine's files and ``PATH``; the image's
``python`` is this venv's, mapped in :data:`IMAGE_PYTHON` only, and an image's working
directory is an empty folder of its own per pod), resources, volumes (a mount path must exist
here, or be mapped to a folder here with ``mounts=``, which rewrites that path in the argv, the
environment and the working directory), liveness probes, restarts, the service-account token,
Service virtual IPs and real DNS.
Needs root, ``ip`` and ``unshare``.
"""

from __future__ import annotations

import atexit
import base64
import contextlib
import copy
import functools
import json
import math
import os
import re
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

# The one place where the image's interpreter becomes this machine's: pods run
# ``python -m torch.distributed.run ...``; here that is the test venv's python, as the program
# (argv[0]) and, for commands such as ``sh -c '...' python ...``, first on the pods' PATH.
IMAGE_PYTHON = {"python": sys.executable, "python3": sys.executable}
CLUSTER_DOMAIN = "cluster.local"
COMPLETION_INDEX = "batch.kubernetes.io/job-completion-index"  # annotation and label
_FIELD = re.compile(r"^metadata\.(annotations|labels)\['(?P<key>[^']+)'\]$")


def expand(value: str, env: dict[str, str]) -> str:
    """Kubernetes' ``$(VAR)`` expansion: known names replaced, ``$$`` a literal ``$``."""
    out, i = [], 0
    while i < len(value):
        if value.startswith("$$", i):
            out.append("$")
            i += 2
        elif value.startswith("$(", i) and (end := value.find(")", i + 2)) != -1:
            name = value[i + 2 : end]
            out.append(env[name] if name in env else value[i : end + 1])
            i = end + 1
        else:
            out.append(value[i])
            i += 1
    return "".join(out)


def field_value(path: str, metadata: dict) -> str:
    """A downward-API ``fieldRef`` of the pod's metadata."""
    if path in ("metadata.name", "metadata.namespace"):
        return metadata[path.split(".")[1]]
    match = _FIELD.match(path)
    if not match:
        raise ValueError(f"fieldRef {path!r} is not emulated")
    return metadata.get(match[1], {}).get(match["key"], "")


@dataclass
class Pod:
    """One emulated pod: what the kubelet would run, and where."""

    name: str
    index: int
    namespace: str
    subdomain: str | None
    argv: list[str]
    env: dict[str, str]
    cwd: str
    netns: str = ""
    ip: str = ""
    labels: dict[str, str] = field(default_factory=dict)
    annotations: dict[str, str] = field(default_factory=dict)
    volume_mounts: list[dict] = field(default_factory=list)
    ports: list[dict] = field(default_factory=list)
    readiness_probe: dict | None = None
    grace_seconds: float = 30.0

    @property
    def fqdn(self) -> str:
        """The pod's name under its headless Service, as cluster DNS answers it."""
        if not self.subdomain:
            return self.name
        return f"{self.name}.{self.subdomain}.{self.namespace}.svc.{CLUSTER_DOMAIN}"


def container_env(entries: list[dict], metadata: dict) -> dict[str, str]:
    """A container's ``env`` as the kubelet resolves it for a pod with ``metadata``."""
    env: dict[str, str] = {}
    for entry in entries:
        if "valueFrom" in entry:
            env[entry["name"]] = field_value(entry["valueFrom"]["fieldRef"]["fieldPath"], metadata)
        else:
            env[entry["name"]] = expand(entry.get("value", ""), env)
    return env


def container_argv(container: dict, env: dict[str, str]) -> list[str]:
    """``command`` + ``args`` with ``$(VAR)`` expanded; the image's python is this venv's."""
    argv = [expand(a, env) for a in container["command"] + container.get("args", [])]
    argv[0] = IMAGE_PYTHON.get(argv[0], argv[0])
    return argv


def remap(value: str, mounts: Mapping[str, str | Path]) -> str:
    """``value`` with each mount path of ``mounts`` (as a whole path, also inside ``--x=PATH``
    or ``A:PATH``) replaced by the folder here that stands for it."""
    for target, source in mounts.items():
        pattern = rf"(?<![^\s=:,]){re.escape(target.rstrip('/'))}(?=/|$|[\s:,])"
        value = re.sub(pattern, lambda _m, source=source: str(source), value)
    return value


def remapped(pod: Pod, mounts: Mapping[str, str | Path] | None) -> Pod:
    """``pod`` with its argv, environment and working directory remapped by ``mounts``."""
    if mounts:
        pod.argv = [remap(a, mounts) for a in pod.argv]
        pod.env = {k: remap(v, mounts) for k, v in pod.env.items()}
        pod.cwd = remap(pod.cwd, mounts)
    return pod


@functools.cache
def _image_root() -> str:
    """Where images' working directories go unless a test says: removed when the tests end."""
    root = tempfile.mkdtemp(prefix="aicloud-emulated-images-")
    atexit.register(shutil.rmtree, root, ignore_errors=True)
    return root


def image_workdir(pod_name: str, root: str | Path | None) -> str:
    """A container's working directory when it sets none (the image's): an empty folder."""
    return tempfile.mkdtemp(prefix=f"{pod_name}-image-workdir-", dir=root or _image_root())


def check_mounts(pod: Pod, mounts: Mapping[str, str | Path] | None) -> None:
    """Every ``volumeMounts`` path is mapped by ``mounts`` or exists here (not emulated)."""
    for mount in pod.volume_mounts:
        path = mount["mountPath"]
        if not (mounts and remap(path, mounts) != path) and not Path(path).exists():
            raise ValueError(f"emulation: {path!r} is mounted in {pod.name} but does not exist "
                             "here; map it to a folder with mounts=")  # fmt: skip


def job_pods(job: dict) -> list[Pod]:
    """The pods the Job controller would create for an Indexed ``job``."""
    template = job["spec"]["template"]
    namespace = job["metadata"]["namespace"]
    (container,) = template["spec"]["containers"]
    pods = []
    for index in range(job["spec"]["completions"]):
        name = f"{job['metadata']['name']}-{index}"
        metadata = {
            "name": name,
            "namespace": namespace,
            "labels": {**template["metadata"].get("labels", {}), COMPLETION_INDEX: str(index)},
            "annotations": {
                **template["metadata"].get("annotations", {}),
                COMPLETION_INDEX: str(index),
            },
        }
        env = container_env(container.get("env", []), metadata)
        env["JOB_COMPLETION_INDEX"] = str(index)
        env["HOSTNAME"] = name
        pods.append(
            Pod(
                name=name,
                index=index,
                namespace=namespace,
                subdomain=template["spec"].get("subdomain"),
                argv=container_argv(container, env),
                env=env,
                cwd=container["workingDir"],
                labels=metadata["labels"],
                annotations=metadata["annotations"],
                volume_mounts=container.get("volumeMounts", []),
            )
        )
    return pods


# --- Kubeflow Trainer v2 ------------------------------------------------------------------
#
# Followed: kubeflow/trainer at commit 8c0f5059bd51ec3ba6d6a6a7b2e1471de7bc13b3 (master,
# 2026-08-21, after v2.3.0; the commit the vendored TrainJob CRD schema comes from), and the
# JobSet controller it drives, kubernetes-sigs/jobset at 08dfbdfd (2026-08-18, v0.13 devel):
#
# - manifests/base/runtimes/torch_distributed.yaml: the ``torch-distributed``
#   ClusterTrainingRuntime: ``mlPolicy: {numNodes: 1, torch: {}}``, one replicated Job
#   ``node`` (ancestor label ``trainer``) whose one container ``node`` has only an image: no
#   command, no env, no workingDir;
# - pkg/runtime/core/trainingruntime.go (mergeRuntimePatches): each of ``runtimePatches``
#   is a strategic merge patch of the runtime's JobSet spec (containers merged by name, env
#   by name, volumeMounts by mountPath); the template-metadata labels and annotations of the
#   patches are propagated to the JobSet;
# - pkg/runtime/framework/plugins/jobset/jobset.go (Validate): the webhook refuses a patch
#   for a replicated Job or container that the runtime does not have, and env in a patch of
#   the ``node`` container ("must not have envs for the dataset-initializer,
#   model-initializer, node containers");
# - pkg/runtime/framework/plugins/torch/torch.go (Validate, EnforceMLPolicy):
#   ``trainer.env`` must not set PET_NNODES, PET_NPROC_PER_NODE, PET_NODE_RANK,
#   PET_MASTER_ADDR or PET_MASTER_PORT; the node count is ``trainer.numNodes``; the
#   container's env is ``trainer.env`` upserted, then PET_NNODES, PET_NPROC_PER_NODE
#   (``trainer.numProcPerNode``, else "auto", which becomes the CPU count of
#   ``resourcesPerNode`` when it asks for no GPU), PET_NODE_RANK (a fieldRef of the
#   completion-index annotation), PET_MASTER_ADDR ``<trainjob>-node-0-0.<trainjob>`` and
#   PET_MASTER_PORT 29500 (pkg/constants/constants.go: ContainerTrainerPort);
# - pkg/runtime/framework/plugins/jobset/builder.go (Trainer): ``trainer.image``,
#   ``command`` and ``args`` replace the ``node`` container's;
# - jobset.go (syncPodNetwork) and jobset's pkg/controllers/jobset_controller.go
#   (constructJob, labelAndAnnotateObject) with pkg/util/placement/placement.go
#   (GenJobName): Job ``<jobset>-<replicatedJob>-<jobIndex>``, so pod hostnames
#   ``<trainjob>-node-0-<completion index>`` under subdomain ``<trainjob>`` (the JobSet is
#   named after the TrainJob, and its headless Service after the JobSet), with the
#   ``jobset.sigs.k8s.io/*`` labels and annotations.

TRAINER_SOURCE = "kubeflow/trainer@8c0f5059bd51ec3ba6d6a6a7b2e1471de7bc13b3"
TRAINER_NODE = "node"  # constants.Node: the replicated Job and its container
TRAINER_PORT = 29500  # constants.ContainerTrainerPort
TORCH_RESERVED = ("PET_NNODES", "PET_NPROC_PER_NODE", "PET_NODE_RANK", "PET_MASTER_ADDR",
                  "PET_MASTER_PORT")  # fmt: skip
RUNTIME_IMAGE = "pytorch/pytorch:2.13.0-cuda13.0-cudnn9-runtime"
TORCH_DISTRIBUTED = {  # the runtime's spec, manifests/base/runtimes/torch_distributed.yaml
    "mlPolicy": {"numNodes": 1, "torch": {}},
    "template": {
        "spec": {
            "replicatedJobs": [
                {
                    "name": TRAINER_NODE,
                    "template": {
                        "metadata": {
                            "labels": {"trainer.kubeflow.org/trainjob-ancestor-step": "trainer"}
                        },
                        "spec": {
                            "template": {
                                "spec": {
                                    "containers": [
                                        {
                                            "name": TRAINER_NODE,
                                            "image": RUNTIME_IMAGE,
                                        }
                                    ]
                                }
                            }
                        },
                    },
                }
            ]
        }
    },
}


def upsert(items: list[dict], new: list[dict], key: str) -> list[dict]:
    """``items`` with each of ``new`` replacing the one of the same ``key``, else appended
    (Trainer's ``apply.UpsertEnvVars``; a strategic merge of a list keyed by ``key``)."""
    out = [dict(i) for i in items]
    for item in new:
        at = next((n for n, old in enumerate(out) if old[key] == item[key]), None)
        if at is None:
            out.append(dict(item))
        else:
            out[at] = {**out[at], **item} if key == "mountPath" else dict(item)
    return out


def _quantity_ceil(value) -> int:
    """``resource.Quantity.Value()``: a CPU or GPU amount rounded up to an integer."""
    text = str(value)
    if text.endswith("m"):
        return math.ceil(int(text[:-1]) / 1000)
    return math.ceil(float(text))


def _num_gpu(resources: dict) -> int:
    """runtime.GetNumGPUPerNode: the first resource whose name contains "gpu"."""
    for kind in ("requests", "limits"):
        for name, amount in (resources.get(kind) or {}).items():
            if "gpu" in name.lower():
                return _quantity_ceil(amount)
    return 0


def _num_cpu(resources: dict) -> int:
    """torch.go getNumCPUPerNode: the CPU request, else the limit, rounded up."""
    for kind in ("requests", "limits"):
        if amount := (resources.get(kind) or {}).get("cpu"):
            return _quantity_ceil(amount)
    return 0


def _patched_node(trainjob: dict) -> tuple[dict, dict, dict]:
    """The runtime's ``node`` container and pod metadata with ``runtimePatches`` merged in."""
    runtime = copy.deepcopy(TORCH_DISTRIBUTED)
    (rjob,) = runtime["template"]["spec"]["replicatedJobs"]
    (container,) = rjob["template"]["spec"]["template"]["spec"]["containers"]
    labels: dict[str, str] = {}  # the pods': the ancestor label is the Job's, not inherited
    annotations: dict[str, str] = {}
    for patch in trainjob["spec"].get("runtimePatches", []):
        template = (patch.get("trainingRuntimeSpec") or {}).get("template") or {}
        for rpatch in (template.get("spec") or {}).get("replicatedJobs", []):
            if rpatch["name"] != TRAINER_NODE:
                raise ValueError("runtimePatches: must not have replicated job that doesn't "
                                 "exist in the runtime job template")  # fmt: skip
            pod = ((rpatch.get("template") or {}).get("spec") or {}).get("template") or {}
            labels.update((pod.get("metadata") or {}).get("labels") or {})
            annotations.update((pod.get("metadata") or {}).get("annotations") or {})
            for cpatch in (pod.get("spec") or {}).get("containers", []):
                if cpatch["name"] != TRAINER_NODE:
                    raise ValueError("runtimePatches: must not have container that doesn't "
                                     f"exist in the runtime job {TRAINER_NODE}")  # fmt: skip
                if cpatch.get("env"):
                    raise ValueError("runtimePatches: must not have envs for the dataset-"
                                     "initializer, model-initializer, node containers")  # fmt: skip
                mounts = cpatch.get("volumeMounts", [])
                container["volumeMounts"] = upsert(
                    container.get("volumeMounts", []), mounts, "mountPath"
                )
    return container, labels, annotations


def trainjob_pods(
    trainjob: dict,
    mounts: Mapping[str, str | Path] | None = None,
    image_root: str | Path | None = None,
) -> list[Pod]:
    """The pods that Kubeflow Trainer (:data:`TRAINER_SOURCE`) would run for ``trainjob`` on the
    ``torch-distributed`` runtime: what its webhook refuses raises ValueError.

    The runtime's container sets no working directory, so the pods start in the image's: here
    an empty folder of each pod's own under ``image_root`` (default: a temporary folder removed
    when the tests end), never the job's. ``mounts`` maps mount paths to folders here (see
    :func:`remap`).
    """
    if trainjob.get("apiVersion") != "trainer.kubeflow.org/v1alpha1":
        raise ValueError(f"not a TrainJob: {trainjob.get('apiVersion')!r}")
    spec, name = trainjob["spec"], trainjob["metadata"]["name"]
    namespace = trainjob["metadata"].get("namespace", "default")
    if spec["runtimeRef"]["name"] != "torch-distributed":
        raise ValueError(
            f"only the torch-distributed runtime is emulated, not {spec['runtimeRef']}"
        )
    trainer = spec.get("trainer") or {}
    reserved = sorted({e["name"] for e in trainer.get("env", [])} & set(TORCH_RESERVED))
    if reserved:
        raise ValueError(f"spec.trainer.env: must not have reserved envs, invalid envs "
                         f"configured: {reserved}")  # fmt: skip
    container, labels, annotations = _patched_node(trainjob)
    if "image" in trainer:
        container["image"] = trainer["image"]
    if "command" in trainer:
        container["command"] = trainer["command"]
    if "args" in trainer:
        container["args"] = trainer["args"]
    if "command" not in container:
        raise ValueError("emulation: the image's entrypoint is not emulated; give trainer.command")
    nodes = trainer.get("numNodes", TORCH_DISTRIBUTED["mlPolicy"]["numNodes"])
    procs = trainer.get("numProcPerNode", "auto")
    resources = trainer.get("resourcesPerNode") or {}
    if procs == "auto" and _num_gpu(resources) == 0:
        procs = max(1, _num_cpu(resources))
    master = f"{name}-{TRAINER_NODE}-0-0.{name}"
    pet = [
        {"name": "PET_NNODES", "value": str(nodes)},
        {"name": "PET_NPROC_PER_NODE", "value": str(procs)},
        {"name": "PET_NODE_RANK",
         "valueFrom": {"fieldRef": {"fieldPath": f"metadata.annotations['{COMPLETION_INDEX}']"}}},
        {"name": "PET_MASTER_ADDR", "value": master},
        {"name": "PET_MASTER_PORT", "value": str(TRAINER_PORT)},
    ]  # fmt: skip
    container["env"] = upsert(upsert(container.get("env", []), trainer.get("env", []), "name"),
                              pet, "name")  # fmt: skip
    jobset = {
        "jobset.sigs.k8s.io/jobset-name": name,
        "jobset.sigs.k8s.io/replicatedjob-name": TRAINER_NODE,
        "jobset.sigs.k8s.io/replicatedjob-replicas": "1",
        "jobset.sigs.k8s.io/job-index": "0",
        "jobset.sigs.k8s.io/job-global-index": "0",
    }
    pods = []
    for index in range(nodes):
        hostname = f"{name}-{TRAINER_NODE}-0-{index}"
        metadata = {
            "name": hostname,
            "namespace": namespace,
            "labels": {**labels, **jobset, COMPLETION_INDEX: str(index)},
            "annotations": {**annotations, **jobset, COMPLETION_INDEX: str(index)},
        }
        env = container_env(container["env"], metadata)
        env["JOB_COMPLETION_INDEX"] = str(index)
        env["HOSTNAME"] = hostname
        pod = Pod(
            name=hostname,
            index=index,
            namespace=namespace,
            subdomain=name,
            argv=container_argv(container, env),
            env=env,
            cwd=container.get("workingDir") or image_workdir(hostname, image_root),
            labels=metadata["labels"],
            annotations=metadata["annotations"],
            volume_mounts=container.get("volumeMounts", []),
            ports=[{"containerPort": TRAINER_PORT}],
        )
        check_mounts(pod, mounts)
        pods.append(remapped(pod, mounts))
    return pods


# --- KServe -------------------------------------------------------------------------------

KSERVE_MODEL_DIR = "/mnt/models"  # where KServe's storage initializer downloads STORAGE_URI


def inference_service_pods(
    isvc: dict,
    mounts: Mapping[str, str | Path] | None = None,
    image_root: str | Path | None = None,
) -> list[Pod]:
    """The predictor pod of a RawDeployment KServe ``InferenceService`` (one replica, named
    ``<name>-predictor-emulated-0``), its one container's command, args, env and workingDir.

    The storage initializer is not run: when the predictor has a ``STORAGE_URI`` (or
    ``storageUri``), ``mounts`` must map ``/mnt/models`` to a folder here where the test has put
    what the initializer would download (a missing or empty folder raises ValueError); every
    path under ``/mnt/models`` in the argv, env and workingDir then names that folder.
    """
    if (isvc.get("apiVersion"), isvc.get("kind")) != (
        "serving.kserve.io/v1beta1",
        "InferenceService",
    ):
        raise ValueError("not a serving.kserve.io/v1beta1 InferenceService")
    metadata = isvc["metadata"]
    mode = (metadata.get("annotations") or {}).get("serving.kserve.io/deploymentMode")
    if mode != "RawDeployment":
        raise ValueError(f"emulation: only RawDeployment is emulated, not {mode!r} (Knative)")
    predictor = isvc["spec"]["predictor"]
    (container,) = predictor["containers"]
    name, namespace = metadata["name"], metadata.get("namespace", "default")
    storage = predictor.get("storageUri") or next(
        (e.get("value") for e in container.get("env", []) if e["name"] == "STORAGE_URI"), None
    )
    if storage:
        folder = (mounts or {}).get(KSERVE_MODEL_DIR)
        if folder is None or not Path(folder).is_dir() or not any(Path(folder).iterdir()):
            raise ValueError(f"emulation: the storage initializer would download {storage!r} "
                             f"into {KSERVE_MODEL_DIR}; put it in a folder and pass "
                             f"mounts={{{KSERVE_MODEL_DIR!r}: folder}}")  # fmt: skip
    pod_name = f"{name}-predictor-emulated-0"
    labels = {
        **(metadata.get("labels") or {}),
        "serving.kserve.io/inferenceservice": name,
        "component": "predictor",
        "app": f"isvc.{name}-predictor",
    }
    pod_metadata = {"name": pod_name, "namespace": namespace, "labels": labels,
                    "annotations": dict(metadata.get("annotations") or {})}  # fmt: skip
    env = container_env(container.get("env", []), pod_metadata)
    env["HOSTNAME"] = pod_name
    pod = Pod(
        name=pod_name,
        index=0,
        namespace=namespace,
        subdomain=None,
        argv=container_argv(container, env),
        env=env,
        cwd=container.get("workingDir") or image_workdir(pod_name, image_root),
        labels=labels,
        annotations=pod_metadata["annotations"],
        volume_mounts=[{"name": "kserve-provision-location", "mountPath": KSERVE_MODEL_DIR}]
        if storage
        else [],
        ports=container.get("ports", []),
        readiness_probe=container.get("readinessProbe"),
        grace_seconds=float(predictor.get("terminationGracePeriodSeconds", 30)),
    )
    check_mounts(pod, mounts)
    return [remapped(pod, mounts)]


def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True)


class PodNetwork:
    """Network namespaces for ``pods`` on one bridge; removed again by :meth:`close`."""

    def __init__(self, pods: list[Pod]):
        self.pods = pods
        self.tag = "aick-" + secrets.token_hex(3)
        self.switch = f"{self.tag}-sw"
        self.subnet = f"10.{200 + secrets.randbelow(50)}.{secrets.randbelow(250)}"
        self.node_ip = f"{self.subnet}.1"  # the bridge's: where the kubelet's probes come from
        self.created: list[str] = []
        self.image_bin = ""  # the image's ``python``: this venv's (see IMAGE_PYTHON)

    def open(self) -> PodNetwork:
        """Create the namespaces, the bridge and the hosts files."""
        _ip("netns", "add", self.switch)
        self.created.append(self.switch)
        _ip("-n", self.switch, "link", "add", "br0", "type", "bridge")
        _ip("-n", self.switch, "addr", "add", f"{self.node_ip}/24", "dev", "br0")
        _ip("-n", self.switch, "link", "set", "br0", "up")
        for pod in self.pods:
            pod.netns = f"{self.tag}-{pod.index}"
            pod.ip = f"{self.subnet}.{pod.index + 2}"
            _ip("netns", "add", pod.netns)
            self.created.append(pod.netns)
            port = f"v{pod.index}"
            _ip("-n", self.switch, "link", "add", port, "type", "veth", "peer", "name", "eth0",
                "netns", pod.netns)  # fmt: skip
            _ip("-n", self.switch, "link", "set", port, "master", "br0")
            _ip("-n", self.switch, "link", "set", port, "up")
            _ip("-n", pod.netns, "addr", "add", f"{pod.ip}/24", "dev", "eth0")
            _ip("-n", pod.netns, "link", "set", "eth0", "up")
            _ip("-n", pod.netns, "link", "set", "lo", "up")
        for pod in self.pods:
            self._write_etc(pod)
        self.image_bin = tempfile.mkdtemp(prefix=f"{self.tag}-bin-")
        for name, program in IMAGE_PYTHON.items():
            shim = Path(self.image_bin, name)  # a script: a link would lose the venv
            shim.write_text(f'#!/bin/sh\nexec "{program}" "$@"\n')
            shim.chmod(0o755)
        return self

    def _write_etc(self, pod: Pod) -> None:
        lines = ["127.0.0.1 localhost", "::1 localhost ip6-localhost ip6-loopback"]
        for other in self.pods:
            names = [other.fqdn]
            if other.subdomain:
                names += [f"{other.name}.{other.subdomain}.{other.namespace}",
                          f"{other.name}.{other.subdomain}"]  # fmt: skip
            if other is pod:
                names.append(pod.name)  # the kubelet's line: FQDN first, then the hostname
            lines.append(f"{other.ip} {' '.join(names)}")
        etc = Path("/etc/netns") / pod.netns
        etc.mkdir(parents=True, exist_ok=True)
        (etc / "hosts").write_text("\n".join(lines) + "\n")
        search = f"{pod.namespace}.svc.{CLUSTER_DOMAIN} svc.{CLUSTER_DOMAIN} {CLUSTER_DOMAIN}"
        # No DNS server in a pod namespace: refused at once instead of a timeout.
        (etc / "resolv.conf").write_text(f"search {search}\nnameserver 127.0.0.1\n")

    def close(self) -> None:
        """Remove every namespace and hosts file made here (also after a failure)."""
        for name in reversed(self.created):
            with contextlib.suppress(subprocess.CalledProcessError):
                _ip("netns", "del", name)
            shutil.rmtree(Path("/etc/netns") / name, ignore_errors=True)
        self.created.clear()
        if self.image_bin:
            shutil.rmtree(self.image_bin, ignore_errors=True)

    def start(self, pod: Pod, log: Path) -> subprocess.Popen:
        """Run ``pod``'s container command in its namespaces, output to ``log``."""
        path = os.environ.get("PATH", "/usr/bin:/bin")
        env = {**pod.env, "PATH": f"{self.image_bin}:{path}" if self.image_bin else path}
        wrapper = 'hostname "$1" && shift && exec "$@"'
        argv = ["ip", "netns", "exec", pod.netns, "unshare", "--uts", "--", "sh", "-c", wrapper,
                "sh", pod.name, *pod.argv]  # fmt: skip
        with open(log, "wb") as out:
            return subprocess.Popen(
                argv, env=env, cwd=pod.cwd, stdout=out, stderr=subprocess.STDOUT,
                start_new_session=True,
            )  # fmt: skip

    def http(
        self,
        method: str,
        url: str,
        body: bytes | None = None,
        headers: dict[str, str] | None = None,
        timeout: float = 30,
    ) -> tuple[int, bytes]:
        """One HTTP request from the node's namespace (as the kubelet or a Service's proxy
        sends it to a pod IP): its status (0 when nothing answered) and body."""
        encoded = base64.b64encode(body).decode() if body is not None else None
        request = {"method": method, "url": url, "headers": headers or {}, "timeout": timeout,
                   "body": encoded}  # fmt: skip
        result = subprocess.run(
            ["ip", "netns", "exec", self.switch, sys.executable, "-I", "-S", "-c", _HTTP_CLIENT],
            input=json.dumps(request).encode(), capture_output=True, timeout=timeout + 30,
            check=True,
        )  # fmt: skip
        answer = json.loads(result.stdout)
        return answer["status"], base64.b64decode(answer["body"])

    def probe(self, pod: Pod, probe: dict) -> bool:
        """One ``httpGet`` probe of ``pod`` as the kubelet sends it: 200 to 399 pass."""
        get = probe["httpGet"]
        port = get["port"]
        if isinstance(port, str) and not port.isdigit():  # a named container port
            port = next(p["containerPort"] for p in pod.ports if p.get("name") == port)
        scheme = get.get("scheme", "HTTP").lower()
        url = f"{scheme}://{get.get('host') or pod.ip}:{port}{get.get('path', '/')}"
        timeout = float(probe.get("timeoutSeconds", 1))
        status, _body = self.http("GET", url, timeout=timeout)
        return 200 <= status < 400


# Run with ``python -I -S`` in the node's namespace: a JSON request on stdin, the answer out.
_HTTP_CLIENT = """
import base64, json, sys, urllib.error, urllib.request
r = json.load(sys.stdin)
data = base64.b64decode(r["body"]) if r["body"] is not None else None
req = urllib.request.Request(r["url"], data=data, method=r["method"], headers=r["headers"])
opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # never a proxy
try:
    with opener.open(req, timeout=r["timeout"]) as resp:
        status, body = resp.status, resp.read()
except urllib.error.HTTPError as e:
    status, body = e.code, e.read()
except (OSError, ValueError) as e:
    status, body = 0, str(e).encode()
print(json.dumps({"status": status, "body": base64.b64encode(body).decode()}))
"""


@contextlib.contextmanager
def pod_networks() -> Iterator:
    """``open(pods)`` opens a :class:`PodNetwork`; every one is closed at the end, even after a
    failure, and none leaves a namespace behind (the tests' ``network`` fixture)."""
    opened: list[PodNetwork] = []

    def open_for(pods: list[Pod]) -> PodNetwork:
        net = PodNetwork(pods)
        opened.append(net)
        return net.open()

    try:
        yield open_for
    finally:
        for net in opened:
            net.close()
    for net in opened:
        assert not Path("/run/netns", net.switch).exists(), net.switch


def run_pods(pods: list[Pod], network: PodNetwork, logs: Path, timeout: float) -> list[int]:
    """Start every pod, wait for all of them; their exit codes (a hung pod is killed: -9)."""
    logs.mkdir(parents=True, exist_ok=True)
    processes = [network.start(pod, logs / f"{pod.name}.log") for pod in pods]
    codes = []
    for process in processes:
        try:
            codes.append(process.wait(timeout=timeout))
        except subprocess.TimeoutExpired:
            for other in processes:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(other.pid, 9)
            codes.append(process.wait())
    return codes


def stop_pod(process: subprocess.Popen, grace: float) -> int:
    """Stop a pod as the kubelet does: SIGTERM, then SIGKILL after ``grace`` seconds."""
    if process.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
    return process.wait()


@contextlib.contextmanager
def running_pods(
    pods: list[Pod], network: PodNetwork, logs: Path, ready_timeout: float = 120
) -> Iterator[list[subprocess.Popen]]:
    """Start long-running ``pods`` and yield their processes once each pod's readiness probe
    passes (a pod without one is ready when started); stop them all when the block ends.

    A pod that exits, or is not ready within ``ready_timeout`` seconds, raises RuntimeError
    with its log. After the block, each process's ``returncode`` is its exit code.
    """
    logs.mkdir(parents=True, exist_ok=True)
    processes: list[subprocess.Popen] = []
    try:
        for pod in pods:
            processes.append(network.start(pod, logs / f"{pod.name}.log"))
        deadline = time.monotonic() + ready_timeout
        for pod, process in zip(pods, processes, strict=True):
            while pod.readiness_probe and not network.probe(pod, pod.readiness_probe):
                exited = process.poll() is not None
                if exited or time.monotonic() > deadline:
                    log = (logs / f"{pod.name}.log").read_text(errors="replace")
                    why = f"exited {process.returncode}" if exited else "is not ready in time"
                    raise RuntimeError(f"pod {pod.name} {why}:\n{log}")
                time.sleep(0.5)
        yield processes
    finally:
        for pod, process in zip(pods, processes, strict=False):
            stop_pod(process, pod.grace_seconds)
