"""The z2jh deployment as shipped: values, hub config, PVCs, RBAC and images fit together.

- ``spawner_config/kubernetes/values.yaml``, merged over z2jh 4.4.0's defaults as Helm does,
  is valid against z2jh's own values schema (vendored in ``tests/schemas/z2jh``);
- ``jupyterhub_config.py``, loaded with the environment those values give the hub pod,
  enables the Kubernetes backend with the claims, paths, uid and accounts of the values, the
  PVC manifest and the RBAC;
- one homes volume: users' servers, the hub pod and job pods name the same folder of it for
  every user (KubeSpawner's expansion, the service's home template, the backend's subPath), so
  that a ``script`` or ``notebook`` job with a relative ``cwd`` passes the service's checks in
  the hub pod and its pods find the files at the plan's paths;
- the RBAC binds z2jh's ``hub`` service account and grants every request the backend makes
  (recorded from a run of each kind of job against the fake API server of ``k8s_fake.py``);
- every Dockerfile is hadolint-clean, runs as the one uid 1000 (gid 100), and installs aicloud
  from a wheel built from the build context, never from a package index.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path, PurePosixPath
from types import SimpleNamespace

import kubernetes_validate.utils
import pytest
import yaml
from jsonschema import Draft7Validator
from kubespawner import KubeSpawner
from traitlets.config import PyFileConfigLoader
from traitlets.config.loader import KVArgParseConfigLoader

from aicloud._version import __version__
from aicloud.app import AICloudApp
from aicloud.backends.base import Attempt
from aicloud.backends.kubernetes.backend import KubernetesBackend
from aicloud.backends.kubernetes.builders import LABEL_JOB, MANAGED_BY, expand_owner
from aicloud.errors import InvalidSpec
from aicloud.hub import SERVICE_NAME
from aicloud.launchers import LaunchContext, launcher_for
from aicloud.manager import JobManager
from aicloud.spec import JobSpec
from aicloud.store import JobStore, make_engine, migrate
from tests import k8s_schemas
from tests.k8s_fake import FakeKubernetes
from tests.k8s_pods import job_pods
from tests.k8s_schemas import KUBERNETES_VERSIONS, k8s_errors, validate_k8s_object
from tests.test_k8s_controller import make_backend, outcome_of, until

ROOT = Path(__file__).parent.parent
KUBE = ROOT / "spawner_config" / "kubernetes"
IMAGES = ROOT / "spawner_config" / "images"
Z2JH = Path(__file__).parent / "schemas" / "z2jh"
HADOLINT = str(Path(sys.executable).with_name("hadolint"))
DOCKERFILES = sorted([*IMAGES.glob("*.Dockerfile"), *IMAGES.glob("*/Dockerfile")])
NAMESPACE = "jupyterhub"


def load(path: Path) -> list[dict]:
    return [d for d in yaml.safe_load_all(path.read_text()) if d]


def values() -> dict:
    return yaml.safe_load((KUBE / "values.yaml").read_text())


def helm_merge(defaults: dict, overrides: dict) -> dict:
    """Helm's coalescing of a chart's values with the user's: maps merge, anything else is
    replaced, and a null removes the chart's key."""
    merged = dict(defaults)
    for key, value in overrides.items():
        if value is None:
            merged.pop(key, None)
        elif isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = helm_merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def z2jh_errors(user_values: dict) -> list[str]:
    schema = yaml.safe_load((Z2JH / "values.schema.json").read_text())
    defaults = yaml.safe_load((Z2JH / "values.yaml").read_text())
    merged = helm_merge(defaults, user_values)
    return [
        f"{list(e.absolute_path)}: {e.message}" for e in Draft7Validator(schema).iter_errors(merged)
    ]


def z2jh_hub_service_account(user_values: dict) -> str:
    """The name z2jh 4.4.0 gives the hub's service account (_helpers-names.tpl)."""
    name = (user_values.get("hub", {}).get("serviceAccount") or {}).get("name")
    if name:
        return name
    fullname = user_values.get("fullnameOverride", "")
    assert fullname == "", "with a fullname the account is <fullname>-hub"
    return "hub"


# -- the values --------------------------------------------------------------------------------


def installed_values() -> dict:
    """The values as the documented ``helm upgrade --install`` gives them: values.yaml plus
    the two ``--set-file`` of its first lines."""
    text = (KUBE / "values.yaml").read_text()
    set_files = re.findall(r"--set-file hub\.extraFiles\.([\w-]+)\.stringData=(\S+)", text)
    assert {name for name, _ in set_files} == set(values()["hub"]["extraFiles"])
    files = {name: {"stringData": (ROOT / path).read_text()} for name, path in set_files}
    return helm_merge(values(), {"hub": {"extraFiles": files}})


