"""Pure builders: a job spec to Kubernetes manifests (plain dicts), no I/O.

One attempt of a job is one primary object, an Indexed ``Job`` (or a Kubeflow Trainer v2
``TrainJob`` for torch where that CRD is installed), plus dependents created after it with an
owner reference to it (a headless ``Service``, a parameters ``ConfigMap``), so that deleting
the primary with ``propagationPolicy=Foreground`` removes everything.

Conventions inside the pods are the engines' own:

- torch: ``torchrun`` (``python -m torch.distributed.run``) reads the Kubeflow ``PET_*``
  variables: ``PET_NNODES`` (``MIN:MAX`` for elastic jobs), ``PET_NPROC_PER_NODE``,
  ``PET_NODE_RANK`` (the pod's completion index), ``PET_MASTER_ADDR`` (the index-0 pod's DNS
  name under the headless Service) and ``PET_MASTER_PORT``; the c10d rendezvous runs on the
  index-0 pod. Ranks' lines carry ``[rank<N>]:`` as on the local backend.
- TensorFlow: one worker per pod; ``TF_CONFIG`` lists every pod's stable DNS name and takes the
  task index from the completion index.
- notebooks: papermill (``aicloud.launchers.notebook_runner``) with the parameters from a
  ConfigMap, outputs under the run directory on the runs volume.

User strings (arguments, environment values) are escaped for Kubernetes' ``$(VAR)``
expansion, so that they reach the process exactly as given.

Isolation between users (issue 15): every pod runs as its job's owner (``runAsUser`` from
``ClusterConfig.owner_uids``, else ``default_uid``; never root, no privilege escalation, no
capabilities) and mounts only that owner's home (``workspace_claim`` and ``workspace_subpath``,
templates of ``{username}`` as KubeSpawner's ``pvc_name_template`` is) and the attempt's own run
directory (a ``subPath`` of ``runs_claim``), never the runs directory of other jobs or anything
else of the service's state.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cache
from pathlib import PurePosixPath
from typing import Any

from aicloud.backends.kubernetes.shapes import PodShape
from aicloud.launchers.torch import RANK_PREFIX
from aicloud.spec import Framework, JobKind, JobSpec

MANAGED_BY = "app.kubernetes.io/managed-by"
LABEL_JOB = "aicloud.dev/job-id"
LABEL_ATTEMPT = "aicloud.dev/attempt"
ANNOTATION_RANK_PREFIX = "aicloud.dev/rank-prefix"
COMPLETION_INDEX = "batch.kubernetes.io/job-completion-index"
QUEUE_LABEL = "kueue.x-k8s.io/queue-name"
CONTAINER = "worker"
TRAINJOB_CONTAINER = "node"  # the container of Kubeflow's torch-distributed runtime
TRAINJOB_API = "trainer.kubeflow.org/v1alpha1"
PATCH_MANAGER = "aicloud.dev/kubernetes-backend"
PARAMETERS_DIR = "/etc/aicloud"
NODE_RANK = "AICLOUD_NODE_RANK"
# A pod may wait long for its peers to be scheduled (image pulls, autoscaling): keep joining.
RDZV_CONF = "join_timeout=1800,last_call_timeout=2,keep_alive_interval=2,keep_alive_max_attempt=3"


@dataclass(frozen=True)
class ClusterConfig:
    """What the operator decides for every job pod (the backend's traits).

    ``runs_claim`` holds the service's runs directory (``runs_path`` in the service, at
    ``runs_subpath`` inside the claim); a pod mounts only its attempt's run directory of it.
    ``workspace_claim`` and ``workspace_subpath`` name the owner's home, mounted at
    ``workspace_path``; both may use ``{username}`` (KubeSpawner's safe slug of the owner's
    name, as in z2jh's ``claim-{username}``) or ``{escaped_username}`` (KubeSpawner's legacy
    escaping). Pods run as ``owner_uids[owner]``, else ``default_uid`` (None: an owner not in
    ``owner_uids`` cannot run jobs), with group and ``fsGroup`` ``run_as_group``.
    """

    namespace: str = "default"
    service_account: str | None = None
    image_pull_secrets: tuple[str, ...] = ()
    runs_claim: str | None = None
    runs_path: str = "/srv/aicloud/runs"
    runs_subpath: str = ""
    workspace_claim: str | None = None
    workspace_path: str = "/home/jovyan"
    workspace_subpath: str = ""
    owner_uids: Mapping[str, int] = field(default_factory=dict)
    default_uid: int | None = 1000
    run_as_group: int = 100
    python: str = "python"
    rendezvous_port: int = 29400
    tf_port: int = 2222
    trainjob_runtime: str = "torch-distributed"
    ttl_seconds: int | None = 86400
    grace_seconds: int = 30
    queue_name: str | None = None
    shm_size: str | None = "1Gi"


@dataclass(frozen=True)
class AttemptContext:
    """One attempt: names, environment and where things are inside the pods."""

    job_id: str
    attempt: int
    shape: PodShape
    working_dir: str
    run_dir: str
    env: dict[str, str] = field(default_factory=dict)
    timeout_seconds: int | None = None
    owner: str | None = None

    @property
    def name(self) -> str:
        """The name of every object of the attempt (a DNS label; pods add ``-<index>``)."""
        return object_name(self.job_id, self.attempt)


@dataclass(frozen=True)
class Manifests:
    """The primary object of an attempt and the dependents it owns."""

    primary: dict[str, Any]
    dependents: list[dict[str, Any]] = field(default_factory=list)

    @property
    def all(self) -> list[dict[str, Any]]:
        """The primary first, then its dependents."""
        return [self.primary, *self.dependents]


def object_name(job_id: str, attempt: int) -> str:
    """``<job id>-a<attempt>``: short enough for pod hostnames (``<name>-<index>``)."""
    return f"{job_id}-a{attempt}".lower()


def escape(value: str) -> str:
    """``value`` with ``$`` doubled, so that Kubernetes' ``$(VAR)`` expansion leaves it alone."""
    return value.replace("$", "$$")


