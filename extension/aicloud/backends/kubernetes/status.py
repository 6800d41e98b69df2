"""Job, TrainJob and pod conditions to aicloud's attempt outcomes (pure).

- ``Complete`` (or ``SuccessCriteriaMet``): exit code 0.
- ``Failed`` because of the pod failure policy (``PodFailurePolicy``): user code; the exit
  code of the first failed worker, or SIGKILL when the kernel killed it for memory
  (``OOMKilled``), which the job service counts as an infrastructure failure.
- ``Failed`` with ``DeadlineExceeded``: the job's ``timeout_seconds`` ran out.
- ``Failed`` for any other reason (``BackoffLimitExceeded`` after pods were lost, say): an
  infrastructure failure, with Kubernetes' own message.
"""

from __future__ import annotations

from typing import Any

from aicloud.backends.base import AttemptExit


def condition(obj: dict[str, Any], kind: str) -> dict[str, Any] | None:
    """The condition of type ``kind`` that is ``True``, if any."""
    for item in (obj.get("status") or {}).get("conditions") or []:
        if item.get("type") == kind and item.get("status") == "True":
            return item
    return None


def terminated(pod: dict[str, Any]) -> dict[str, Any] | None:
    """How the pod's (first) container ended, if it has."""
    for status in (pod.get("status") or {}).get("containerStatuses") or []:
        state = (status.get("state") or {}).get("terminated")
        if state:
            return state
    return None


def _failed_worker(pods: list[dict[str, Any]]) -> dict[str, Any] | None:
    failures = [
        state
        for pod in pods
        if (state := terminated(pod)) is not None and state.get("exitCode", 0) != 0
    ]
    return min(failures, key=lambda s: s.get("finishedAt") or "", default=None)


def _processes(pods: list[dict[str, Any]]) -> list[dict[str, Any]]:
    out = []
    for pod in pods:
        state = terminated(pod) or {}
        out.append(
            {
                "name": pod["metadata"]["name"],
                "phase": (pod.get("status") or {}).get("phase"),
                "exit_code": state.get("exitCode"),
                "reason": state.get("reason"),
            }
        )
    return sorted(out, key=lambda p: p["name"])


def attempt_exit(primary: dict[str, Any] | None, pods: list[dict[str, Any]]) -> AttemptExit | None:
    """None while the attempt runs, else how it ended (``primary`` None: it is gone)."""
    if primary is None:
        return AttemptExit(lost=True, error="the Kubernetes object of the attempt was deleted")
    processes = _processes(pods)
    if condition(primary, "Complete") or condition(primary, "SuccessCriteriaMet"):
        return AttemptExit(exit_code=0, processes=processes)
    failed = condition(primary, "Failed") or condition(primary, "FailureTarget")
    if failed is None:
        return None
    reason = failed.get("reason") or ""
    if reason == "DeadlineExceeded":
        return AttemptExit(timed_out=True, terminated=True, processes=processes)
    worker = _failed_worker(pods)
    if reason == "PodFailurePolicy" or (worker is not None and reason != "BackoffLimitExceeded"):
        if worker is None:
            return AttemptExit(lost=True, error=failed.get("message") or reason)
        if worker.get("reason") == "OOMKilled":
            return AttemptExit(signal=9, processes=processes)
        return AttemptExit(exit_code=worker.get("exitCode"), processes=processes)
    message = failed.get("message") or "the attempt failed"
    return AttemptExit(lost=True, error=f"Kubernetes: {reason}: {message}", processes=processes)


def is_pending(pods: list[dict[str, Any]]) -> bool:
    """Whether no pod of the attempt has started a container yet."""
    if not pods:
        return True
    for pod in pods:
        status = pod.get("status") or {}
        if status.get("phase") in ("Running", "Succeeded", "Failed"):
            return False
    return True