def test_values_are_valid_for_z2jh_and_the_schema_refuses_a_misspelt_key():
    assert z2jh_errors(installed_values()) == []
    # Without the --set-file the files have no content, which z2jh refuses.
    assert any("extraFiles" in e for e in z2jh_errors(values()))
    misspelt = helm_merge(installed_values(), {"hub": {"extraVolumeMount": []}})
    assert any("extraVolumeMount" in e for e in z2jh_errors(misspelt))
    assert "--version " + k8s_schemas.Z2JH_VERSION in (KUBE / "values.yaml").read_text()


def test_kubernetes_objects_inside_the_values_are_valid():
    hub = values()["hub"]
    for version in KUBERNETES_VERSIONS:
        for volume in hub["extraVolumes"]:
            errors = k8s_schemas.core_validator(version, "io.k8s.api.core.v1.Volume")
            assert list(errors.iter_errors(volume)) == []
        for mount in hub["extraVolumeMounts"]:
            errors = k8s_schemas.core_validator(version, "io.k8s.api.core.v1.VolumeMount")
            assert list(errors.iter_errors(mount)) == []
        name = "io.k8s.api.networking.v1.NetworkPolicyIngressRule"
        for rule in hub["networkPolicy"]["ingress"]:
            assert list(k8s_schemas.core_validator(version, name).iter_errors(rule)) == []


def hub_mount(name: str) -> dict:
    (mount,) = [m for m in values()["hub"]["extraVolumeMounts"] if m["name"] == name]
    return mount


def hub_claim_volume(claim: str) -> dict:
    (volume,) = [
        v
        for v in values()["hub"]["extraVolumes"]
        if v.get("persistentVolumeClaim", {}).get("claimName") == claim
    ]
    return volume


def test_the_runs_volume_is_mounted_in_the_hub_pod_at_the_services_runs_directory():
    hub = values()["hub"]
    pvcs = {d["metadata"]["name"]: d for d in load(KUBE / "aicloud-storage.yaml")}
    assert set(pvcs) == {"aicloud-runs", "aicloud-homes"}
    for pvc in pvcs.values():
        validate_k8s_object(pvc)
        assert pvc["metadata"]["namespace"] == NAMESPACE
        assert pvc["spec"]["accessModes"] == ["ReadWriteMany"]  # pods on several nodes
    assert (
        pvcs["aicloud-runs"]["spec"]["storageClassName"]
        == (pvcs["aicloud-homes"]["spec"]["storageClassName"])
    )
    claim = hub["extraEnv"]["AICLOUD_RUNS_CLAIM"]
    mount = hub_mount(hub_claim_volume(claim)["name"])
    assert claim in pvcs
    assert mount["mountPath"] == hub["extraEnv"]["AICLOUD_DATA_DIR"] + "/runs"


def test_the_homes_volume_is_every_users_home_and_the_hub_pod_sees_all_of_it():
    hub, storage = values()["hub"], values()["singleuser"]["storage"]
    env = hub["extraEnv"]
    (homes,) = [
        d for d in load(KUBE / "aicloud-storage.yaml") if d["metadata"]["name"] == "aicloud-homes"
    ]
    # Users' servers: their folder of it, at the home every image has.
    assert storage["type"] == "static"
    assert storage["static"] == {
        "pvcName": homes["metadata"]["name"],
        "subPath": "{unescaped_username}",
    }
    assert storage["homeMountPath"] == env["AICLOUD_HOME_PATH"] == "/home/jovyan"
    assert "dynamic" not in storage and "capacity" not in storage  # no claim-{username}
    # The hub pod: all of it, read-write (the service makes a new user's folder), where the
    # service's home template looks.
    assert env["AICLOUD_HOME_CLAIM"] == homes["metadata"]["name"]
    assert env["AICLOUD_HOME_SUBPATH"] == storage["static"]["subPath"]
    mount = hub_mount(hub_claim_volume(homes["metadata"]["name"])["name"])
    assert mount == {"name": mount["name"], "mountPath": env["AICLOUD_HOMES_DIR"]}
    assert env["AICLOUD_HOMES_DIR"] == "/home"
    # Under that mount lies the hub image's own home: the hub keeps its files elsewhere.
    assert not PurePosixPath(env["HOME"]).is_relative_to(env["AICLOUD_HOMES_DIR"])
    assert PurePosixPath(env["AICLOUD_DATA_DIR"]).is_relative_to(env["HOME"])  # hub.db's volume
    # The service's Jupyter root: an empty, read-only folder, no user's files.
    root = hub_mount("aicloud-root")
    (volume,) = [v for v in hub["extraVolumes"] if v["name"] == root["name"]]
    assert volume == {"name": root["name"], "emptyDir": {}}
    assert root["mountPath"] == env["AICLOUD_ROOT_DIR"] and root["readOnly"] is True
    # No recursive chown of every user's files when the hub pod starts.
    assert hub["podSecurityContext"]["fsGroupChangePolicy"] == "OnRootMismatch"