def make_labels(job_id: str, attempt: int) -> dict[str, str]:
    """The labels of every object of an attempt (the selector of its pods)."""
    return {MANAGED_BY: "aicloud", LABEL_JOB: job_id, LABEL_ATTEMPT: str(attempt)}


def make_owner_reference(owner: dict[str, Any]) -> dict[str, Any]:
    """An owner reference to a created object (it has a ``uid``) that blocks its deletion."""
    meta = owner["metadata"]
    return {
        "apiVersion": owner["apiVersion"],
        "kind": owner["kind"],
        "name": meta["name"],
        "uid": meta["uid"],
        "controller": True,
        "blockOwnerDeletion": True,
    }


def with_owner(obj: dict[str, Any], owner: dict[str, Any]) -> dict[str, Any]:
    """A copy of ``obj`` owned by ``owner`` (deleted with it)."""
    metadata = {**obj["metadata"], "ownerReferences": [make_owner_reference(owner)]}
    return {**obj, "metadata": metadata}


def index_env(name: str) -> dict[str, Any]:
    """A variable holding the pod's completion index (what ``JOB_COMPLETION_INDEX`` holds)."""
    path = f"metadata.annotations['{COMPLETION_INDEX}']"
    return {"name": name, "valueFrom": {"fieldRef": {"fieldPath": path}}}


def make_env(values: dict[str, str], literal: bool = True) -> list[dict[str, Any]]:
    """Environment entries; ``literal`` values are escaped, others may use ``$(VAR)``."""
    return [{"name": k, "value": escape(v) if literal else v} for k, v in values.items()]


def entry_argv(spec: JobSpec, ctx: AttemptContext) -> list[str]:
    """What follows ``python`` (escaped): a script, a module, or the run's ``source.py``."""
    if spec.script is not None:
        argv = [spec.script, *spec.args]
    elif spec.module is not None:
        argv = ["-m", spec.module, *spec.args]
    elif spec.source is not None:  # written to the run directory by the launcher's plan
        argv = [str(PurePosixPath(ctx.run_dir) / "source.py"), *spec.args]
    else:
        raise ValueError(f"{spec.entrypoint} is not a Python entry point")
    return [escape(a) for a in argv]


