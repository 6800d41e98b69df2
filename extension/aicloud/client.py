"""A Python client of the aicloud REST API, and how it finds the service.

Discovery order (the first that applies wins):

1. ``AICLOUD_URL`` (and ``AICLOUD_TOKEN``): set by hand, and set for every job aicloud starts,
   so a job (a scheduled notebook, say) can launch jobs itself.
2. Inside a JupyterHub user server (``JUPYTERHUB_API_TOKEN`` is set): the hub's aicloud service,
   at ``AICLOUD_HUB_SERVICE_URL`` or else ``<hub>/services/aicloud/`` next to
   ``JUPYTERHUB_API_URL``, with the user's own token.
3. A standalone Jupyter server on this machine, from its runtime file (``jpserver-<pid>.json``):
   the server that started this kernel if there is one, else the newest running one.
4. Otherwise :class:`ServiceNotFound`, whose message says how to start one.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import httpx
import psutil

API_PATH = "aicloud/api/v1"


class ServiceNotFound(RuntimeError):
    """No aicloud service could be found."""


class ErrorAnswer(RuntimeError):
    """An HTTP server answered with an error ``status``; ``message`` is its own words."""

    def __init__(self, status: int, message: str):
        super().__init__(f"{status}: {message}")
        self.status = status
        self.message = message


class APIError(ErrorAnswer):
    """The service answered with an error; ``message`` is its own words."""


_Client = TypeVar("_Client", bound="HTTPClient")


class HTTPClient:
    """A client over one ``httpx.Client`` (``self._http``), closed by ``with`` or :meth:`close`."""

    _http: httpx.Client

    def close(self) -> None:
        """Close the connection pool."""
        self._http.close()

    def __enter__(self: _Client) -> _Client:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


@dataclass(frozen=True)
class Connection:
    """Where the service is, the token to use, and how it was found."""

    url: str
    token: str
    source: str


def _runtime_dir() -> Path:
    from jupyter_core.paths import jupyter_runtime_dir

    return Path(jupyter_runtime_dir())


def running_servers(runtime_dir: Path | None = None) -> list[dict[str, Any]]:
    """Jupyter servers whose runtime files name a live process, newest first."""
    servers = []
    for path in (runtime_dir or _runtime_dir()).glob("jpserver-*.json"):
        try:
            info = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError):
            continue
        if isinstance(info.get("pid"), int) and psutil.pid_exists(info["pid"]):
            info["_mtime"] = path.stat().st_mtime
            servers.append(info)
    return sorted(servers, key=lambda info: info["_mtime"], reverse=True)


def discover(environ: dict[str, str] | None = None, runtime_dir: Path | None = None) -> Connection:
    """Find the aicloud service, in the documented order."""
    env = os.environ if environ is None else environ
    if env.get("AICLOUD_URL"):
        return Connection(env["AICLOUD_URL"], env.get("AICLOUD_TOKEN", ""), "AICLOUD_URL")
    if env.get("JUPYTERHUB_API_TOKEN") and env.get("JUPYTERHUB_API_URL"):
        url = env.get("AICLOUD_HUB_SERVICE_URL")
        if not url:
            hub = env["JUPYTERHUB_API_URL"].rstrip("/").removesuffix("/api").removesuffix("/hub")
            url = f"{hub}/services/aicloud/"
        return Connection(url, env["JUPYTERHUB_API_TOKEN"], "JupyterHub")
    servers = running_servers(runtime_dir)
    parent = env.get("JPY_PARENT_PID") or str(os.getppid())
    for info in servers:
        if str(info["pid"]) == parent:
            return Connection(info["url"], info.get("token", ""), f"jpserver-{info['pid']}.json")
    if servers:
        info = servers[0]
        return Connection(info["url"], info.get("token", ""), f"jpserver-{info['pid']}.json")
    raise ServiceNotFound(
        "no aicloud service found: start one with `make up` (or `jupyter lab`), "
        "or set AICLOUD_URL and AICLOUD_TOKEN"
    )


class AICloudClient(HTTPClient):
    """Calls the REST API; every method returns the API's JSON models."""

    def __init__(self, connection: Connection | None = None, timeout: float = 60.0):
        self.connection = connection or discover()
        headers = (
            {"Authorization": f"token {self.connection.token}"} if self.connection.token else {}
        )
        base = self.connection.url.rstrip("/") + "/" + API_PATH + "/"
        self._http = httpx.Client(base_url=base, headers=headers, timeout=timeout)

    def request(self, method: str, path: str, **kwargs) -> httpx.Response:
        """One request; an error status raises :class:`APIError` with the server's message."""
        response = self._http.request(method, path, **kwargs)
        if response.status_code >= 400:
            raise APIError(response.status_code, _message(response))
        return response

    def submit(self, spec: dict[str, Any]) -> dict[str, Any]:
        """Create a job from a spec (the JSON form of :class:`aicloud.spec.JobSpec`)."""
        return self.request("POST", "jobs", json=spec).json()

    def list(self, **filters: Any) -> dict[str, Any]:
        """A page of jobs: ``status``, ``kind``, ``tag``, ``limit``, ``offset``."""
        params = {k: v for k, v in filters.items() if v is not None}
        return self.request("GET", "jobs", params=params).json()

    def get(self, job_id: str) -> dict[str, Any]:
        """One job."""
        return self.request("GET", f"jobs/{job_id}").json()

    def cancel(self, job_id: str) -> dict[str, Any]:
        """Cancel a job; returns it once nothing of it runs."""
        return self.request("POST", f"jobs/{job_id}/cancel").json()

    def rerun(self, job_id: str, overrides: dict[str, Any] | None = None) -> dict[str, Any]:
        """A new job from one of the caller's jobs; the service keeps its secret values."""
        return self.request("POST", f"jobs/{job_id}/rerun", json=overrides or {}).json()

    def delete(self, job_id: str) -> None:
        """Delete a job that has ended."""
        self.request("DELETE", f"jobs/{job_id}")

    def logs(self, job_id: str, offset: int = 0, rank: int | None = None) -> tuple[bytes, int]:
        """The log from ``offset`` and the offset to continue from."""
        params: dict[str, Any] = {"offset": offset}
        if rank is not None:
            params["rank"] = rank
        response = self.request("GET", f"jobs/{job_id}/logs", params=params)
        return response.content, int(response.headers["X-Aicloud-Next-Offset"])

    def follow_logs(self, job_id: str, offset: int = 0, rank: int | None = None) -> Iterator[bytes]:
        """Chunks of the log as they are written, until the job ends."""
        params: dict[str, Any] = {"offset": offset, "follow": "true"}
        if rank is not None:
            params["rank"] = rank
        with self._http.stream(
            "GET", f"jobs/{job_id}/logs", params=params, timeout=httpx.Timeout(None)
        ) as response:
            if response.status_code >= 400:
                response.read()
                raise APIError(response.status_code, _message(response))
            yield from response.iter_bytes()

    def metrics(self, job_id: str, since: int = 0) -> dict[str, Any]:
        """What the job reported through ``aicloud.runtime.report``, and its progress."""
        return self.request("GET", f"jobs/{job_id}/metrics", params={"since": since}).json()

    def wait(self, job_id: str, interval: float = 0.5) -> dict[str, Any]:
        """Block until the job has ended; return it."""
        import time

        while (job := self.get(job_id))["status"] not in ("succeeded", "failed", "cancelled"):
            time.sleep(interval)
        return job

    def outputs(self, job_id: str) -> list[dict[str, Any]]:
        """The files a job produced (an executed notebook and its HTML, say)."""
        return self.request("GET", f"jobs/{job_id}/outputs").json()["outputs"]

    def download(self, job_id: str, name: str) -> bytes:
        """One output file of a job."""
        return self.request("GET", f"jobs/{job_id}/outputs/{name}").content

    def notebook_parameters(self, path: str) -> dict[str, Any]:
        """A notebook's typed parameters and kernel."""
        return self.request("GET", "notebooks/parameters", params={"path": path}).json()

    def create_schedule(self, spec: dict[str, Any]) -> dict[str, Any]:
        """Create a schedule (the JSON form of :class:`aicloud.spec.ScheduleSpec`)."""
        return self.request("POST", "schedules", json=spec).json()

    def schedules(self, limit: int = 50, offset: int = 0) -> dict[str, Any]:
        """A page of schedules."""
        return self.request("GET", "schedules", params={"limit": limit, "offset": offset}).json()

    def schedule(self, schedule_id: str) -> dict[str, Any]:
        """One schedule."""
        return self.request("GET", f"schedules/{schedule_id}").json()

    def update_schedule(self, schedule_id: str, change: dict[str, Any]) -> dict[str, Any]:
        """Change a schedule (``{"paused": true}`` pauses it)."""
        return self.request("PATCH", f"schedules/{schedule_id}", json=change).json()

    def delete_schedule(self, schedule_id: str) -> None:
        """Delete a schedule; its runs stay."""
        self.request("DELETE", f"schedules/{schedule_id}")

    def run_schedule(self, schedule_id: str, parameters: dict | None = None) -> dict[str, Any]:
        """Fire a schedule now, with parameter overrides."""
        body = {"parameters": parameters or {}}
        return self.request("POST", f"schedules/{schedule_id}/run", json=body).json()

    def schedule_runs(self, schedule_id: str, limit: int = 50, offset: int = 0) -> dict:
        """A page of a schedule's runs."""
        params = {"limit": limit, "offset": offset}
        return self.request("GET", f"schedules/{schedule_id}/runs", params=params).json()

    def status(self) -> dict[str, Any]:
        """The service's version, home and backends."""
        return self.request("GET", "status").json()

    def resources(self) -> dict[str, Any]:
        """CPU, memory, accelerators and backends."""
        return self.request("GET", "resources").json()


def _message(response: httpx.Response) -> str:
    try:
        return response.json().get("message") or response.reason_phrase
    except (json.JSONDecodeError, AttributeError):
        return response.text.strip() or response.reason_phrase