def test_one_uid_in_the_hub_user_and_job_pods():
    v = values()
    assert v["hub"]["containerSecurityContext"]["runAsUser"] == v["singleuser"]["uid"] == 1000
    assert v["hub"]["containerSecurityContext"]["runAsGroup"] == v["singleuser"]["fsGid"] == 100
    assert v["hub"]["podSecurityContext"]["fsGroup"] == 100
    assert v["hub"]["extraEnv"]["AICLOUD_UID"] == str(v["singleuser"]["uid"])
    assert v["hub"]["extraEnv"]["AICLOUD_GID"] == str(v["singleuser"]["fsGid"])


def test_job_pods_may_reach_the_service_port():
    rules = values()["hub"]["networkPolicy"]["ingress"]
    (rule,) = [r for r in rules if {"port": 10101} in r["ports"]]
    selectors = [peer["podSelector"]["matchLabels"] for peer in rule["from"]]
    assert {MANAGED_BY: "aicloud"} in selectors  # every job pod carries it
    assert {"hub.jupyter.org/network-access-hub": "true"} in selectors  # user servers


# -- the hub config ----------------------------------------------------------------------------


@pytest.fixture
def hub_config(monkeypatch, tmp_path):
    """jupyterhub_config.py loaded with the hub pod's environment (the values' extraEnv, and
    what Kubernetes and z2jh set); the catalog at its path in this checkout. The test keeps
    its own HOME."""
    for name, value in values()["hub"]["extraEnv"].items():
        if name != "HOME":
            monkeypatch.setenv(name, value)
    monkeypatch.setenv("POD_NAMESPACE", NAMESPACE)
    monkeypatch.setenv("KUBERNETES_SERVICE_HOST", "10.0.0.1")
    monkeypatch.setenv("KUBERNETES_SERVICE_PORT", "443")
    monkeypatch.setenv("AICLOUD_CATALOG", str(ROOT / "spawner_config" / "hardware.yaml"))
    monkeypatch.setenv("AICLOUD_DATA_DIR", str(tmp_path))
    return PyFileConfigLoader(str(KUBE / "jupyterhub_config.py")).load_config()


def service_of(config) -> dict:
    (service,) = [s for s in config.JupyterHub.services if s["name"] == SERVICE_NAME]
    return service


def service_config(config):
    """The traitlets config the service process gets from its command line."""
    command = service_of(config)["command"]
    assert command[1:3] == ["-m", "aicloud.hub.service"]
    return KVArgParseConfigLoader(command[3:]).load_config()


def test_the_service_runs_jobs_on_kubernetes_only(hub_config):
    app = AICloudApp(config=service_config(hub_config))
    assert app.backends == ["kubernetes"]  # nothing runs in the hub pod
    assert app.notebook_pool_size == 0


def test_the_kubernetes_backend_gets_the_claims_paths_uid_and_accounts_of_the_chart(hub_config):
    v = values()
    pvcs = {d["metadata"]["name"]: d for d in load(KUBE / "aicloud-storage.yaml")}
    rbac = load(KUBE / "aicloud-rbac.yaml")
    backend = KubernetesBackend(config=service_config(hub_config))
    assert {backend.namespace} == {NAMESPACE} == {p["metadata"]["namespace"] for p in pvcs.values()}
    assert backend.runs_claim == "aicloud-runs" and backend.runs_claim in pvcs
    assert backend.runs_subpath == ""  # the claim's root is the runs directory
    storage = v["singleuser"]["storage"]
    assert backend.workspace_claim == storage["static"]["pvcName"] == "aicloud-homes"
    assert backend.workspace_claim in pvcs
    assert backend.workspace_subpath == storage["static"]["subPath"]
    assert backend.workspace_path == storage["homeMountPath"]
    assert backend.default_uid == v["singleuser"]["uid"]
    assert backend.run_as_group == v["singleuser"]["fsGid"]
    (jobs_account,) = [d for d in rbac if d["kind"] == "ServiceAccount"]
    assert backend.service_account == jobs_account["metadata"]["name"]
    assert jobs_account["automountServiceAccountToken"] is False
    assert backend.catalog_path == str(ROOT / "spawner_config" / "hardware.yaml")
    assert (
        v["hub"]["extraEnv"]["AICLOUD_CATALOG"] == v["hub"]["extraFiles"]["hardware"]["mountPath"]
    )
    for image, flavour in ((backend.worker_image, "cpu"), (backend.worker_gpu_image, "cuda")):
        assert image == f"ghcr.io/aicloud/worker-{flavour}:{__version__}"
        assert (IMAGES / f"worker-{flavour}.Dockerfile").exists()
    # Job pods call the service back where user servers reach it.
    service_url = v["hub"]["extraEnv"]["AICLOUD_SERVICE_URL"] + f"/services/{SERVICE_NAME}/"
    assert backend.service_url == service_url
    assert hub_config.Spawner.environment["AICLOUD_HUB_SERVICE_URL"] == service_url
    # Jobs start in the owner's folder of the homes volume, as the hub pod mounts it; the
    # service's Jupyter root holds no user's files.
    env = v["hub"]["extraEnv"]
    config = service_config(hub_config)
    assert config.JobManager.home_dir_template == env["AICLOUD_HOMES_DIR"] + "/{username}"
    assert config.ServerApp.root_dir == env["AICLOUD_ROOT_DIR"]
    # In-cluster configuration: a hub-managed service inherits almost nothing of the hub's env.
    environment = service_of(hub_config)["environment"]
    assert environment["KUBERNETES_SERVICE_HOST"] == "10.0.0.1"
    assert environment["KUBERNETES_SERVICE_PORT"] == "443"
    # Its HOME (Jupyter's runtime files, with its token) is its data directory, not the image
    # user's /home/jovyan: that is a folder of the homes volume.
    assert environment["HOME"] == config.AICloudApp.data_dir


