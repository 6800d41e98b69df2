"""The ``kubernetes`` backend: each attempt is an Indexed Job (or a TrainJob) on a cluster.

Enable it beside the local one::

    c.AICloudApp.backends = ["local", "kubernetes"]
    c.KubernetesBackend.namespace = "aicloud-jobs"
    c.KubernetesBackend.catalog_path = "/etc/aicloud/hardware.yaml"
    c.KubernetesBackend.runs_claim = "aicloud-runs"        # a ReadWriteMany PVC
    c.KubernetesBackend.workspace_claim = "aicloud-home"   # users' files, at the same paths

The job service keeps its contract: one attempt is one Job (named ``<job id>-a<attempt>``),
retried per ``max_retries`` by the service; Kubernetes places the pods, enforces
``timeout_seconds`` (``activeDeadlineSeconds``) and tells user-code exits from infrastructure
failures (``podFailurePolicy``). Pods get the job's own variables and the user's, never the
service's environment or its token.
"""

from __future__ import annotations

import asyncio
import dataclasses
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from traitlets import Dict, Enum, Float, Int, List, Unicode, default

from aicloud.backends.base import Attempt, AttemptExit, Backend
from aicloud.backends.kubernetes import builders
from aicloud.backends.kubernetes.explain import explain_pending
from aicloud.backends.kubernetes.shapes import (
    Images,
    check_image,
    check_quota,
    check_shape,
    pod_shape,
)
from aicloud.backends.kubernetes.status import attempt_exit, is_pending
from aicloud.catalog import Catalog, CatalogError, load_catalog
from aicloud.errors import InvalidSpec
from aicloud.spec import is_secret_env

LOG_NAME = "output.log"  # the attempt log that the job service's logs API reads
#: What a job's environment holds that belongs to the server's machine, not to a pod.
SERVER_ONLY = frozenset({"HOME", "USER", "LOGNAME", "AICLOUD_URL"})
MISSING = "the kubernetes backend needs kubernetes_asyncio: pip install 'jupyter-aicloud[k8s]'"