def thread_env(shape: PodShape, processes: int, names: tuple[str, ...]) -> dict[str, str]:
    """Thread counts from the pod's CPU limit (torch and TF see the node's CPUs otherwise)."""
    threads = shape.threads(processes)
    return {} if threads is None else dict.fromkeys(names, str(threads))


class OwnerError(ValueError):
    """An attempt cannot be given its owner's identity or home (a configuration problem)."""


@cache
def _slugs():
    try:
        from kubespawner.slugs import escape_slug, safe_slug
    except ImportError:
        raise OwnerError(
            "{username} in the Kubernetes backend's claim templates needs KubeSpawner's slugs: "
            "pip install 'jupyter-aicloud[hub]'"
        ) from None
    return safe_slug, escape_slug


def expand_owner(template: str, owner: str | None) -> str:
    """``template`` with ``{username}`` (KubeSpawner's safe slug, as in ``claim-{username}``)
    and ``{escaped_username}`` (its legacy ``escape`` scheme) of the owner filled in."""
    if "{" not in template:
        return template
    if not owner:
        raise OwnerError(f"{template!r} names the job's owner, and this attempt has none")
    safe_slug, escape_slug = _slugs()
    try:
        return template.format(
            username=safe_slug(owner, max_length=48), escaped_username=escape_slug(owner)
        )
    except (KeyError, IndexError, ValueError) as e:
        raise OwnerError(
            f"{template!r}: only {{username}} and {{escaped_username}} can be filled in ({e})"
        ) from None


def check_owner(owner: str | None, config: ClusterConfig) -> None:
    """Raise :class:`OwnerError` if ``owner``'s pods could not be built (no uid, a template
    that needs an owner); for the backend's ``validate``, before a job is stored."""
    owner_uid(owner, config)
    expand_owner(config.workspace_claim or "", owner)
    expand_owner(config.workspace_subpath, owner)


def owner_uid(owner: str | None, config: ClusterConfig) -> int:
    """The uid the owner's pods run as: ``owner_uids``, else ``default_uid``; never root."""
    uid = config.owner_uids.get(owner) if owner is not None else None
    if uid is None:
        uid = config.default_uid
    if uid is None:
        raise OwnerError(f"no uid for {owner!r}: KubernetesBackend.owner_uids does not list them")
    if uid <= 0:
        raise OwnerError(f"{owner!r} would run as uid {uid}; job pods never run as root")
    return uid


def make_pod_security_context(ctx: AttemptContext, config: ClusterConfig) -> dict[str, Any]:
    """The owner's uid, the users' group (and ``fsGroup``, so volumes are writable), non-root."""
    return {
        "runAsUser": owner_uid(ctx.owner, config),
        "runAsGroup": config.run_as_group,
        "fsGroup": config.run_as_group,
        "fsGroupChangePolicy": "OnRootMismatch",
        "runAsNonRoot": True,
        "seccompProfile": {"type": "RuntimeDefault"},
    }