def kubespawner_expands(template: str, user: str) -> str:
    """``template`` as KubeSpawner 7.1 expands it for ``user``'s default server."""
    spawner = SimpleNamespace(
        name="",
        user=SimpleNamespace(name=user, id=7),
        slug_scheme=KubeSpawner.slug_scheme.default_value,
        _namespace_default=lambda: NAMESPACE,
    )
    return KubeSpawner._expand_user_properties(spawner, template)


USERS = ["alice", "alice.smith@example.org", "Alice.Smith@Example.org", "x" * 70, "a--b"]


@pytest.mark.parametrize("user", USERS)
def test_the_server_the_service_and_job_pods_name_one_folder_for_each_user(user, hub_config):
    """The folder a user's server mounts (KubeSpawner's expansion of the values' subPath) is
    the one the service checks files in (its home template, under the hub pod's mount) and the
    one job pods mount (the backend's subPath), for names whose slug is not the name too."""
    storage, env = values()["singleuser"]["storage"], values()["hub"]["extraEnv"]
    config = service_config(hub_config)
    server = kubespawner_expands(storage["static"]["subPath"], user)
    service = PurePosixPath(config.JobManager.home_dir_template.format(username=user))
    backend = KubernetesBackend(config=config)
    pods = expand_owner(backend.workspace_subpath, user)
    assert server == str(service.relative_to(env["AICLOUD_HOMES_DIR"])) == pods == user
    if user != "alice":  # KubeSpawner's {username} is its slug: another folder than the name
        assert kubespawner_expands("{username}", user) != user


# -- script and notebook jobs, end to end -----------------------------------------------------


def seen_in_pod(path: str, pod: dict, claims: dict[str, Path]) -> Path | None:
    """The file that ``path`` names inside a pod (its spec: volumes and the container's mounts),
    in the folders that stand for the claims here; None where no claim's mount holds it (the
    image's own files)."""
    (container,) = pod["containers"]
    wanted = PurePosixPath(path)
    holding = [m for m in container["volumeMounts"] if wanted.is_relative_to(m["mountPath"])]
    if not holding:
        return None
    mount = max(holding, key=lambda m: len(PurePosixPath(m["mountPath"]).parts))
    (volume,) = [v for v in pod["volumes"] if v["name"] == mount["name"]]
    claim = volume.get("persistentVolumeClaim", {}).get("claimName")
    if claim is None:
        return None
    folder = claims[claim] / mount.get("subPath", "")
    return folder / wanted.relative_to(mount["mountPath"])


OWNER = "Alice.Smith@Example.org"  # a name that is not its own KubeSpawner slug
KERNEL_NOTEBOOK = json.dumps(
    {
        "cells": [],
        "metadata": {"kernelspec": {"name": "python3", "display_name": "Python 3"}},
        "nbformat": 4,
        "nbformat_minor": 5,
    }
)


