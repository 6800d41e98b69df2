"""FAKE Kubernetes API server for the controller tests (there is no cluster on these machines).

A small aiohttp server on 127.0.0.1, in a thread of its own, that answers the REST paths and
JSON shapes of the real API for what aicloud uses, so that ``kubernetes_asyncio`` talks to it
over HTTP exactly as to a cluster:

- create, get, list and delete of Jobs, Pods, Services, ConfigMaps, Events and TrainJobs, with
  ``uid``, ``resourceVersion``, ``creationTimestamp``, equality label selectors and
  ``involvedObject.name`` field selectors; 409 on a duplicate name, 404 when missing;
- watches (``?watch=true&resourceVersion=N``): JSON lines of ``ADDED``/``MODIFIED``/``DELETED``
  after version N, an ``ERROR`` 410 event for a version older than the kept history;
- deletion with ``propagationPolicy`` (Foreground and Background remove every object whose
  ``ownerReferences`` name the deleted ``uid``, recursively; Orphan keeps them);
- a minimal Job controller: an Indexed Job gets one Pending pod per completion index (the
  completion-index annotation and label, ``job-name`` labels, an owner reference, hostname and
  subdomain); it sets ``Complete`` when every index succeeded (or index 0 under a
  ``succeededIndexes: "0"`` success policy), and applies the ``podFailurePolicy`` rules
  ``Ignore`` on ``DisruptionTarget`` (the pod is replaced) and ``FailJob`` on exit codes;
  other failures count against ``backoffLimit`` (``BackoffLimitExceeded``);
- pod logs (``/log?follow=true&timestamps=true&sinceSeconds=N``), streamed as lines are added;
- API discovery of ``/apis`` (TrainJob CRD installed or not).

Tests drive the "kubelet" and the "scheduler" by hand: :meth:`FakeKubernetes.run_pod`,
:meth:`finish_pod`, :meth:`disrupt_pod`, :meth:`log`, :meth:`event`, :meth:`wait_pod`.

NOT covered: authentication and RBAC, admission and schema validation (the builder tests
validate against the official schemas instead), server-side apply, patch, update, field
managers, finalizers other than foreground deletion, ``activeDeadlineSeconds`` timing (tests
set ``DeadlineExceeded`` with :meth:`fail_job`), the scheduler, the kubelet, container
restarts, and the JobSet/Trainer controllers (TrainJobs are stored, never run by themselves).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import threading
import uuid
from datetime import datetime, timezone
from typing import Any

from aiohttp import web

TRAINER = ("trainer.kubeflow.org", "v1alpha1")
KINDS = {  # plural -> (kind, apiVersion)
    "jobs": ("Job", "batch/v1"),
    "pods": ("Pod", "v1"),
    "services": ("Service", "v1"),
    "configmaps": ("ConfigMap", "v1"),
    "secrets": ("Secret", "v1"),
    "events": ("Event", "v1"),
    "trainjobs": ("TrainJob", "trainer.kubeflow.org/v1alpha1"),
}
INDEX = "batch.kubernetes.io/job-completion-index"


def now() -> str:
    """RFC 3339 with nanoseconds, as the API writes timestamps of log lines."""
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f000Z")


def matches(labels: dict[str, str], selector: str | None) -> bool:
    """Equality-based label selector ``a=b,c=d``."""
    if not selector:
        return True
    for term in selector.split(","):
        key, _, value = term.partition("=")
        if labels.get(key) != value:
            return False
    return True


class FakeKubernetes:
    """The fake API server; ``url`` is its address, :meth:`kubeconfig` writes a kubeconfig."""

    def __init__(self, trainjob: bool = False, history: int = 1000):
        self.trainjob = trainjob
        self.objects: dict[str, dict[tuple[str, str], dict[str, Any]]] = {p: {} for p in KINDS}
        self.events: list[tuple[int, str, str, dict[str, Any]]] = []  # (rv, plural, type, obj)
        self.history = history
        self.version = itertools.count(100)
        self.rv = 100
        self.logs: dict[str, list[tuple[str, str]]] = {}  # pod name -> (timestamp, line)
        self.deletes: list[dict[str, Any]] = []  # DeleteOptions received
        self.requests: list[tuple[str, str]] = []
        self.loop = asyncio.new_event_loop()
        self._tick: asyncio.Event | None = None  # replaced by a new one on every change
        self._thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.url = ""

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self) -> FakeKubernetes:
        """Serve on a free port of 127.0.0.1."""
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._serve(), self.loop).result(10)
        return self

    async def _serve(self) -> None:
        self._tick = asyncio.Event()
        app = web.Application()
        app.router.add_get("/apis", self._discovery)
        app.router.add_get("/apis/", self._discovery)
        app.router.add_route("*", "/api/v1/namespaces/{ns}/{plural}", self._collection)
        app.router.add_route("*", "/api/v1/namespaces/{ns}/{plural}/{name}", self._item)
        app.router.add_get("/api/v1/namespaces/{ns}/pods/{name}/log", self._log)
        app.router.add_route(
            "*", "/apis/{group}/{version}/namespaces/{ns}/{plural}", self._collection
        )
        app.router.add_route(
            "*", "/apis/{group}/{version}/namespaces/{ns}/{plural}/{name}", self._item
        )
        self._runner = web.AppRunner(app, handle_signals=False, shutdown_timeout=0.5)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]
        self.url = f"http://127.0.0.1:{port}"

    def stop(self) -> None:
        """Stop serving; streams end."""
        asyncio.run_coroutine_threadsafe(self._shutdown(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(5)

    async def _shutdown(self) -> None:
        await self._runner.cleanup()
        tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    def kubeconfig(self, path) -> str:
        """Write a kubeconfig that points at this server; its path."""
        config = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [{"name": "fake", "cluster": {"server": self.url}}],
            "users": [{"name": "fake", "user": {"token": "fake-token"}}],
            "contexts": [{"name": "fake", "context": {"cluster": "fake", "user": "fake"}}],
            "current-context": "fake",
        }
        path.write_text(json.dumps(config))
        return str(path)

    def call(self, fn, *args):
        """Run ``fn(*args)`` on the server's loop (tests live in other threads); its result."""

        async def run():
            result = fn(*args)
            await self._notify()
            return result

        return asyncio.run_coroutine_threadsafe(run(), self.loop).result(10)

    # -- the store ---------------------------------------------------------------------------

    def _record(self, plural: str, kind: str, obj: dict[str, Any]) -> None:
        self.rv = next(self.version)
        obj["metadata"]["resourceVersion"] = str(self.rv)
        self.events.append((self.rv, plural, kind, json.loads(json.dumps(obj))))
        del self.events[: -self.history]

    def put(self, plural: str, obj: dict[str, Any], event: str = "MODIFIED") -> dict[str, Any]:
        """Store ``obj`` and record a watch event."""
        key = (obj["metadata"]["namespace"], obj["metadata"]["name"])
        self.objects[plural][key] = obj
        self._record(plural, event, obj)
        return obj

    def add(self, plural: str, obj: dict[str, Any]) -> dict[str, Any]:
        """Create ``obj`` as the API server does (uid, timestamps, versions)."""
        kind, api_version = KINDS[plural]
        obj = json.loads(json.dumps(obj))
        obj.setdefault("kind", kind)
        obj.setdefault("apiVersion", api_version)
        meta = obj["metadata"]
        meta.update(uid=str(uuid.uuid4()), creationTimestamp=now()[:19] + "Z", generation=1)
        obj.setdefault("status", {})
        self.put(plural, obj, "ADDED")
        if plural == "jobs":
            self._start_job(obj)
        return obj

    def remove(self, plural: str, namespace: str, name: str, propagation: str) -> None:
        """Delete an object, and (unless orphaned) everything it owns."""
        obj = self.objects[plural].pop((namespace, name), None)
        if obj is None:
            return
        if propagation != "Orphan":
            uid = obj["metadata"]["uid"]
            for other_plural, items in self.objects.items():
                for (ns, other), item in list(items.items()):
                    owners = item["metadata"].get("ownerReferences", [])
                    if any(o["uid"] == uid for o in owners):
                        self.remove(other_plural, ns, other, propagation)
        self._record(plural, "DELETED", obj)

    def get(self, plural: str, name: str, namespace: str = "default") -> dict[str, Any] | None:
        """An object as stored (a copy)."""
        obj = self.call(lambda: self.objects[plural].get((namespace, name)))
        return json.loads(json.dumps(obj)) if obj is not None else None

    def names(self, plural: str) -> list[str]:
        """Names of the stored objects of a kind."""
        return self.call(lambda: sorted(name for _ns, name in self.objects[plural]))

    # -- the Job controller ------------------------------------------------------------------

    def _pod_for(self, job: dict[str, Any], index: int) -> dict[str, Any]:
        template = job["spec"]["template"]
        name = job["metadata"]["name"]
        meta = template.get("metadata", {})
        pod = {
            "metadata": {
                "name": f"{name}-{index}-{uuid.uuid4().hex[:5]}",
                "namespace": job["metadata"]["namespace"],
                "labels": {
                    **meta.get("labels", {}),
                    "job-name": name,
                    "batch.kubernetes.io/job-name": name,
                    INDEX: str(index),
                },
                "annotations": {**meta.get("annotations", {}), INDEX: str(index)},
                "ownerReferences": [
                    {
                        "apiVersion": "batch/v1",
                        "kind": "Job",
                        "name": name,
                        "uid": job["metadata"]["uid"],
                        "controller": True,
                        "blockOwnerDeletion": True,
                    }
                ],
            },
            "spec": {**template["spec"], "hostname": f"{name}-{index}"},
            "status": {"phase": "Pending"},
        }
        return self.add("pods", pod)

    def _start_job(self, job: dict[str, Any]) -> None:
        for index in range(job["spec"].get("completions", 1)):
            self._pod_for(job, index)
        job["status"] = {"active": job["spec"].get("completions", 1), "startTime": now()}
        self.put("jobs", job)

    def _job_pods(self, job: dict[str, Any]) -> list[dict[str, Any]]:
        uid = job["metadata"]["uid"]
        return [
            p
            for p in self.objects["pods"].values()
            if any(o["uid"] == uid for o in p["metadata"].get("ownerReferences", []))
        ]

    def _conclude(self, job: dict[str, Any], kind: str, reason: str, message: str) -> None:
        conditions = [{"type": kind, "status": "True", "reason": reason, "message": message}]
        if kind == "Failed":
            conditions.insert(0, {"type": "FailureTarget", "status": "True", "reason": reason})
        job["status"]["conditions"] = conditions
        job["status"]["active"] = 0
        self.put("jobs", job)

    def _job_changed(self, job: dict[str, Any], pod: dict[str, Any]) -> None:
        """What the Job controller does when one of its pods changes phase."""
        if job["status"].get("conditions"):
            return
        spec = job["spec"]
        index = pod["metadata"]["annotations"][INDEX]
        if pod["status"]["phase"] == "Failed":
            disrupted = any(
                c.get("type") == "DisruptionTarget" for c in pod["status"].get("conditions", [])
            )
            code = pod["status"]["containerStatuses"][0]["state"]["terminated"]["exitCode"]
            for rule in spec.get("podFailurePolicy", {}).get("rules", []):
                if rule["action"] == "Ignore" and disrupted and rule.get("onPodConditions"):
                    self._pod_for(job, int(index))
                    return
                codes = rule.get("onExitCodes")
                if codes and not disrupted:
                    inside = code in codes["values"]
                    if (codes["operator"] == "In") == inside and rule["action"] == "FailJob":
                        message = (
                            f"Container worker for pod {pod['metadata']['name']} failed with "
                            f"exit code {code} matching FailJob rule at index 1"
                        )
                        self._conclude(job, "Failed", "PodFailurePolicy", message)
                        return
            job["status"]["failed"] = job["status"].get("failed", 0) + 1
            if job["status"]["failed"] > spec.get("backoffLimit", 6):
                self._conclude(
                    job,
                    "Failed",
                    "BackoffLimitExceeded",
                    "Job has reached the specified backoff limit",
                )
            else:
                self._pod_for(job, int(index))
            return
        done = {
            p["metadata"]["annotations"][INDEX]
            for p in self._job_pods(job)
            if p["status"]["phase"] == "Succeeded"
        }
        job["status"]["succeeded"] = len(done)
        leader = spec.get("successPolicy", {}).get("rules", [{}])[0].get("succeededIndexes")
        if len(done) == spec.get("completions", 1) or (leader and leader in done):
            self._conclude(
                job, "Complete", "CompletionsReached", "Reached expected number of succeeded pods"
            )
        else:
            self.put("jobs", job)

    # -- the "kubelet" and the "scheduler", driven by tests -----------------------------------

    def _pod(self, prefix: str) -> dict[str, Any]:
        found = [p for (_ns, n), p in self.objects["pods"].items() if n.startswith(prefix)]
        assert len(found) == 1, f"pods named {prefix}*: {[p['metadata']['name'] for p in found]}"
        return found[0]

    def pod_names(self, job: str) -> list[str]:
        """The pods of a Job, by completion index."""
        return self.call(
            lambda: [
                p["metadata"]["name"]
                for p in sorted(
                    self.objects["pods"].values(),
                    key=lambda p: p["metadata"]["annotations"].get(INDEX, ""),
                )
                if p["metadata"]["labels"].get("job-name") == job
            ]
        )

    def run_pod(self, name: str) -> None:
        """The pod is scheduled and its container started."""

        def run():
            pod = self._pod(name)
            pod["spec"]["nodeName"] = "node-1"
            pod["status"] = {
                "phase": "Running",
                "containerStatuses": [
                    {
                        "name": "worker",
                        "image": pod["spec"]["containers"][0]["image"],
                        "state": {"running": {"startedAt": now()}},
                    }
                ],
            }
            self.put("pods", pod)

        self.call(run)

    def waiting_pod(self, name: str, reason: str, message: str) -> None:
        """The pod's container cannot start (``ImagePullBackOff``, say)."""

        def wait():
            pod = self._pod(name)
            image = pod["spec"]["containers"][0]["image"]
            pod["spec"]["nodeName"] = "node-1"
            pod["status"]["containerStatuses"] = [
                {
                    "name": "worker",
                    "image": image,
                    "state": {"waiting": {"reason": reason, "message": message}},
                }
            ]
            self.put("pods", pod)

        self.call(wait)

    def finish_pod(self, name: str, exit_code: int, reason: str | None = None) -> None:
        """The pod's container exits with ``exit_code`` (``reason``: ``OOMKilled``, say)."""

        def finish():
            pod = self._pod(name)
            state = {
                "exitCode": exit_code,
                "reason": reason or ("Completed" if exit_code == 0 else "Error"),
                "finishedAt": now(),
            }
            pod["status"]["phase"] = "Succeeded" if exit_code == 0 else "Failed"
            pod["status"]["containerStatuses"] = [
                {"name": "worker", "image": "x", "state": {"terminated": state}}
            ]
            self.put("pods", pod)
            self._after_pod(pod)

        self.call(finish)

    def disrupt_pod(self, name: str) -> None:
        """The pod is evicted or preempted (``DisruptionTarget``), as when a node is drained."""

        def disrupt():
            pod = self._pod(name)
            pod["status"]["phase"] = "Failed"
            pod["status"]["conditions"] = [
                {"type": "DisruptionTarget", "status": "True", "reason": "EvictionByEvictionAPI"}
            ]
            pod["status"]["containerStatuses"] = [
                {
                    "name": "worker",
                    "image": "x",
                    "state": {
                        "terminated": {"exitCode": 143, "reason": "Error", "finishedAt": now()}
                    },
                }
            ]
            self.put("pods", pod)
            self._after_pod(pod)

        self.call(disrupt)

    def _after_pod(self, pod: dict[str, Any]) -> None:
        for owner in pod["metadata"].get("ownerReferences", []):
            job = self.objects["jobs"].get((pod["metadata"]["namespace"], owner["name"]))
            if job is not None:
                self._job_changed(job, pod)

    def fail_job(self, name: str, reason: str, message: str, namespace: str = "default") -> None:
        """Mark a Job (or TrainJob) failed, as the controller does on ``DeadlineExceeded``."""

        def fail():
            plural = "jobs" if (namespace, name) in self.objects["jobs"] else "trainjobs"
            obj = self.objects[plural][(namespace, name)]
            self._conclude(obj, "Failed", reason, message)

        self.call(fail)

    def complete(self, plural: str, name: str, namespace: str = "default") -> None:
        """Mark a TrainJob (or Job) complete."""

        def done():
            obj = self.objects[plural][(namespace, name)]
            obj["status"]["conditions"] = [
                {"type": "Complete", "status": "True", "reason": "JobsCompleted", "message": ""}
            ]
            self.put(plural, obj)

        self.call(done)

    def log(self, pod: str, text: str) -> None:
        """Lines the pod's container writes."""

        def write():
            name = self._pod(pod)["metadata"]["name"]
            for line in text.splitlines():
                self.logs.setdefault(name, []).append((now(), line))

        self.call(write)

    def event(
        self,
        involved: str,
        reason: str,
        message: str,
        kind: str = "Pod",
        namespace: str = "default",
    ) -> None:
        """An Event about the object named ``involved`` (a pod name prefix, or a Job)."""

        def add():
            name = involved
            if kind == "Pod":
                name = self._pod(involved)["metadata"]["name"]
            event = {
                "metadata": {"name": f"{name}.{uuid.uuid4().hex[:8]}", "namespace": namespace},
                "involvedObject": {"kind": kind, "name": name, "namespace": namespace},
                "reason": reason,
                "message": message,
                "type": "Warning",
                "lastTimestamp": now()[:19] + "Z",
                "count": 1,
            }
            self.add("events", event)

        self.call(add)

    # -- HTTP --------------------------------------------------------------------------------

    async def _notify(self) -> None:
        tick, self._tick = self._tick, asyncio.Event()
        tick.set()

    async def _changed(self, timeout: float) -> None:
        """Return on the next change, or after ``timeout`` seconds."""
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(self._tick.wait(), timeout)

    async def _discovery(self, request: web.Request) -> web.Response:
        groups = [{"name": "batch", "versions": [{"groupVersion": "batch/v1", "version": "v1"}]}]
        if self.trainjob:
            group, version = TRAINER
            groups.append(
                {
                    "name": group,
                    "versions": [{"groupVersion": f"{group}/{version}", "version": version}],
                }
            )
        return web.json_response({"kind": "APIGroupList", "apiVersion": "v1", "groups": groups})

    @staticmethod
    def _status(code: int, reason: str, message: str) -> web.Response:
        body = {
            "kind": "Status",
            "apiVersion": "v1",
            "status": "Failure",
            "message": message,
            "reason": reason,
            "code": code,
        }
        return web.json_response(body, status=code)

    def _plural(self, request: web.Request) -> str | None:
        plural = request.match_info["plural"]
        if plural == "trainjobs" and not self.trainjob:
            return None
        return plural if plural in KINDS else None

    async def _collection(self, request: web.Request) -> web.StreamResponse:
        plural, ns = self._plural(request), request.match_info["ns"]
        if plural is None:
            return self._status(404, "NotFound", "the server could not find the requested resource")
        self.requests.append((request.method, request.path))
        if request.method == "POST":
            body = await request.json()
            if (ns, body["metadata"]["name"]) in self.objects[plural]:
                return self._status(
                    409, "AlreadyExists", f'{plural} "{body["metadata"]["name"]}" already exists'
                )
            body["metadata"]["namespace"] = ns
            created = self.add(plural, body)
            await self._notify()
            return web.json_response(created, status=201)
        query = request.query
        selector, fields = query.get("labelSelector"), query.get("fieldSelector")
        if query.get("watch", "").lower() in ("true", "1"):
            return await self._watch(
                request, plural, ns, selector, int(query.get("resourceVersion") or 0)
            )
        items = [
            obj
            for (item_ns, _name), obj in self.objects[plural].items()
            if item_ns == ns
            and matches(obj["metadata"].get("labels", {}), selector)
            and (not fields or obj.get("involvedObject", {}).get("name") == fields.split("=", 1)[1])
        ]
        kind, api_version = KINDS[plural]
        return web.json_response(
            {
                "kind": f"{kind}List",
                "apiVersion": api_version,
                "metadata": {"resourceVersion": str(self.rv)},
                "items": items,
            }
        )

    async def _watch(self, request, plural, ns, selector, since) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "application/json"})
        await response.prepare(request)
        oldest = self.events[0][0] if self.events else self.rv
        if since and since < oldest - 1:
            gone = {
                "kind": "Status",
                "apiVersion": "v1",
                "status": "Failure",
                "reason": "Expired",
                "code": 410,
                "message": "too old resource version",
            }
            await response.write(json.dumps({"type": "ERROR", "object": gone}).encode() + b"\n")
            return response
        timeout = float(request.query.get("timeoutSeconds") or 300)
        deadline = asyncio.get_running_loop().time() + timeout
        with contextlib.suppress(ConnectionResetError, asyncio.TimeoutError):
            while True:
                for rv, item_plural, kind, obj in list(self.events):
                    if rv <= since or item_plural != plural:
                        continue
                    since = rv
                    if obj["metadata"]["namespace"] == ns and matches(
                        obj["metadata"].get("labels", {}), selector
                    ):
                        await response.write(
                            json.dumps({"type": kind, "object": obj}).encode() + b"\n"
                        )
                left = deadline - asyncio.get_running_loop().time()
                if left <= 0:
                    break
                await self._changed(min(left, 1.0))
        return response

    async def _item(self, request: web.Request) -> web.Response:
        plural, ns, name = (
            self._plural(request),
            request.match_info["ns"],
            request.match_info["name"],
        )
        if plural is None:
            return self._status(404, "NotFound", "the server could not find the requested resource")
        self.requests.append((request.method, request.path))
        obj = self.objects[plural].get((ns, name))
        if obj is None:
            return self._status(404, "NotFound", f'{plural} "{name}" not found')
        if request.method == "DELETE":
            options = await request.json() if request.can_read_body else {}
            self.deletes.append({"plural": plural, "name": name, **options})
            self.remove(plural, ns, name, options.get("propagationPolicy", "Background"))
            await self._notify()
            return web.json_response({"kind": "Status", "apiVersion": "v1", "status": "Success"})
        return web.json_response(obj)

    async def _log(self, request: web.Request) -> web.StreamResponse:
        ns, name = request.match_info["ns"], request.match_info["name"]
        pod = self.objects["pods"].get((ns, name))
        if pod is None:
            return self._status(404, "NotFound", f'pods "{name}" not found')
        if pod["status"].get("phase") == "Pending":
            return self._status(
                400, "BadRequest", f'container "worker" in pod "{name}" is waiting to start'
            )
        follow = request.query.get("follow", "").lower() == "true"
        stamps = request.query.get("timestamps", "").lower() == "true"
        since = request.query.get("sinceSeconds")
        cutoff = None
        if since:
            cutoff = datetime.now(timezone.utc).timestamp() - int(since)
        response = web.StreamResponse(headers={"Content-Type": "text/plain"})
        await response.prepare(request)
        sent = 0
        with contextlib.suppress(ConnectionResetError):
            while True:
                lines = self.logs.get(name, [])
                for stamp, line in lines[sent:]:
                    moment = datetime.strptime(stamp[:26], "%Y-%m-%dT%H:%M:%S.%f").replace(
                        tzinfo=timezone.utc
                    )
                    if cutoff is None or moment.timestamp() >= cutoff:
                        await response.write(
                            ((stamp + " ") if stamps else "").encode() + line.encode() + b"\n"
                        )
                sent = len(lines)
                current = self.objects["pods"].get((ns, name))
                if (
                    not follow
                    or current is None
                    or current["status"].get("phase") in ("Succeeded", "Failed")
                ):
                    break
                await self._changed(1.0)
        return response