def make_container_security_context() -> dict[str, Any]:
    """No privilege escalation, no capabilities."""
    return {"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]}}


def run_dir_subpath(ctx: AttemptContext, config: ClusterConfig) -> str:
    """Where the attempt's run directory is inside ``runs_claim``."""
    run_dir, runs = PurePosixPath(ctx.run_dir), PurePosixPath(config.runs_path)
    if run_dir == runs or runs not in run_dir.parents or ".." in run_dir.parts:
        raise OwnerError(f"run directory {ctx.run_dir!r} is not inside {config.runs_path!r}")
    return str(PurePosixPath(config.runs_subpath or ".") / run_dir.relative_to(runs))


def make_volumes(
    ctx: AttemptContext, config: ClusterConfig, configmap: str | None = None
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The pods' volumes and the container's mounts: the attempt's run directory, the owner's
    home, shm, parameters. Nothing else of the runs claim, and no other user's home."""
    volumes: list[dict[str, Any]] = []
    mounts: list[dict[str, Any]] = []
    if config.runs_claim:
        claim = {"claimName": config.runs_claim}
        volumes.append({"name": "runs", "persistentVolumeClaim": claim})
        subpath = run_dir_subpath(ctx, config).removeprefix("./")
        mounts.append({"name": "runs", "mountPath": ctx.run_dir, "subPath": subpath})
    if config.workspace_claim:
        claim = {"claimName": expand_owner(config.workspace_claim, ctx.owner)}
        volumes.append({"name": "workspace", "persistentVolumeClaim": claim})
        mount = {"name": "workspace", "mountPath": config.workspace_path}
        subpath = expand_owner(config.workspace_subpath, ctx.owner).strip("/")
        if subpath:
            if ".." in PurePosixPath(subpath).parts:
                raise OwnerError(f"workspace_subpath {subpath!r} must not contain '..'")
            mount["subPath"] = subpath
        mounts.append(mount)
    if config.shm_size:
        shm = {"medium": "Memory", "sizeLimit": config.shm_size}
        volumes.append({"name": "dshm", "emptyDir": shm})
        mounts.append({"name": "dshm", "mountPath": "/dev/shm"})
    if configmap:
        volumes.append({"name": "parameters", "configMap": {"name": configmap}})
        mounts.append({"name": "parameters", "mountPath": PARAMETERS_DIR, "readOnly": True})
    return volumes, mounts


def make_container(
    name: str,
    ctx: AttemptContext,
    command: list[str],
    env: list[dict[str, Any]],
    mounts: list[dict[str, Any]],
    ports: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """The one container of a job pod."""
    container: dict[str, Any] = {
        "name": name,
        "image": ctx.shape.image,
        "command": command,
        "workingDir": ctx.working_dir,
        "env": env,
        "resources": {"requests": dict(ctx.shape.requests), "limits": dict(ctx.shape.limits)},
        "volumeMounts": mounts,
        "securityContext": make_container_security_context(),
    }
    if ports:
        container["ports"] = ports
    return container


def make_placement(ctx: AttemptContext, config: ClusterConfig) -> dict[str, Any]:
    """The pod-spec fields that place a pod: node selector, tolerations, account, secrets."""
    placement: dict[str, Any] = {}
    if ctx.shape.node_selector:
        placement["nodeSelector"] = dict(ctx.shape.node_selector)
    if ctx.shape.tolerations:
        placement["tolerations"] = [dict(t) for t in ctx.shape.tolerations]
    if config.service_account:
        placement["serviceAccountName"] = config.service_account
    if config.image_pull_secrets:
        placement["imagePullSecrets"] = [{"name": s} for s in config.image_pull_secrets]
    return placement


def make_pod_template(
    ctx: AttemptContext,
    config: ClusterConfig,
    container: dict[str, Any],
    volumes: list[dict[str, Any]],
    subdomain: str | None = None,
    rank_prefix: bool = False,
) -> dict[str, Any]:
    """The pod template: placement, volumes, and no API token (jobs do not call the API)."""
    spec: dict[str, Any] = {
        "restartPolicy": "Never",
        "containers": [container],
        "volumes": volumes,
        "automountServiceAccountToken": False,
        "enableServiceLinks": False,
        "terminationGracePeriodSeconds": config.grace_seconds,
        "securityContext": make_pod_security_context(ctx, config),
    }
    if subdomain:
        spec["subdomain"] = subdomain
    spec.update(make_placement(ctx, config))
    metadata: dict[str, Any] = {"labels": make_labels(ctx.job_id, ctx.attempt)}
    if rank_prefix:
        metadata["annotations"] = {ANNOTATION_RANK_PREFIX: "index"}
    return {"metadata": metadata, "spec": spec}


def make_pod_failure_policy(container: str) -> dict[str, Any]:
    """Disruptions (preemption, eviction, drain) never count; a non-zero exit fails the Job.

    A user-code failure then ends the attempt at once with that exit code (the job service
    retries per ``max_retries``); other pod failures count against ``backoffLimit``.
    """
    return {
        "rules": [
            {
                "action": "Ignore",
                "onPodConditions": [{"type": "DisruptionTarget", "status": "True"}],
            },
            {
                "action": "FailJob",
                "onExitCodes": {"containerName": container, "operator": "NotIn", "values": [0]},
            },
        ]
    }


def make_indexed_job(
    ctx: AttemptContext,
    config: ClusterConfig,
    template: dict[str, Any],
    nodes: int,
    backoff_limit: int = 0,
    leader_decides: bool = False,
) -> dict[str, Any]:
    """An Indexed Job of ``nodes`` pods (parallelism = completions = nodes).

    ``leader_decides``: the Job succeeds when index 0 does (elastic torch jobs, where a pod
    lost and replaced mid-run may never rejoin a finished rendezvous).
    """
    labels = make_labels(ctx.job_id, ctx.attempt)
    if config.queue_name:
        labels[QUEUE_LABEL] = config.queue_name
    spec: dict[str, Any] = {
        "completionMode": "Indexed",
        "completions": nodes,
        "parallelism": nodes,
        "backoffLimit": backoff_limit,
        "podFailurePolicy": make_pod_failure_policy(template["spec"]["containers"][0]["name"]),
        "template": template,
    }
    if leader_decides:
        spec["successPolicy"] = {"rules": [{"succeededIndexes": "0"}]}
    if ctx.timeout_seconds:
        spec["activeDeadlineSeconds"] = ctx.timeout_seconds
    if config.ttl_seconds is not None:
        spec["ttlSecondsAfterFinished"] = config.ttl_seconds
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": ctx.name, "namespace": config.namespace, "labels": labels},
        "spec": spec,
    }


def make_headless_service(ctx: AttemptContext, config: ClusterConfig, port: int, port_name: str):
    """The headless Service that gives each pod the name ``<job>-<index>.<service>``.

    ``publishNotReadyAddresses``: the names resolve before the pods are ready, which is when
    rendezvous needs them.
    """
    labels = make_labels(ctx.job_id, ctx.attempt)
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": ctx.name, "namespace": config.namespace, "labels": labels},
        "spec": {
            "clusterIP": "None",
            "publishNotReadyAddresses": True,
            "selector": labels,
            "ports": [{"name": port_name, "port": port, "targetPort": port, "protocol": "TCP"}],
        },
    }


def pod_dns_name(ctx: AttemptContext, index: int) -> str:
    """The stable DNS name of pod ``index`` under the headless Service (namespace-relative)."""
    return f"{ctx.name}-{index}.{ctx.name}"


def base_env(ctx: AttemptContext, spec: JobSpec) -> dict[str, str]:
    """aicloud's variables, then the user's (literal values)."""
    return {"PYTHONUNBUFFERED": "1", **ctx.env, **spec.env}


def torchrun_argv(spec: JobSpec, ctx: AttemptContext, config: ClusterConfig) -> list[str]:
    """``torchrun`` with the elastic options; node counts and ranks come from ``PET_*``."""
    return [
        config.python,
        "-m",
        "torch.distributed.run",
        "--rdzv-backend=c10d",
        "--rdzv-endpoint=$(PET_MASTER_ADDR):$(PET_MASTER_PORT)",
        f"--rdzv-id={ctx.name}",
        f"--rdzv-conf={RDZV_CONF}",
        f"--max-restarts={spec.max_restarts}",
        "--tee=3",
        *entry_argv(spec, ctx),
    ]


def make_torch_job(spec: JobSpec, ctx: AttemptContext, config: ClusterConfig) -> Manifests:
    """An Indexed Job plus headless Service running ``torchrun`` on every pod."""
    resources = spec.resources
    nodes, min_nodes = resources.nodes, resources.min_nodes or resources.nodes
    pet = {
        "PET_NNODES": f"{min_nodes}:{nodes}" if min_nodes < nodes else str(nodes),
        "PET_NPROC_PER_NODE": str(resources.procs_per_node),
        "PET_MASTER_ADDR": pod_dns_name(ctx, 0),
        "PET_MASTER_PORT": str(config.rendezvous_port),
        "TORCHELASTIC_LOG_LINE_PREFIX_TEMPLATE": RANK_PREFIX,
    }
    threads = thread_env(ctx.shape, resources.procs_per_node, ("OMP_NUM_THREADS",))
    env = [
        index_env("PET_NODE_RANK"),
        *make_env({**pet, **threads, **base_env(ctx, spec)}),
    ]
    volumes, mounts = make_volumes(ctx, config)
    port = {"name": "rendezvous", "containerPort": config.rendezvous_port, "protocol": "TCP"}
    container = make_container(
        CONTAINER, ctx, torchrun_argv(spec, ctx, config), env, mounts, [port]
    )
    template = make_pod_template(ctx, config, container, volumes, subdomain=ctx.name)
    job = make_indexed_job(
        ctx, config, template, nodes, spec.max_restarts, leader_decides=min_nodes < nodes
    )
    service = make_headless_service(ctx, config, config.rendezvous_port, "rendezvous")
    return Manifests(job, [service])


def make_trainjob(spec: JobSpec, ctx: AttemptContext, config: ClusterConfig) -> Manifests:
    """A Kubeflow Trainer v2 TrainJob on the ``torch-distributed`` runtime.

    Trainer sets the ``PET_*`` variables and the headless Service; placement, volumes and our
    labels go in through ``runtimePatches``.
    """
    resources = spec.resources
    threads = thread_env(ctx.shape, resources.procs_per_node, ("OMP_NUM_THREADS",))
    env = make_env(
        {"TORCHELASTIC_LOG_LINE_PREFIX_TEMPLATE": RANK_PREFIX, **threads, **base_env(ctx, spec)}
    )
    volumes, mounts = make_volumes(ctx, config)
    labels = make_labels(ctx.job_id, ctx.attempt)
    node = {
        "name": TRAINJOB_CONTAINER,
        "volumeMounts": mounts,
        "securityContext": make_container_security_context(),
    }
    pod_spec: dict[str, Any] = {
        "containers": [node],
        "securityContext": make_pod_security_context(ctx, config),
    }
    if volumes:
        pod_spec["volumes"] = volumes
    pod_spec.update(make_placement(ctx, config))
    node_patch = {
        "name": TRAINJOB_CONTAINER,
        "template": {"spec": {"template": {"metadata": {"labels": labels}, "spec": pod_spec}}},
    }
    trainer = {
        "image": ctx.shape.image,
        "command": [config.python, "-m", "torch.distributed.run"],
        "args": [f"--max-restarts={spec.max_restarts}", "--tee=3", *entry_argv(spec, ctx)],
        "env": env,
        "numNodes": resources.nodes,
        "numProcPerNode": resources.procs_per_node,
        "resourcesPerNode": {
            "requests": dict(ctx.shape.requests),
            "limits": dict(ctx.shape.limits),
        },
    }
    body: dict[str, Any] = {
        "runtimeRef": {"name": config.trainjob_runtime},
        "trainer": trainer,
        "runtimePatches": [
            {
                "manager": PATCH_MANAGER,
                "trainingRuntimeSpec": {
                    "template": {"spec": {"replicatedJobs": [node_patch]}},
                },
            }
        ],
    }
    if ctx.timeout_seconds:
        body["activeDeadlineSeconds"] = ctx.timeout_seconds
    metadata_labels = dict(labels)
    if config.queue_name:
        metadata_labels[QUEUE_LABEL] = config.queue_name
    return Manifests(
        {
            "apiVersion": TRAINJOB_API,
            "kind": "TrainJob",
            "metadata": {
                "name": ctx.name,
                "namespace": config.namespace,
                "labels": metadata_labels,
            },
            "spec": body,
        }
    )


def tf_config_value(ctx: AttemptContext, nodes: int, port: int) -> str:
    """``TF_CONFIG``; Kubernetes puts the pod's index in place of ``$(AICLOUD_NODE_RANK)``."""
    workers = [f"{pod_dns_name(ctx, i)}:{port}" for i in range(nodes)]
    cluster = escape(json.dumps({"worker": workers}, separators=(",", ":")))
    return f'{{"cluster":{cluster},"task":{{"type":"worker","index":$({NODE_RANK})}}}}'


def make_tf_job(spec: JobSpec, ctx: AttemptContext, config: ClusterConfig) -> Manifests:
    """An Indexed Job plus headless Service: one TensorFlow worker per pod, worker 0 the chief."""
    nodes = spec.resources.nodes
    tf_config = tf_config_value(ctx, nodes, config.tf_port)
    threads = thread_env(
        ctx.shape, 1, ("OMP_NUM_THREADS", "TF_NUM_INTRAOP_THREADS", "TF_NUM_INTEROP_THREADS")
    )
    defaults = {"TF_CPP_MIN_LOG_LEVEL": "1", **threads}
    env = [
        index_env(NODE_RANK),
        {"name": "TF_CONFIG", "value": tf_config},
        *make_env({**defaults, **base_env(ctx, spec)}),
    ]
    volumes, mounts = make_volumes(ctx, config)
    port = {"name": "tf", "containerPort": config.tf_port, "protocol": "TCP"}
    command = [config.python, *entry_argv(spec, ctx)]
    container = make_container(CONTAINER, ctx, command, env, mounts, [port])
    template = make_pod_template(
        ctx, config, container, volumes, subdomain=ctx.name, rank_prefix=True
    )
    job = make_indexed_job(ctx, config, template, nodes)
    service = make_headless_service(ctx, config, config.tf_port, "tf")
    return Manifests(job, [service])


def make_parameters_configmap(
    spec: JobSpec, ctx: AttemptContext, config: ClusterConfig
) -> dict[str, Any]:
    """A notebook job's parameters as ``parameters.json``."""
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {
            "name": f"{ctx.name}-parameters",
            "namespace": config.namespace,
            "labels": make_labels(ctx.job_id, ctx.attempt),
        },
        "data": {"parameters.json": json.dumps(spec.parameters, sort_keys=True)},
    }