async def test_script_and_notebook_jobs_pass_the_services_checks_and_run_on_the_owners_files(
    hub_config, tmp_path
):
    """With the hub config's settings, the service (in the hub pod, its paths under a temp
    prefix) accepts a script and a notebook job with a relative cwd, checking the owner's files
    on the homes volume; their pods find the script and notebook at the plan's paths (the
    pod's working directory under the owner's root) and at /home/jovyan."""
    env = values()["hub"]["extraEnv"]
    config = service_config(hub_config)
    hub_pod = tmp_path / "hub-pod"  # / of the hub pod
    # The hub pod's mounts: the homes volume at AICLOUD_HOMES_DIR, runs at the runs directory;
    # each folder stands for its claim.
    runs_dir = hub_pod / env["AICLOUD_DATA_DIR"].lstrip("/") / "runs"
    volumes = {
        env["AICLOUD_HOME_CLAIM"]: hub_pod / env["AICLOUD_HOMES_DIR"].lstrip("/"),
        env["AICLOUD_RUNS_CLAIM"]: runs_dir,
    }
    for folder in volumes.values():
        folder.mkdir(parents=True)
    # The owner's folder, as their server made it: /home/jovyan/work/{train.py,report.ipynb}.
    subpath = values()["singleuser"]["storage"]["static"]["subPath"]
    work = volumes[env["AICLOUD_HOME_CLAIM"]] / kubespawner_expands(subpath, OWNER) / "work"
    work.mkdir(parents=True)
    (work / "train.py").write_text("print('hi')\n")
    (work / "report.ipynb").write_text(KERNEL_NOTEBOOK)

    fake = FakeKubernetes().start()
    engine = make_engine(f"sqlite:///{tmp_path / 'aicloud.db'}")
    migrate(engine)
    backend = KubernetesBackend(config=config, kubeconfig=fake.kubeconfig(tmp_path / "kubeconfig"))
    manager = JobManager(
        config=config,
        backends={"kubernetes": backend},
        service_env={},
        store=JobStore(engine),
        root_dir=str(hub_pod / env["AICLOUD_ROOT_DIR"].lstrip("/")),
        runs_dir=str(runs_dir),
    )
    manager.home_dir_template = str(hub_pod) + config.JobManager.home_dir_template
    root = volumes[env["AICLOUD_HOME_CLAIM"]] / OWNER  # where the service sees their files
    try:
        script = JobSpec(backend="kubernetes", script="train.py", cwd="work")
        notebook = JobSpec(
            backend="kubernetes", kind="notebook", notebook="report.ipynb", cwd="work"
        )
        for spec in (script, notebook):
            assert manager.validate(spec, OWNER) == (root / "work").resolve()
        # The checks are real: a file that is not there, another user's folder.
        with pytest.raises(InvalidSpec, match="not found"):
            manager.validate(JobSpec(backend="kubernetes", script="gone.py", cwd="work"), OWNER)
        with pytest.raises(InvalidSpec, match="inside"):
            manager.validate(JobSpec(backend="kubernetes", script="t.py", cwd=f"../{OWNER}"), "bob")

        jobs = [await manager.submit(spec, OWNER) for spec in (script, notebook)]
        await manager.tick()
        for job in jobs:
            job = manager.store.get_job(job.id)
            assert job.status == "running", job.reason
            (primary,) = [
                made
                for made in fake.objects["jobs"].values()
                if made["metadata"]["labels"][LABEL_JOB] == job.id
            ]
            validate_k8s_object(primary)
            pod = primary["spec"]["template"]["spec"]
            (emulated,) = job_pods(primary)
            # The pod's working directory is the owner's work folder, through the mount at
            # the owner's root (the plan's path, as the service checked it).
            assert emulated.cwd == str(root.resolve() / "work")
            assert seen_in_pod(emulated.cwd, pod, volumes) == work
            run_dir = Path(job.run_dir)
            if job.kind == "notebook":
                entry = "report.ipynb"
                args = dict(a.split("=", 1) for a in emulated.argv if a.startswith("--"))
                path = args["--input"]
                assert seen_in_pod(args["--cwd"], pod, volumes) == work
                output = seen_in_pod(args["--output"], pod, volumes)
                assert output == runs_dir / run_dir.name / "outputs" / entry
            else:
                entry = "train.py"
                assert emulated.argv[1:] == [entry]  # relative to the working directory
                path = str(PurePosixPath(emulated.cwd) / entry)
            assert seen_in_pod(path, pod, volumes) == work / entry
            assert (work / entry).is_file()
            # Absolute paths in the user's own code: their home is at /home/jovyan too.
            assert (
                seen_in_pod(f"{env['AICLOUD_HOME_PATH']}/work/{entry}", pod, volumes)
                == work / entry
            )
            # Nothing of another user's folder, and only this job's run directory.
            assert (
                seen_in_pod(str(run_dir / "x"), pod, volumes)
                == volumes["aicloud-runs"] / run_dir.name / "x"
            )
            assert seen_in_pod(str(root.parent / "bob" / "f"), pod, volumes) is None
        await backend.close()
    finally:
        fake.stop()


# -- RBAC --------------------------------------------------------------------------------------


