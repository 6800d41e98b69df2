"""Pure builders: a launch plan to Kubernetes manifests (plain dicts), no I/O.

Launchers say what runs (:class:`~aicloud.launchers.plan.LaunchPlan`: roles of nodes, each
node's command and environment, ports, staged files); this module only places it and knows no
framework. One attempt is one primary object, an Indexed ``Job`` of one pod per node (or a
Kubeflow Trainer v2 ``TrainJob`` where the plan names a runtime and the CRD is installed),
plus dependents created after it with an owner reference to it (a headless ``Service`` that
names the pods of several nodes, a ``Service`` in front of a serving role, a ``ConfigMap`` of
the staged files, a ``Secret`` of the secret variables), so that deleting the primary with
``propagationPolicy=Foreground`` removes everything.

What differs between nodes (:data:`~aicloud.launchers.plan.INDEX`) becomes
``$(AICLOUD_NODE_RANK)``, the pod's completion index; peers are found by the names of
:class:`ClusterNetwork`. Multi-host TPU slices are Indexed Jobs of one pod per host with the
GKE topology selectors of :mod:`~aicloud.backends.kubernetes.shapes`.

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

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from functools import cache
from pathlib import PurePosixPath
from typing import Any

from aicloud.backends.kubernetes.shapes import PodShape
from aicloud.launchers.plan import INDEX, LaunchPlan, PerNode, Role, Text, per_node

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
NODE_RANK = "AICLOUD_NODE_RANK"
NODE_INDEX = per_node(INDEX)


@dataclass(frozen=True)
class ClusterConfig:
    """What the operator decides for every job pod (the backend's traits).

    ``runs_claim`` holds the service's runs directory (``runs_path`` in the service, at
    ``runs_subpath`` inside the claim); a pod mounts only its attempt's run directory of it.
    ``workspace_claim`` and ``workspace_subpath`` name the owner's home, mounted at
    ``workspace_path`` (where the owner's notebooks see it) and, where the service sees the
    owner's files at another path (the attempt's ``root``: ``/home/alice`` on a homes volume
    the hub pod mounts at ``/home``), there too, so that both the plan's paths (the pod's
    ``workingDir``, the script's path) and absolute paths in user code work. All three may
    use ``{username}`` (KubeSpawner's safe slug of the owner's name, as in z2jh's
    ``claim-{username}``), ``{escaped_username}`` (KubeSpawner's legacy escaping) or
    ``{unescaped_username}`` (the hub's name itself). Pods run as ``owner_uids[owner]``, else
    ``default_uid`` (None: an owner not in ``owner_uids`` cannot run jobs), with group and
    ``fsGroup`` ``run_as_group``.
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
    #: The ports of plans' roles by name (the same on every pod).
    ports: Mapping[str, int] = field(
        default_factory=lambda: {"rendezvous": 29400, "tf": 2222, "http": 8080}
    )
    #: The installed ClusterTrainingRuntime of each runtime a plan may name.
    runtimes: Mapping[str, str] = field(default_factory=dict)
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
    #: The owner's root directory as the service sees it (where it resolved ``working_dir``
    #: and the plan's files); the owner's home is mounted there too (see ClusterConfig).
    root: str | None = None

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


def template(value: Text) -> str:
    """``value`` for a pod: literal parts escaped, the node's index as ``$(AICLOUD_NODE_RANK)``
    (the pod's completion index; see :func:`make_env`)."""
    if not isinstance(value, PerNode):
        return escape(value)
    return "".join(f"$({NODE_RANK})" if p is INDEX else escape(p) for p in value.parts)


def uses_index(values: Iterable[Text]) -> bool:
    """Whether any of ``values`` has the node's index inside other text."""
    return any(isinstance(v, PerNode) and v != NODE_INDEX for v in values)


def make_env(
    values: Mapping[str, Text],
    secret: str | None = None,
    secret_names: frozenset[str] = frozenset(),
    index_variable: bool = False,
) -> list[dict[str, Any]]:
    """A role's environment: a value that is the node's index alone comes from the pod's
    completion index, ``secret_names`` from the Secret ``secret``, the rest as
    :func:`template` writes it, after the index variable that they (or, with
    ``index_variable``, the command) refer to."""
    entries: list[dict[str, Any]] = []
    composite = index_variable or uses_index(values.values())
    if composite:
        entries.append(index_env(NODE_RANK))
    for name, value in values.items():
        if value == NODE_INDEX:
            if not (composite and name == NODE_RANK):
                entries.append(index_env(name))
        elif secret and name in secret_names:
            ref = {"secretKeyRef": {"name": secret, "key": name}}
            entries.append({"name": name, "valueFrom": ref})
        else:
            entries.append({"name": name, "value": template(value)})
    return entries


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
    """``template`` with ``{username}`` (KubeSpawner's safe slug, as in ``claim-{username}``),
    ``{escaped_username}`` (its legacy ``escape`` scheme) and ``{unescaped_username}`` (the
    name itself, as KubeSpawner fills it in: one path component, never ``.`` or ``..``) of
    the owner filled in."""
    if "{" not in template:
        return template
    if not owner:
        raise OwnerError(f"{template!r} names the job's owner, and this attempt has none")
    if "unescaped_username" in template and (owner in (".", "..") or "/" in owner or "\0" in owner):
        raise OwnerError(f"{owner!r} cannot name a folder ({template!r})")
    safe_slug, escape_slug = _slugs()
    try:
        return template.format(
            username=safe_slug(owner, max_length=48),
            escaped_username=escape_slug(owner),
            unescaped_username=owner,
        )
    except (KeyError, IndexError, ValueError) as e:
        raise OwnerError(
            f"{template!r}: only {{username}}, {{escaped_username}} and {{unescaped_username}} "
            f"can be filled in ({e})"
        ) from None


def check_owner(owner: str | None, config: ClusterConfig) -> None:
    """Raise :class:`OwnerError` if ``owner``'s pods could not be built (no uid, a template
    that needs an owner); for the backend's ``validate``, before a job is stored."""
    owner_uid(owner, config)
    expand_owner(config.workspace_claim or "", owner)
    expand_owner(config.workspace_subpath, owner)
    expand_owner(config.workspace_path, owner)


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


def workspace_mount_paths(ctx: AttemptContext, config: ClusterConfig) -> list[str]:
    """Where the owner's home is mounted: ``workspace_path``, then the attempt's ``root``
    where it is another place, neither inside nor around the first (there, the first mount
    already shows the service's paths; a second would hide or be hidden by it)."""
    first = expand_owner(config.workspace_path, ctx.owner)
    paths = [first]
    if ctx.root is not None:
        root, home = PurePosixPath(ctx.root), PurePosixPath(first)
        if not root.is_absolute() or ".." in root.parts:
            raise OwnerError(f"the owner's root {ctx.root!r} is not an absolute path")
        if root != home and root not in home.parents and home not in root.parents:
            paths.append(str(root))
    return paths


def make_volumes(
    ctx: AttemptContext, config: ClusterConfig
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The pods' volumes and the container's mounts: the attempt's run directory, the owner's
    home (at ``workspace_path`` and at the owner's root as the service sees it), shm. Nothing
    else of the runs claim, and no other user's home."""
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
        subpath = expand_owner(config.workspace_subpath, ctx.owner).strip("/")
        if ".." in PurePosixPath(subpath).parts:
            raise OwnerError(f"workspace_subpath {subpath!r} must not contain '..'")
        for path in workspace_mount_paths(ctx, config):
            mount = {"name": "workspace", "mountPath": path}
            if subpath:
                mount["subPath"] = subpath
            mounts.append(mount)
    if config.shm_size:
        shm = {"medium": "Memory", "sizeLimit": config.shm_size}
        volumes.append({"name": "dshm", "emptyDir": shm})
        mounts.append({"name": "dshm", "mountPath": "/dev/shm"})
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
    prefix: str | None = None,
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
    if prefix:
        metadata["annotations"] = {ANNOTATION_RANK_PREFIX: prefix}
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


class PlacementError(ValueError):
    """A plan that has no Kubernetes form (a helper process that must share a machine)."""


class ClusterNetwork:
    """Where an attempt's pods find each other: ``<name>-<index>.<name>``, the names the
    headless Service gives the pods of the Indexed Job ``<name>``; fixed ports by name."""

    shared_host = False
    bind_host = "0.0.0.0"

    def __init__(self, name: str, namespace: str, ports: Mapping[str, int]):
        self.name, self.namespace, self.ports = name, namespace, ports

    def host(self, role: str, index: int) -> str:
        """Pod ``index``'s stable name (namespace-relative)."""
        return f"{self.name}-{index}.{self.name}"

    def port(self, role: str, name: str, index: int = 0) -> int:
        """The port called ``name`` (the same on every pod)."""
        return self.ports[name]

    def url(self, role: str, port: int) -> str:
        """The attempt's Service, from anywhere in the cluster."""
        return f"http://{self.name}.{self.namespace}.svc:{port}"


def make_service(
    ctx: AttemptContext, config: ClusterConfig, ports: Mapping[str, int], headless: bool
) -> dict[str, Any]:
    """The Service of an attempt's pods.

    Headless, it gives each pod the name ``<job>-<index>.<service>``; ``publishNotReadyAddresses``
    makes the names resolve before the pods are ready, which is when rendezvous needs them.
    Otherwise it is the one address of a serving pod.
    """
    labels = make_labels(ctx.job_id, ctx.attempt)
    spec: dict[str, Any] = {
        "selector": labels,
        "ports": [
            {"name": name, "port": port, "targetPort": port, "protocol": "TCP"}
            for name, port in ports.items()
        ],
    }
    if headless:
        spec.update(clusterIP="None", publishNotReadyAddresses=True)
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": ctx.name, "namespace": config.namespace, "labels": labels},
        "spec": spec,
    }


def make_files_configmap(
    plan: LaunchPlan, ctx: AttemptContext, config: ClusterConfig
) -> tuple[dict[str, Any], list[dict[str, Any]], list[dict[str, Any]]]:
    """The plan's staged files as a ConfigMap, its volume, and a mount per file at its path
    in the run directory."""
    name = f"{ctx.name}-files"
    keys = {relative: f"file-{i}" for i, relative in enumerate(sorted(plan.files))}
    configmap = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {
            "name": name,
            "namespace": config.namespace,
            "labels": make_labels(ctx.job_id, ctx.attempt),
        },
        "data": {keys[relative]: plan.files[relative] for relative in keys},
    }
    items = [{"key": key, "path": key} for key in keys.values()]
    volume = {"name": "files", "configMap": {"name": name, "items": items}}
    mounts = [
        {
            "name": "files",
            "mountPath": str(PurePosixPath(ctx.run_dir) / relative),
            "subPath": key,
            "readOnly": True,
        }
        for relative, key in keys.items()
    ]
    return configmap, [volume], mounts


def make_secret(
    ctx: AttemptContext, config: ClusterConfig, values: Mapping[str, str]
) -> dict[str, Any]:
    """The attempt's secret variables (a job token, the user's secrets), for its pods only."""
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {
            "name": f"{ctx.name}-env",
            "namespace": config.namespace,
            "labels": make_labels(ctx.job_id, ctx.attempt),
        },
        "type": "Opaque",
        "stringData": dict(values),
    }


def prefix_annotation(prefix: Text) -> str | None:
    """The log-line prefix of a role's pods for the log reader (``{index}``: the pod's)."""
    if not prefix:
        return None
    if isinstance(prefix, PerNode):
        return "".join("{index}" if p is INDEX else p for p in prefix.parts)
    return prefix


def only_worker(plan: LaunchPlan) -> Role:
    """The one role a Kubernetes attempt places (helpers such as stores run beside it)."""
    if any(role.service for role in plan.roles) or len(plan.roles) != 1:
        names = ", ".join(role.name for role in plan.roles)
        raise PlacementError(f"a plan of roles {names} runs on one machine only")
    return plan.roles[0]


def make_readiness_probe(role: Role) -> dict[str, Any] | None:
    """An HTTP readiness probe on the port the role serves."""
    if role.serves is None or role.ready_path is None:
        return None
    return {
        "httpGet": {"path": role.ready_path, "port": role.ports[role.serves]},
        "periodSeconds": 2,
        "failureThreshold": 3,
    }


def place(
    plan: LaunchPlan,
    ctx: AttemptContext,
    config: ClusterConfig,
    trainjob: bool = False,
    secret_names: frozenset[str] = frozenset(),
) -> Manifests:
    """The objects that run ``plan``: its role as an Indexed Job of one pod per node (or a
    TrainJob where its runtime is installed and the plan allows it), a headless Service for
    several nodes, a Service for a serving role, a ConfigMap of staged files, and a Secret
    of the variables in ``secret_names``."""
    role = only_worker(plan)
    secrets = {name: role.env[name] for name in secret_names if isinstance(role.env.get(name), str)}
    secret = make_secret(ctx, config, secrets) if secrets else None
    secret_name = secret["metadata"]["name"] if secret else None
    volumes, mounts = make_volumes(ctx, config)
    dependents: list[dict[str, Any]] = []
    if plan.files:
        configmap, file_volumes, file_mounts = make_files_configmap(plan, ctx, config)
        volumes, mounts = volumes + file_volumes, mounts + file_mounts
        dependents.append(configmap)
    if secret:
        dependents.append(secret)
    if trainjob and plan.runtime is not None:
        env = {k: v for k, v in role.env.items() if k not in plan.runtime.provides}
        env_entries = make_env(env, secret_name, frozenset(secrets), uses_index(role.argv))
        primary = make_trainjob(plan, role, ctx, config, env_entries, volumes, mounts)
        return Manifests(primary, dependents)
    env_entries = make_env(role.env, secret_name, frozenset(secrets), uses_index(role.argv))
    ports = [
        {"name": name, "containerPort": port, "protocol": "TCP"}
        for name, port in role.ports.items()
    ]
    command = [template(a) for a in role.argv]
    container = make_container(CONTAINER, ctx, command, env_entries, mounts, ports)
    container["workingDir"] = str(plan.cwd)
    probe = make_readiness_probe(role)
    if probe:
        container["readinessProbe"] = probe
    several = role.nodes > 1
    pod = make_pod_template(
        ctx,
        config,
        container,
        volumes,
        subdomain=ctx.name if several else None,
        prefix=prefix_annotation(role.prefix),
    )
    job = make_indexed_job(
        ctx,
        config,
        pod,
        role.nodes,
        backoff_limit=role.node_restarts,
        leader_decides=plan.min_success is not None,
    )
    if several:
        dependents.insert(0, make_service(ctx, config, role.ports, headless=True))
    elif role.serves is not None:
        served = {role.serves: role.ports[role.serves]}
        dependents.insert(0, make_service(ctx, config, served, headless=False))
    return Manifests(job, dependents)


def in_directory(directory: str, argv: list[str]) -> list[str]:
    """``argv`` run from ``directory`` where the object has no working directory of its own
    (POSIX ``sh``, in every image)."""
    return ["sh", "-c", escape('cd "$0" && exec "$@"'), escape(directory), *argv]


def make_trainjob(
    plan: LaunchPlan,
    role: Role,
    ctx: AttemptContext,
    config: ClusterConfig,
    env: list[dict[str, Any]],
    volumes: list[dict[str, Any]],
    mounts: list[dict[str, Any]],
) -> dict[str, Any]:
    """A Kubeflow Trainer v2 TrainJob on the plan's runtime (``torch-distributed``).

    Trainer sets the variables its runtime provides and the headless Service; placement,
    volumes and our labels go in through ``runtimePatches``. A TrainJob has no working
    directory: the command changes to the plan's first.
    """
    assert plan.runtime is not None
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
        "command": in_directory(str(plan.cwd), [template(a) for a in role.argv]),
        "env": env,
        "numNodes": role.nodes,
        "numProcPerNode": role.procs_per_node,
        "resourcesPerNode": {
            "requests": dict(ctx.shape.requests),
            "limits": dict(ctx.shape.limits),
        },
    }
    body: dict[str, Any] = {
        "runtimeRef": {"name": config.runtimes.get(plan.runtime.name, plan.runtime.name)},
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
    return {
        "apiVersion": TRAINJOB_API,
        "kind": "TrainJob",
        "metadata": {"name": ctx.name, "namespace": config.namespace, "labels": metadata_labels},
        "spec": body,
    }
