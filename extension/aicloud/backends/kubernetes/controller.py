"""Talks to the cluster with kubernetes_asyncio: create, watch, read logs, delete.

Status comes from watches, not polling loops: one reflector per kind (Jobs, pods and, where
the CRD is installed, TrainJobs) lists the objects that aicloud manages, then follows a watch
from that list's ``resourceVersion`` and lists again when the watch expires (``410 Gone``).
The backend reads its answers from these caches and is woken when an attempt's object changes.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Callable
from typing import Any

from kubernetes_asyncio import client

from aicloud.backends.kubernetes.builders import (
    ANNOTATION_RANK_PREFIX,
    COMPLETION_INDEX,
    LABEL_ATTEMPT,
    LABEL_JOB,
    MANAGED_BY,
    TRAINJOB_API,
    Manifests,
    object_name,
    with_owner,
)
from aicloud.backends.kubernetes.logs import LogWriter, PodLogFollower, drain

SELECTOR = f"{MANAGED_BY}=aicloud"
TRAINJOB_GROUP, TRAINJOB_VERSION = TRAINJOB_API.split("/")
WATCH_SECONDS = 240


class KubeError(Exception):
    """An API call failed; ``status`` is the HTTP status (0: no answer)."""

    def __init__(self, status: int, message: str):
        super().__init__(f"Kubernetes API {status}: {message}")
        self.status = status
        self.message = message


class Api:
    """The few API calls aicloud makes, on plain dicts (the API's JSON)."""

    def __init__(self, api_client: client.ApiClient):
        self.api_client = api_client
        self.core = client.CoreV1Api(api_client)
        self.batch = client.BatchV1Api(api_client)
        self.custom = client.CustomObjectsApi(api_client)

    @staticmethod
    async def _json(call) -> dict[str, Any]:
        response = await call
        try:
            body = await response.read()
            if not 200 <= response.status <= 299:
                try:
                    message = json.loads(body).get("message", "")
                except ValueError:
                    message = body[:500].decode(errors="replace")
                raise KubeError(response.status, message)
            return json.loads(body)
        finally:
            response.release()

    def _call(self, kind: str, verb: str, namespace: str, *args, **kwargs):
        kwargs["_preload_content"] = False
        if kind == "TrainJob":
            verb = "get" if verb == "read" else verb
            method = getattr(self.custom, f"{verb}_namespaced_custom_object")
            return method(TRAINJOB_GROUP, TRAINJOB_VERSION, namespace, "trainjobs", *args, **kwargs)
        api = self.batch if kind == "Job" else self.core
        plural = {
            "Job": "job",
            "Pod": "pod",
            "Service": "service",
            "ConfigMap": "config_map",
            "Secret": "secret",
        }
        return getattr(api, f"{verb}_namespaced_{plural[kind]}")(*args, namespace, **kwargs)

    async def create(self, obj: dict[str, Any]) -> dict[str, Any]:
        """Create ``obj``; the created object (with its ``uid``)."""
        ns = obj["metadata"]["namespace"]
        if obj["kind"] == "TrainJob":
            return await self._json(self._call("TrainJob", "create", ns, obj))
        return await self._json(self._call(obj["kind"], "create", ns, body=obj))

    async def get(self, kind: str, namespace: str, name: str) -> dict[str, Any] | None:
        """The object, or None if there is none."""
        try:
            return await self._json(self._call(kind, "read", namespace, name))
        except KubeError as e:
            if e.status == 404:
                return None
            raise

    async def delete(self, kind: str, namespace: str, name: str, grace: int | None) -> None:
        """Delete with foreground propagation: owned objects (pods, Services) go first."""
        body = {"propagationPolicy": "Foreground"}
        if grace is not None:
            body["gracePeriodSeconds"] = grace
        try:
            await self._json(self._call(kind, "delete", namespace, name, body=body))
        except KubeError as e:
            if e.status != 404:
                raise

    async def list(self, kind: str, namespace: str, **params) -> Any:
        """The raw response of a list or watch (``watch=True``)."""
        return await self._call(kind, "list", namespace, label_selector=SELECTOR, **params)

    async def events(self, namespace: str, name: str) -> list[dict[str, Any]]:
        """Events about the object named ``name``."""
        call = self.core.list_namespaced_event(
            namespace, field_selector=f"involvedObject.name={name}", _preload_content=False
        )
        return (await self._json(call)).get("items", [])

    async def pod_log(self, namespace: str, name: str, since_seconds: int | None):
        """The raw, followed log stream of a pod, with timestamps."""
        params: dict[str, Any] = {"follow": True, "timestamps": True, "_preload_content": False}
        if since_seconds:
            params["since_seconds"] = since_seconds
        response = await self.core.read_namespaced_pod_log(name, namespace, **params)
        if not 200 <= response.status <= 299:
            body = await response.read()
            response.release()
            raise KubeError(response.status, body[:300].decode(errors="replace"))
        return response

    async def has_trainjob(self) -> bool:
        """Whether the Kubeflow Trainer ``TrainJob`` CRD is installed (API discovery)."""
        call = client.ApisApi(self.api_client).get_api_versions(_preload_content=False)
        groups = (await self._json(call)).get("groups", [])
        return any(
            g.get("name") == TRAINJOB_GROUP
            and any(v.get("version") == TRAINJOB_VERSION for v in g.get("versions", []))
            for g in groups
        )

    async def create_all(self, manifests: Manifests) -> dict[str, Any]:
        """The primary, then its dependents owned by it; the created primary."""
        primary = await self.create(manifests.primary)
        for dependent in manifests.dependents:
            await self.create(with_owner(dependent, primary))
        return primary


class Reflector:
    """A cache of one kind of object, kept current by list-then-watch."""

    def __init__(self, api: Api, kind: str, namespace: str, on_change: Callable, log):
        self.api, self.kind, self.namespace = api, kind, namespace
        self.on_change = on_change
        self.log = log
        self.objects: dict[str, dict[str, Any]] = {}
        self.synced = asyncio.Event()
        self._task: asyncio.Task | None = None

    def start(self) -> None:
        """Start listing and watching."""
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name=f"aicloud-k8s-{self.kind}")

    async def stop(self) -> None:
        """Stop watching."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _list(self) -> str:
        body = await Api._json(self.api.list(self.kind, self.namespace))
        fresh = {item["metadata"]["name"]: item for item in body.get("items", [])}
        gone = set(self.objects) - set(fresh)
        self.objects = fresh
        self.synced.set()
        for name in gone:
            self.on_change(self.kind, "DELETED", name, None)
        for name, item in fresh.items():
            self.on_change(self.kind, "MODIFIED", name, item)
        return body["metadata"].get("resourceVersion", "")

    async def _watch(self, version: str) -> str | None:
        """Follow the watch; the version to go on from, or None to list again."""
        response = await self.api.list(
            self.kind,
            self.namespace,
            watch=True,
            resource_version=version,
            allow_watch_bookmarks=True,
            timeout_seconds=WATCH_SECONDS,
        )
        try:
            if response.status == 410:
                return None
            if response.status != 200:
                raise KubeError(response.status, "watch refused")
            while line := await response.content.readline():
                event = json.loads(line)
                kind, obj = event["type"], event["object"]
                if kind == "ERROR":
                    return None  # 410 Gone: the version is too old
                version = obj["metadata"].get("resourceVersion", version)
                if kind == "BOOKMARK":
                    continue
                name = obj["metadata"]["name"]
                if kind == "DELETED":
                    self.objects.pop(name, None)
                    self.on_change(self.kind, kind, name, None)
                else:
                    self.objects[name] = obj
                    self.on_change(self.kind, kind, name, obj)
            return version
        finally:
            response.release()

    async def _run(self) -> None:
        version: str | None = None
        delay = 0.5
        while True:
            try:
                if version is None:
                    version = await self._list()
                version = await self._watch(version)
                delay = 0.5
            except asyncio.CancelledError:
                raise
            except Exception as e:
                self.log.warning("aicloud: watch of %s failed (%s); retrying", self.kind, e)
                version = None
                await asyncio.sleep(delay)
                delay = min(delay * 2, 10.0)


class Attempt:
    """An attempt being followed: its handle, log followers and who to wake on a change."""

    def __init__(self, handle: dict[str, Any], writer: LogWriter):
        self.handle = handle
        self.writer = writer
        self.followers: dict[str, tuple[PodLogFollower, asyncio.Task]] = {}
        self.wakes: list[Callable[[], None]] = []
        self.explanation: str | None = None
        self.explained_at = 0.0


def rank_prefix(pod: dict[str, Any]) -> str:
    """The prefix of a pod's lines: its annotation with ``{index}`` the pod's completion index
    (``[rank{index}]:`` for TF workers), else nothing.

    torchrun pods need none: torchrun already puts ``[rank<N>]:`` before its workers' lines.
    """
    meta = pod["metadata"]
    template = meta.get("annotations", {}).get(ANNOTATION_RANK_PREFIX)
    if not template:
        return ""
    if template == "index":  # attempts created before prefixes were templates
        template = "[rank{index}]:"
    index = meta.get("annotations", {}).get(COMPLETION_INDEX)
    index = index or meta.get("labels", {}).get(COMPLETION_INDEX, "0")
    return template.replace("{index}", index)


class Controller:
    """The reflectors of one namespace, and the attempts this service follows there."""

    def __init__(self, api: Api, namespace: str, trainjob: bool, log):
        self.api = api
        self.namespace = namespace
        self.trainjob = trainjob
        self.log = log
        kinds = ["Job", "Pod", *(["TrainJob"] if trainjob else [])]
        self.reflectors = {k: Reflector(api, k, namespace, self._on_change, log) for k in kinds}
        self.attempts: dict[str, Attempt] = {}

    def start(self) -> None:
        """Start the reflectors."""
        for reflector in self.reflectors.values():
            reflector.start()

    async def stop(self) -> None:
        """Stop the reflectors and every log follower."""
        for reflector in self.reflectors.values():
            await reflector.stop()
        for name in list(self.attempts):
            await self.finish(name, 0)

    async def synced(self, timeout: float = 30.0) -> None:
        """Wait until every cache holds a first list."""
        waits = [r.synced.wait() for r in self.reflectors.values()]
        await asyncio.wait_for(asyncio.gather(*waits), timeout)

    # -- attempts ------------------------------------------------------------------------------

    def follow(self, handle: dict[str, Any], log_path) -> Attempt:
        """Follow an attempt (again, after a restart): its logs, and wake-ups."""
        attempt = self.attempts.get(handle["name"])
        if attempt is None:
            attempt = self.attempts[handle["name"]] = Attempt(handle, LogWriter(log_path))
            for pod in self.pods(handle):
                self._follow_pod(attempt, pod)
        return attempt

    def primary(self, handle: dict[str, Any]) -> dict[str, Any] | None:
        """The attempt's Job or TrainJob as last seen."""
        reflector = self.reflectors.get(handle["kind"])
        return reflector.objects.get(handle["name"]) if reflector else None

    def pods(self, handle: dict[str, Any]) -> list[dict[str, Any]]:
        """The attempt's pods as last seen, by name."""
        found = [
            pod
            for pod in self.reflectors["Pod"].objects.values()
            if pod["metadata"].get("labels", {}).get(LABEL_JOB) == handle["job_id"]
            and pod["metadata"]["labels"].get(LABEL_ATTEMPT) == str(handle["attempt"])
        ]
        return sorted(found, key=lambda p: p["metadata"]["name"])

    async def refresh_pods(self, handle: dict[str, Any]) -> list[dict[str, Any]]:
        """The attempt's pods as the API has them now (the pod watch may lag the Job's)."""
        selector = f"{SELECTOR},{LABEL_JOB}={handle['job_id']},{LABEL_ATTEMPT}={handle['attempt']}"
        call = self.api._call("Pod", "list", handle["namespace"], label_selector=selector)
        pods = (await Api._json(call)).get("items", [])
        attempt = self.attempts.get(handle["name"])
        for pod in pods:
            if attempt is not None:
                self._follow_pod(attempt, pod)
        return sorted(pods, key=lambda p: p["metadata"]["name"])

    def add_wake(self, handle: dict[str, Any], wake: Callable[[], None]) -> None:
        """Call ``wake()`` once, on the next change of the attempt's Job or TrainJob."""
        attempt = self.attempts.get(handle["name"])
        if attempt is not None and wake not in attempt.wakes:
            attempt.wakes.append(wake)

    def clear_wakes(self) -> None:
        """Forget every wake-up."""
        for attempt in self.attempts.values():
            attempt.wakes.clear()

    async def finish(self, name: str, timeout: float) -> None:
        """Let the log followers of an ended attempt write their last lines, then stop them."""
        attempt = self.attempts.pop(name, None)
        if attempt is None:
            return
        for follower, _task in attempt.followers.values():
            follower.pod_done = True
        tasks = [task for _f, task in attempt.followers.values()]
        await drain(tasks, timeout)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        attempt.writer.close()

    def note(self, name: str, text: str) -> None:
        """Write a line of aicloud's own into the attempt's log (``[aicloud]: ...``)."""
        attempt = self.attempts.get(name)
        if attempt is not None:
            attempt.writer.write(b"[aicloud]: ", text.encode())

    # -- events from the reflectors ---------------------------------------------------------------

    def _on_change(self, kind: str, event: str, name: str, obj: dict[str, Any] | None) -> None:
        if kind == "Pod":
            if obj is None:
                return
            labels = obj["metadata"].get("labels", {})
            if LABEL_JOB not in labels:
                return
            attempt = self.attempts.get(object_name(labels[LABEL_JOB], int(labels[LABEL_ATTEMPT])))
            if attempt is not None:
                self._follow_pod(attempt, obj)
            return
        attempt = self.attempts.get(name)
        if attempt is not None and attempt.handle["kind"] == kind:
            wakes, attempt.wakes = attempt.wakes, []
            for wake in wakes:
                wake()

    def _follow_pod(self, attempt: Attempt, pod: dict[str, Any]) -> None:
        """Start following a pod's log once its container has started."""
        name = pod["metadata"]["name"]
        phase = (pod.get("status") or {}).get("phase")
        known = attempt.followers.get(name)
        if known is not None:
            if phase in ("Succeeded", "Failed"):
                known[0].pod_done = True
            return
        if phase not in ("Running", "Succeeded", "Failed"):
            return
        namespace = pod["metadata"]["namespace"]
        cursor = attempt.writer.path.parent / "k8s-logs" / f"{name}.cursor"

        async def open_stream(since: int | None):
            return await self.api.pod_log(namespace, name, since)

        follower = PodLogFollower(attempt.writer, rank_prefix(pod), open_stream, cursor, self.log)
        follower.pod_done = phase in ("Succeeded", "Failed")
        task = asyncio.create_task(follower.run(), name=f"aicloud-log-{name}")
        attempt.followers[name] = (follower, task)