def make_notebook_job(spec: JobSpec, ctx: AttemptContext, config: ClusterConfig) -> Manifests:
    """A Job that runs papermill; the executed notebook and its HTML go to ``outputs/``."""
    notebook = PurePosixPath(ctx.working_dir) / spec.notebook
    outputs = PurePosixPath(ctx.run_dir) / "outputs"
    configmap = make_parameters_configmap(spec, ctx, config)
    command = [
        config.python,
        "-m",
        "aicloud.launchers.notebook_runner",
        f"--input={notebook}",
        f"--output={outputs / notebook.name}",
        f"--html={outputs / notebook.with_suffix('.html').name}",
        f"--parameters={PARAMETERS_DIR}/parameters.json",
        f"--cwd={notebook.parent}",
    ]
    if spec.kernel:
        command.append(f"--kernel={spec.kernel}")
    volumes, mounts = make_volumes(ctx, config, configmap["metadata"]["name"])
    env = make_env(base_env(ctx, spec))
    container = make_container(CONTAINER, ctx, [escape(a) for a in command], env, mounts)
    template = make_pod_template(ctx, config, container, volumes)
    return Manifests(make_indexed_job(ctx, config, template, 1), [configmap])


def make_command_job(spec: JobSpec, ctx: AttemptContext, config: ClusterConfig) -> Manifests:
    """A Job of one pod running the argv, or ``python`` with the script, module or source."""
    if spec.command is not None:
        command = [escape(a) for a in spec.command]
    else:
        command = [config.python, *entry_argv(spec, ctx)]
    volumes, mounts = make_volumes(ctx, config)
    container = make_container(CONTAINER, ctx, command, make_env(base_env(ctx, spec)), mounts)
    template = make_pod_template(ctx, config, container, volumes)
    return Manifests(make_indexed_job(ctx, config, template, 1))


def make_manifests(
    spec: JobSpec, ctx: AttemptContext, config: ClusterConfig, trainjob: bool = False
) -> Manifests:
    """The manifests of one attempt of ``spec``.

    ``trainjob``: the TrainJob CRD is installed; used for torch jobs that are not elastic
    (Trainer v2 has no ``MIN:MAX`` node counts).
    """
    if spec.kind is JobKind.notebook:
        return make_notebook_job(spec, ctx, config)
    if spec.kind is JobKind.train and spec.framework is Framework.torch:
        elastic = (spec.resources.min_nodes or spec.resources.nodes) < spec.resources.nodes
        if trainjob and not elastic:
            return make_trainjob(spec, ctx, config)
        return make_torch_job(spec, ctx, config)
    if spec.kind is JobKind.train and spec.framework is Framework.tensorflow:
        return make_tf_job(spec, ctx, config)
    return make_command_job(spec, ctx, config)