class RecordingKubernetes(FakeKubernetes):
    """The fake API server, noting every request: (method, path, query, body)."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.calls: list[tuple[str, str, dict, dict | None]] = []

    async def _note(self, request) -> None:
        body = await request.json() if request.can_read_body else None
        self.calls.append((request.method, request.path, dict(request.query), body))

    async def _collection(self, request):
        await self._note(request)
        return await super()._collection(request)

    async def _item(self, request):
        await self._note(request)
        return await super()._item(request)

    async def _log(self, request):
        await self._note(request)
        return await super()._log(request)

    async def _discovery(self, request):
        await self._note(request)
        return await super()._discovery(request)


VERBS = {("POST", False): "create", ("GET", True): "get", ("DELETE", True): "delete"}
VERBS |= {("PUT", True): "update", ("PATCH", True): "patch"}
PATH = re.compile(
    r"^/(?:api/v1|apis/(?P<group>[^/]+)/[^/]+)/namespaces/(?P<ns>[^/]+)/(?P<plural>[^/]+)"
    r"(?:/(?P<name>[^/]+)(?:/(?P<sub>[^/]+))?)?$"
)


def rbac_needs(calls) -> set[tuple[str, str, str]]:
    """(apiGroup, resource, verb) that each request needs, as the API server authorizes it."""
    needs = set()
    for method, path, query, body in calls:
        if path.rstrip("/") == "/apis":
            continue  # discovery: every authenticated account may (system:discovery)
        match = PATH.match(path)
        assert match, f"a request aicloud's RBAC cannot name: {method} {path}"
        group, plural = match["group"] or "", match["plural"]
        resource = f"{plural}/{match['sub']}" if match["sub"] else plural
        if method == "GET" and not match["name"]:
            verb = "watch" if query.get("watch") in ("true", "1", "True") else "list"
        else:
            verb = VERBS[(method, bool(match["name"]))]
        needs.add((group, resource, verb))
        # An ownerReference that blocks the owner's deletion needs update on its finalizers.
        for owner in (body or {}).get("metadata", {}).get("ownerReferences", []):
            if owner.get("blockOwnerDeletion"):
                owner_group = owner["apiVersion"].rpartition("/")[0]
                needs.add((owner_group, owner["kind"].lower() + "s/finalizers", "update"))
    return needs


def granted(role: dict) -> set[tuple[str, str, str]]:
    return {
        (group, resource, verb)
        for rule in role["rules"]
        for group in rule["apiGroups"]
        for resource in rule["resources"]
        for verb in rule["verbs"]
    }


TORCH = {"kind": "train", "framework": "torch", "script": "train.py"}
#: One of each kind of job, framework and object shape the backend makes (the names in
#: ``secret_env`` go to pods through the attempt's Secret).
SPECS = [
    JobSpec(**TORCH, resources={"nodes": 2}),  # a TrainJob where Trainer is installed
    JobSpec(**TORCH, resources={"nodes": 2, "min_nodes": 1}),  # elastic: Job + Service
    JobSpec(kind="train", framework="tensorflow", script="train.py", resources={"nodes": 2}),
    JobSpec(kind="notebook", notebook="report.ipynb", parameters={"n": 1}),
    JobSpec(command=["python", "-c", "print(1)"], env={"API_KEY": "k"}, secret_env=["API_KEY"]),
]
NOTEBOOK = '{"cells": [], "metadata": {}, "nbformat": 4, "nbformat_minor": 5}'


async def start_planned(backend, home: Path, spec: JobSpec, job_id: str) -> dict:
    """Plan ``spec`` with its launcher and start it, as the job manager does."""
    run_dir = home.parent / "runs" / job_id
    run_dir.mkdir(parents=True)
    env = {**spec.env, "AICLOUD_JOB_ID": job_id, "AICLOUD_RUN_DIR": str(run_dir)}
    context = LaunchContext(
        job_id=job_id,
        attempt=1,
        run_dir=run_dir,
        cwd=home,
        env=env,
        python=backend.python,
        network=backend.network(job_id, 1),
        cores=backend.cores(spec),
    )
    plan = launcher_for(spec, home).plan(spec, context)
    attempt = Attempt(job_id, 1, run_dir, plan, spec, "alice", {}, spec.timeout_seconds, root=home)
    return await backend.start(attempt)


async def backend_requests(tmp_path: Path) -> list:
    """Every request the backend makes for SPECS: create, follow, log, explain, cancel and a
    restarted service finding its attempts again."""
    home = tmp_path / "home"
    home.mkdir()
    (home / "train.py").write_text("print('hi')\n")
    (home / "report.ipynb").write_text(NOTEBOOK)
    fake = RecordingKubernetes(trainjob=True).start()
    try:
        backend = make_backend(fake, tmp_path)
        handles = [
            await start_planned(backend, home, spec, f"job-{number:012d}")
            for number, spec in enumerate(SPECS)
        ]
        assert {h["kind"] for h in handles} == {"Job", "TrainJob"}
        jobs = [h for h in handles if h["kind"] == "Job"]
        pods = [pod for h in jobs for pod in fake.pod_names(h["name"])]
        fake.event(pods[0], "FailedScheduling", "0/3 nodes are available: 3 Insufficient cpu.")
        await until(lambda: backend.explain(jobs[0]))
        for pod in pods:
            fake.run_pod(pod)
            fake.log(pod, "hello")
        (trainjob,) = [h for h in handles if h["kind"] == "TrainJob"]
        cancelled = [trainjob, jobs[-1]]
        for handle in cancelled:
            await backend.cancel(handle)
        for handle in [h for h in handles if h not in cancelled]:
            for pod in fake.pod_names(handle["name"]):
                fake.finish_pod(pod, 0)
            await outcome_of(backend, handle)
        await backend.close()
        again = make_backend(fake, tmp_path)
        for handle in handles:
            await again.poll(handle)
        await again.close()
        return fake.calls
    finally:
        fake.stop()


async def test_rbac_grants_every_request_the_backend_makes_to_z2jhs_hub(tmp_path):
    documents = load(KUBE / "aicloud-rbac.yaml")
    for document in documents:
        validate_k8s_object(document)
        assert document["metadata"]["namespace"] == NAMESPACE
    (role,) = [d for d in documents if d["kind"] == "Role"]
    (binding,) = [d for d in documents if d["kind"] == "RoleBinding"]
    assert binding["roleRef"] == {
        "apiGroup": "rbac.authorization.k8s.io",
        "kind": "Role",
        "name": role["metadata"]["name"],
    }
    assert binding["subjects"] == [
        {
            "kind": "ServiceAccount",
            "name": z2jh_hub_service_account(values()),
            "namespace": NAMESPACE,
        }
    ]
    assert z2jh_hub_service_account(values()) == "hub"
    needs = rbac_needs(await backend_requests(tmp_path))
    kinds_made = {resource for _group, resource, verb in needs if verb == "create"}
    assert {"jobs", "services", "secrets", "trainjobs"} <= kinds_made  # SPECS made them all
    assert needs - granted(role) == set(), "the backend makes requests the Role refuses"
    assert granted(role) - needs == set(), "the Role grants what the backend never asks"


def test_rbac_needs_names_watches_subresources_and_owner_finalizers():
    owned = {"metadata": {"ownerReferences": [{"apiVersion": "batch/v1", "kind": "Job",
                                               "blockOwnerDeletion": True}]}}  # fmt: skip
    calls = [
        ("GET", "/apis/batch/v1/namespaces/ns/jobs", {"watch": "true"}, None),
        ("GET", "/api/v1/namespaces/ns/pods/p-0/log", {"follow": "true"}, None),
        ("POST", "/api/v1/namespaces/ns/services", {}, owned),
        ("GET", "/apis", {}, None),
    ]
    assert rbac_needs(calls) == {
        ("batch", "jobs", "watch"),
        ("", "pods/log", "get"),
        ("", "services", "create"),
        ("batch", "jobs/finalizers", "update"),
    }


# -- images ------------------------------------------------------------------------------------


def stages(dockerfile: Path) -> list[str]:
    """The Dockerfile's stages, each as its text from its FROM line."""
    text = dockerfile.read_text()
    starts = [m.start() for m in re.finditer(r"^FROM ", text, re.MULTILINE)]
    return [text[a:b] for a, b in zip(starts, [*starts[1:], len(text)], strict=True)]