class KubernetesBackend(Backend):
    """Runs attempts as Kubernetes Jobs (torch, TensorFlow, notebooks, commands) or TrainJobs."""

    name = "kubernetes"
    #: Every pod gets its plan's environment (secret variables through the attempt's Secret).
    passes_environment = True

    namespace = Unicode("default", config=True, help="Namespace the job pods run in.")
    kubeconfig = Unicode(
        "",
        config=True,
        help="Kubeconfig file; empty: the in-cluster service account when running in a pod, "
        "else ~/.kube/config.",
    )
    catalog_path = Unicode(
        "",
        config=True,
        help="The hardware catalog (the hub's hardware.yaml): profiles, GPU types, quotas. "
        "Empty: no profiles, and no accelerators.",
    )
    worker_image = Unicode(
        "ghcr.io/aicloud/worker-cpu:0.1.0",
        config=True,
        help="Image of CPU job pods when neither the job nor its profile names one.",
    )
    worker_gpu_image = Unicode(
        "ghcr.io/aicloud/worker-cuda:0.1.0",
        config=True,
        help="Image of accelerator job pods when neither the job nor its profile names one.",
    )
    max_nodes = Int(16, config=True, help="Most pods (nodes) one job may have.")
    service_account = Unicode(
        "", config=True, help="Service account of job pods (empty: the namespace's default)."
    )
    image_pull_secrets = List(Unicode(), config=True, help="Pull secrets of job pods.")
    runs_claim = Unicode(
        "",
        config=True,
        help="PersistentVolumeClaim (ReadWriteMany) mounted in job pods at the service's runs "
        "directory: checkpoints, metrics and notebook outputs. The service must see it at the "
        "same path.",
    )
    runs_subpath = Unicode(
        "",
        config=True,
        help="Where the runs directory lies inside runs_claim (empty: at its root). A pod "
        "mounts only its own job's run directory, never the whole volume.",
    )
    workspace_claim = Unicode(
        "",
        config=True,
        help="PersistentVolumeClaim with the owner's files, mounted in job pods at "
        "workspace_path. May contain {username} (or {escaped_username}) for a claim per user, "
        "as z2jh's 'claim-{username}'.",
    )
    workspace_subpath = Unicode(
        "",
        config=True,
        help="The owner's folder inside workspace_claim, e.g. 'home/{username}' on one shared "
        "claim (empty: the claim's root); '{unescaped_username}' is the hub's name itself, the "
        "folder that JobManager.home_dir_template's {username} names.",
    )
    workspace_path = Unicode(
        "",
        config=True,
        help="Where job pods mount workspace_claim, as the owner's notebooks see it (may "
        "contain {username}; default: the job's cwd). Where the service sees the owner's files "
        "elsewhere (JobManager.home_dir_template = '/home/{username}' on one shared homes "
        "claim), pods mount the same folder there too, so the job's paths resolve as the "
        "service checked them.",
    )
    owner_uids = Dict(
        value_trait=Int(),
        config=True,
        help="The uid each owner's pods run as, by hub user name (as in the users' images).",
    )
    default_uid = Int(
        1000,
        allow_none=True,
        config=True,
        help="The uid of owners not in owner_uids; None refuses their jobs. Never 0: pods "
        "run as non-root.",
    )
    run_as_group = Int(100, config=True, help="The gid (and fsGroup) of job pods.")
    queue_name = Unicode(
        "", config=True, help="Kueue LocalQueue for job pods (empty: no Kueue label)."
    )
    trainjob = Enum(
        ["auto", "never"],
        "auto",
        config=True,
        help="Use Kubeflow Trainer's TrainJob for torch jobs where the CRD is installed "
        "(auto), or always an Indexed Job plus a headless Service (never).",
    )
    trainjob_runtime = Unicode(
        "torch-distributed", config=True, help="ClusterTrainingRuntime of TrainJobs."
    )
    ttl_seconds = Int(
        86400, config=True, help="Seconds an ended Job is kept before Kubernetes deletes it."
    )
    explain_interval = Float(
        5.0, config=True, help="Most often, in seconds, a pending attempt's events are read."
    )
    python = Unicode("python", config=True, help="The interpreter of job pods' images.")
    service_url = Unicode(
        "",
        config=True,
        help="The job service's URL as pods reach it (z2jh: http://hub:10101/services/aicloud/),"
        " so that a job can call it back with its token; empty: pods get no AICLOUD_URL.",
    )
    log_drain_seconds = Float(
        10.0, config=True, help="Seconds to wait for the last log lines of an ended attempt."
    )

    @default("cancel_grace_seconds")
    def _default_grace(self) -> float:
        return 30.0

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self._controller = None
        self._api_client = None
        self._lock: asyncio.Lock | None = None
        self._catalog: Catalog | None = None

    # -- configuration -------------------------------------------------------------------------

    @property
    def catalog(self) -> Catalog:
        """The hardware catalog (read once)."""
        if self._catalog is None:
            if self.catalog_path:
                self._catalog = load_catalog(self.catalog_path)
            else:
                self._catalog = Catalog.model_construct(images={}, profiles=[], gpu_quota={})
        return self._catalog

    def cluster_config(self, run_dir: Path, cwd: Path) -> builders.ClusterConfig:
        """What every pod of an attempt gets from the operator's settings."""
        return builders.ClusterConfig(
            namespace=self.namespace,
            service_account=self.service_account or None,
            image_pull_secrets=tuple(self.image_pull_secrets),
            runs_claim=self.runs_claim or None,
            runs_path=str(run_dir.parent),
            runs_subpath=self.runs_subpath,
            workspace_claim=self.workspace_claim or None,
            workspace_subpath=self.workspace_subpath,
            workspace_path=self.workspace_path or str(cwd),
            owner_uids=dict(self.owner_uids),
            default_uid=self.default_uid,
            run_as_group=self.run_as_group,
            ttl_seconds=self.ttl_seconds,
            grace_seconds=int(self.cancel_grace_seconds),
            queue_name=self.queue_name or None,
            runtimes={"torch-distributed": self.trainjob_runtime},
        )

    def validate(self, spec, owner: str | None = None) -> None:
        """Refuse, before anything is created, what the cluster can never run."""
        if owner is not None:
            try:
                builders.check_owner(owner, self.cluster_config(Path(), Path()))
            except builders.OwnerError as e:
                raise InvalidSpec("owner", str(e)) from None
        check_shape(spec)
        for field, image in (
            ("worker_image", self.worker_image),
            ("worker_gpu_image", self.worker_gpu_image),
        ):
            check_image(image, f"KubernetesBackend.{field}")
        try:
            catalog = self.catalog
        except CatalogError as e:
            raise InvalidSpec("resources", f"the hardware catalog is not valid: {e}") from None
        check_quota(spec, self.shape(spec), catalog, self.max_nodes)

    # -- the cluster ---------------------------------------------------------------------------

    async def controller(self):
        """The controller, connected and with its caches filled (started on first use)."""
        if self._lock is None:
            self._lock = asyncio.Lock()
        async with self._lock:
            if self._controller is None:
                try:
                    from kubernetes_asyncio import client, config

                    from aicloud.backends.kubernetes.controller import Api, Controller
                except ImportError:
                    raise RuntimeError(MISSING) from None
                configuration = client.Configuration()
                if self.kubeconfig:
                    await config.load_kube_config(
                        config_file=self.kubeconfig, client_configuration=configuration
                    )
                elif os.environ.get("KUBERNETES_SERVICE_HOST"):
                    config.load_incluster_config(client_configuration=configuration)
                else:
                    await config.load_kube_config(client_configuration=configuration)
                api_client = client.ApiClient(configuration)
                try:
                    api = Api(api_client)
                    trainjob = self.trainjob == "auto" and await api.has_trainjob()
                    controller = Controller(api, self.namespace, trainjob, self.log)
                    controller.start()
                    await controller.synced()
                except BaseException:
                    await api_client.close()
                    raise
                self._api_client, self._controller = api_client, controller
        return self._controller

    async def close(self) -> None:
        """Stop watching and close the connection."""
        controller, self._controller = self._controller, None
        if controller is not None:
            await controller.stop()
        if self._api_client is not None:
            await self._api_client.close()
            self._api_client = None

    # -- the Backend interface -----------------------------------------------------------------

    def network(self, job_id: str, attempt: int) -> builders.ClusterNetwork:
        """Pods find each other by their names under the attempt's headless Service."""
        name = builders.object_name(job_id, attempt)
        return builders.ClusterNetwork(
            name, self.namespace, self.cluster_config(Path(), Path()).ports
        )

    def cores(self, spec) -> float | None:
        """The pods' CPU limit (None: not limited)."""
        return self.shape(spec).cpu

    def shape(self, spec):
        """Resources, placement and image of ``spec``'s pods."""
        return pod_shape(spec, self.catalog, Images(self.worker_image, self.worker_gpu_image))

    def pod_env(self, attempt: Attempt) -> dict[str, Any]:
        """The plan's role with the variables that only make sense on the server's machine
        left out (its login, its URL: ``service_url`` replaces it)."""
        (role,) = attempt.plan.roles
        env = {k: v for k, v in role.env.items() if k not in SERVER_ONLY}
        if self.service_url:
            env["AICLOUD_URL"] = self.service_url
        return env

    async def start(self, attempt: Attempt) -> dict[str, Any]:
        """Create the attempt's objects; the handle names its Job or TrainJob."""
        controller = await self.controller()
        run_dir, plan, spec = attempt.run_dir, attempt.plan, attempt.spec
        try:
            builders.only_worker(plan)
        except builders.PlacementError as e:
            raise InvalidSpec("kind", str(e)) from None
        role = dataclasses.replace(plan.roles[0], env=self.pod_env(attempt))
        plan = dataclasses.replace(plan, roles=(role,))
        secret_names = frozenset(n for n in role.env if is_secret_env(n, spec.secret_env))
        ctx = builders.AttemptContext(
            job_id=attempt.job_id,
            attempt=attempt.number,
            shape=self.shape(spec),
            working_dir=str(plan.cwd),
            run_dir=str(run_dir),
            timeout_seconds=attempt.timeout_seconds,
            owner=attempt.owner,
            root=str(attempt.root) if attempt.root is not None else None,
        )
        config = self.cluster_config(run_dir, plan.cwd)
        manifests = builders.place(plan, ctx, config, controller.trainjob, secret_names)
        primary = await controller.api.create_all(manifests)
        handle = {
            "kind": primary["kind"],
            "name": primary["metadata"]["name"],
            "namespace": primary["metadata"]["namespace"],
            "uid": primary["metadata"]["uid"],
            "job_id": attempt.job_id,
            "attempt": attempt.number,
            "log": str(run_dir / LOG_NAME),
        }
        if role.serves is not None:
            network = self.network(attempt.job_id, attempt.number)
            handle["url"] = network.url(role.name, role.ports[role.serves])
        controller.follow(handle, Path(handle["log"]))
        controller.note(handle["name"], f"created {primary['kind']} {handle['name']}")
        return {**handle, **attempt.launch}

    def prepare(self, job_id: str, attempt: int) -> dict[str, Any]:
        """The attempt's object name: the cluster refuses a second object of that name."""
        return {"name": builders.object_name(job_id, attempt), "namespace": self.namespace}

    async def recover(
        self, launch: dict[str, Any], run_dir: Path, attempt: int
    ) -> dict[str, Any] | None:
        """The attempt's Job or TrainJob if the cluster has it; None if it was never made."""
        if "name" not in launch:
            return None
        controller = await self.controller()
        kinds = ("TrainJob", "Job") if controller.trainjob else ("Job",)
        for kind in kinds:
            primary = await controller.api.get(kind, launch["namespace"], launch["name"])
            if primary is not None:
                handle = {
                    "kind": kind,
                    "name": launch["name"],
                    "namespace": launch["namespace"],
                    "uid": primary["metadata"]["uid"],
                    "job_id": run_dir.name,
                    "attempt": attempt,
                    "log": str(run_dir / LOG_NAME),
                }
                controller.follow(handle, Path(handle["log"]))
                return {**handle, **launch}
        return None

    async def _primary(self, controller, handle: dict[str, Any]) -> dict[str, Any] | None:
        primary = controller.primary(handle)
        if primary is None:  # not seen by the watch yet, or gone: ask
            primary = await controller.api.get(handle["kind"], handle["namespace"], handle["name"])
        if primary is not None and primary["metadata"].get("uid") != handle["uid"]:
            return None  # a different object of the same name
        return primary

    async def poll(self, handle: dict[str, Any]) -> AttemptExit | None:
        """None while the attempt runs; how it ended, once its last log lines are written."""
        controller = await self.controller()
        attempt = controller.follow(handle, Path(handle["log"]))
        primary = await self._primary(controller, handle)
        pods = controller.pods(handle)
        outcome = attempt_exit(primary, pods)
        if outcome is None:
            if is_pending(pods) and time.monotonic() - attempt.explained_at > self.explain_interval:
                await self._explain(controller, attempt, primary, pods)
            return None
        # The pod watch may lag the Job's: read the pods now, follow any that ended unseen.
        pods = await controller.refresh_pods(handle)
        await controller.finish(handle["name"], self.log_drain_seconds)
        return attempt_exit(primary, pods) or outcome

    async def _explain(self, controller, attempt, primary, pods) -> None:
        attempt.explained_at = time.monotonic()
        names = [attempt.handle["name"], *(p["metadata"]["name"] for p in pods[:4])]
        events = []
        for name in names:
            events += await controller.api.events(attempt.handle["namespace"], name)
        why = explain_pending(primary, pods, events)
        if why and why != attempt.explanation:
            controller.note(attempt.handle["name"], f"pending: {why}")
        attempt.explanation = why

    async def explain(self, handle: dict[str, Any]) -> str | None:
        """Why the attempt has not started yet (None once it runs)."""
        controller = await self.controller()
        attempt = controller.follow(handle, Path(handle["log"]))
        pods = controller.pods(handle)
        if not is_pending(pods):
            return None
        if time.monotonic() - attempt.explained_at > self.explain_interval:
            primary = await self._primary(controller, handle)
            await self._explain(controller, attempt, primary, pods)
        return attempt.explanation

    def watch(self, handle: dict[str, Any], wake: Callable[[], None]) -> None:
        """Wake the manager on the next change of the attempt's Job or TrainJob."""
        if self._controller is not None:
            self._controller.follow(handle, Path(handle["log"]))
            self._controller.add_wake(handle, wake)

    def unwatch_all(self) -> None:
        """Forget the wake-ups and stop watching (the manager is stopping)."""
        if self._controller is not None:
            self._controller.clear_wakes()

    async def cancel(self, handle: dict[str, Any]) -> None:
        """Delete the attempt's object with foreground propagation; return once it is gone."""
        controller = await self.controller()
        controller.follow(handle, Path(handle["log"]))
        grace = int(self.cancel_grace_seconds)
        await controller.api.delete(handle["kind"], handle["namespace"], handle["name"], grace)
        deadline = time.monotonic() + grace + 30
        while await self._primary(controller, handle) is not None:
            if time.monotonic() > deadline:
                self.log.warning("aicloud: %s is still being deleted", handle["name"])
                break
            await asyncio.sleep(0.2)
        await controller.finish(handle["name"], self.log_drain_seconds)

    def describe(self) -> dict[str, Any]:
        """Name, namespace and whether TrainJobs are used."""
        controller = self._controller
        return {
            "name": self.name,
            "available": True,
            "namespace": self.namespace,
            "trainjob": bool(controller and controller.trainjob),
        }
