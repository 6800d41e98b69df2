"""Why an attempt is still pending, in one sentence, from its pods' statuses and the events.

Pure functions over the API's own shapes (Pod, Event and Job as dicts): the usual reasons are
no node with enough of a resource (``Insufficient nvidia.com/gpu``), a taint no toleration
matches, a node selector nothing matches, an exhausted ResourceQuota, an image that cannot
be pulled, and a Job that Kueue has not admitted yet.
"""

from __future__ import annotations

import re
from typing import Any

PULL_FAILURES = ("ImagePullBackOff", "ErrImagePull", "InvalidImageName", "ErrImageNeverPull")
_INSUFFICIENT = re.compile(r"(\d+) Insufficient ([\w./-]*\w)")
_TAINT = re.compile(r"(\d+) node\(s\) had untolerated taint (\{[^}]*\})")
_SELECTOR = re.compile(r"(\d+) node\(s\) didn't match Pod's node affinity/selector")
_NODES = re.compile(r"0/(\d+) nodes are available")
MAX_DETAIL = 300


def _short(message: str) -> str:
    message = " ".join(message.split())
    return message if len(message) <= MAX_DETAIL else message[: MAX_DETAIL - 1] + "…"


def _image_problem(pods: list[dict[str, Any]]) -> str | None:
    for pod in pods:
        for status in pod.get("status", {}).get("containerStatuses") or []:
            waiting = (status.get("state") or {}).get("waiting") or {}
            if waiting.get("reason") in PULL_FAILURES:
                detail = _short(waiting.get("message") or "")
                return f"image pull back-off: {status.get('image')} cannot be pulled" + (
                    f" ({detail})" if detail else ""
                )
    return None


def _scheduling(message: str) -> str:
    """A FailedScheduling message as a sentence a user can act on."""
    parts = []
    for count, resource in _INSUFFICIENT.findall(message):
        parts.append(f"{count} node(s) lack free {resource}")
    for count, taint in _TAINT.findall(message):
        parts.append(f"{count} node(s) have a taint the pod does not tolerate {taint}")
    for (count,) in (m.groups() for m in _SELECTOR.finditer(message)):
        parts.append(f"{count} node(s) do not match the node selector")
    nodes = _NODES.search(message)
    head = f"no node can run the pod (0/{nodes[1]} available)" if nodes else "not scheduled"
    if not parts:
        return f"{head}: {_short(message)}"
    return f"{head}: " + "; ".join(parts)


def _latest(events: list[dict[str, Any]], reason: str) -> dict[str, Any] | None:
    found = [e for e in events if e.get("reason") == reason]
    if not found:
        return None
    return max(found, key=lambda e: e.get("lastTimestamp") or e.get("eventTime") or "")


def explain_pending(
    job: dict[str, Any] | None, pods: list[dict[str, Any]], events: list[dict[str, Any]]
) -> str | None:
    """Why the attempt (its Job, pods and their events) has not started, or None if it has."""
    if job is not None and job.get("spec", {}).get("suspend"):
        queue = job["metadata"].get("labels", {}).get("kueue.x-k8s.io/queue-name")
        where = f"Kueue queue {queue!r}" if queue else "a queue"
        return f"waiting in {where}: the Job is suspended until it is admitted"
    quota = _latest(events, "FailedCreate")
    if quota is not None and "exceeded quota" in quota.get("message", ""):
        return f"the namespace's resource quota is used up: {_short(quota['message'])}"
    image = _image_problem(pods)
    if image:
        return image
    pending = [p for p in pods if p.get("status", {}).get("phase", "Pending") == "Pending"]
    if pods and not pending:
        return None
    scheduling = _latest(events, "FailedScheduling")
    if scheduling is not None:
        return _scheduling(scheduling.get("message", ""))
    if quota is not None:
        return f"pods cannot be created: {_short(quota.get('message', ''))}"
    if not pods:
        return "waiting for the Job controller to create the pods"
    unscheduled = [p for p in pending if not p.get("spec", {}).get("nodeName")]
    if unscheduled:
        return f"{len(unscheduled)} pod(s) waiting for the scheduler"
    return f"{len(pending)} pod(s) starting (pulling the image, mounting volumes)"