def test_there_is_a_hub_image_and_the_values_name_images_built_here():
    names = {str(p.relative_to(IMAGES)) for p in DOCKERFILES}
    assert "hub/Dockerfile" in names and len(names) == 5
    v = values()
    assert v["hub"]["image"] == {"name": "ghcr.io/aicloud/hub", "tag": __version__}
    assert v["singleuser"]["image"] == {
        "name": "ghcr.io/aicloud/singleuser-cpu",
        "tag": __version__,
    }
    hub_base = re.search(r"^FROM (\S+)$", stages(IMAGES / "hub" / "Dockerfile")[-1], re.M)[1]
    assert hub_base == f"quay.io/jupyterhub/k8s-hub:{k8s_schemas.Z2JH_VERSION}"


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: str(p.relative_to(IMAGES)))
def test_dockerfile_is_hadolint_clean(dockerfile):
    result = subprocess.run(
        [HADOLINT, "--no-color", "--failure-threshold", "style", str(dockerfile)],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: str(p.relative_to(IMAGES)))
def test_dockerfile_runs_as_the_one_uid(dockerfile):
    final = stages(dockerfile)[-1]
    users = re.findall(r"^USER (\S+)$", final, re.MULTILINE)
    assert users and users[-1] == "1000:100"
    assert set(users) <= {"0", "1000:100"}
    for useradd in re.findall(r"^RUN .*?useradd[^\n]*|^ && useradd[^\n]*", final, re.M):
        assert "--uid 1000" in useradd and "--gid 100" in useradd
    if "useradd" not in final:
        assert "usermod --gid 100 jovyan" in final  # the base image's jovyan is 1000 already


def wheel_sources() -> set[str]:
    """The top-level paths of this repository that the wheel is built from (pyproject.toml)."""
    import tomllib

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    wheel = project["tool"]["hatch"]["build"]["targets"]["wheel"]
    paths = [*wheel["packages"], *wheel["shared-data"], project["project"]["readme"]]
    paths.append(
        project["tool"]["hatch"]["build"]["hooks"]["jupyter-builder"]["build-kwargs"]["path"]
    )
    return {Path(p).parts[0] for p in paths} | {"pyproject.toml"}


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: str(p.relative_to(IMAGES)))
def test_dockerfile_installs_aicloud_built_from_the_build_context(dockerfile):
    wheel_stage, *_, final = stages(dockerfile)
    assert wheel_stage.startswith("FROM python:") and " AS wheel\n" in wheel_stage
    copied = {
        source.rstrip("/")
        for line in re.findall(r"^COPY (?!--from)(.+)$", wheel_stage, re.M)
        for source in line.split()[:-1]
    }
    assert wheel_sources() <= copied
    assert re.search(r"pip wheel .*--no-deps --wheel-dir /wheels \.$", wheel_stage, re.M)
    assert "COPY --from=wheel /wheels/ /tmp/wheels/" in final
    wheel = "/tmp/wheels/jupyter_aicloud-${AICLOUD_VERSION}-py3-none-any.whl"
    assert wheel in final
    assert not re.search(r"jupyter[-_]aicloud(\[[^\]]*\])?==", dockerfile.read_text())
    args = dict(re.findall(r"^ARG (\w+)=(\S+)$", final, re.M))
    assert args["AICLOUD_VERSION"] == __version__


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: str(p.relative_to(IMAGES)))
def test_build_context_keeps_out_everything_but_the_sources(dockerfile):
    ignore = dockerfile.with_name(dockerfile.name + ".dockerignore").read_text().splitlines()
    rules = [line for line in ignore if line and not line.startswith("#")]
    assert rules[0] == "*"  # an allow-list: no .venv, no secrets, no node_modules
    allowed = {rule[1:].rstrip("/") for rule in rules if rule.startswith("!")}
    copied = set(re.findall(r"^COPY (?!--from)(\S+)", dockerfile.read_text(), re.M))
    assert {c.rstrip("/") for c in copied} <= allowed | {"pyproject.toml"}
    for stale in ("extension/aicloud/labextension/", "labextension/node_modules/"):
        assert stale in rules  # the sidebar is rebuilt, never a checkout's old build


# -- Kubernetes versions -----------------------------------------------------------------------


def test_validated_versions_lie_in_z2jhs_range_up_to_the_newest_known():
    z2jh_oldest = tuple(
        int(n) for n in re.match(r">=(\d+)\.(\d+)", k8s_schemas.Z2JH_KUBE_VERSION).groups()
    )
    assert z2jh_oldest <= k8s_schemas.OLDEST
    newest = kubernetes_validate.utils.all_versions()[-1]
    assert KUBERNETES_VERSIONS[-1] == kubernetes_validate.utils.major_minor(newest)
    assert KUBERNETES_VERSIONS[0] == "{}.{}".format(*k8s_schemas.OLDEST)
    assert len(KUBERNETES_VERSIONS) == k8s_schemas.NEWEST[1] - k8s_schemas.OLDEST[1] + 1


def test_the_oldest_version_is_the_first_that_keeps_a_jobs_success_policy():
    job = {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": "elastic"},
        "spec": {
            "completionMode": "Indexed",
            "completions": 2,
            "successPolicy": {"rules": [{"succeededIndexes": "0"}]},
            "template": {"spec": {"restartPolicy": "Never", "containers": [{"name": "w"}]}},
        },
    }
    validate_k8s_object(job)
    assert any("successPolicy" in e for e in k8s_errors(job, "1.29"))


def test_validation_refuses_misspelt_fields_of_core_objects_and_crds():
    container = {"name": "w", "image": "x:1", "imagePullPolice": "Always"}
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"}}
    pod["spec"] = {"containers": [container]}
    trainjob = {"apiVersion": "trainer.kubeflow.org/v1alpha1", "kind": "TrainJob"}
    trainjob |= {"metadata": {"name": "t"}, "spec": {"runtimeRef": {"name": "torch-distributed"}}}
    service = {"apiVersion": "serving.kserve.io/v1beta1", "kind": "InferenceService"}
    predictor = {"containers": [{"name": "kserve-container", "image": "x:1"}]}
    service |= {"metadata": {"name": "m"}, "spec": {"predictor": predictor}}
    validate_k8s_object(trainjob)
    validate_k8s_object(service)
    bad_trainjob = {**trainjob, "spec": {**trainjob["spec"], "numNodes": 2}}  # under trainer:
    bad_service = {**service, "metadata": {"name": "m", "label": {}}}
    for bad, field in (
        (pod, "imagePullPolice"),
        (bad_trainjob, "numNodes"),
        (bad_service, "label"),
    ):
        with pytest.raises(AssertionError, match=field):
            validate_k8s_object(bad)
    with pytest.raises(AssertionError, match="no schema"):
        validate_k8s_object({"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {}})
