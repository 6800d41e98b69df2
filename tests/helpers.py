"""Helpers for tests that talk to the in-process server through ``jp_fetch``."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

from tornado.httpclient import HTTPClientError

TERMINAL = {"succeeded", "failed", "cancelled"}


async def api(jp_fetch, method: str, *path: str, body: Any = None, **params) -> tuple[int, Any]:
    """Call the aicloud API; return the status and the decoded JSON (or text) body."""
    kwargs: dict[str, Any] = {"method": method}
    if body is not None:
        kwargs["body"] = body if isinstance(body, (str, bytes)) else json.dumps(body)
    elif method in ("POST", "PUT"):
        kwargs["body"] = b""
        kwargs["allow_nonstandard_methods"] = True
    if params:
        kwargs["params"] = params
    try:
        response = await jp_fetch("aicloud", "api", "v1", *path, **kwargs)
    except HTTPClientError as e:
        response = e.response
        return e.code, json.loads(response.body) if response and response.body else None
    if not response.body:
        return response.code, None
    if response.headers.get("Content-Type", "").startswith("application/json"):
        return response.code, json.loads(response.body)
    return response.code, response.body.decode()


async def submit(jp_fetch, spec: dict[str, Any]) -> dict[str, Any]:
    """Create a job and return its model (asserting 201)."""
    status, job = await api(jp_fetch, "POST", "jobs", body=spec)
    assert status == 201, job
    return job


async def wait_job(jp_fetch, job_id: str, statuses=TERMINAL, timeout: float = 30) -> dict:
    """Poll a job until its status is in ``statuses``."""
    deadline = time.monotonic() + timeout
    while True:
        status, job = await api(jp_fetch, "GET", "jobs", job_id)
        assert status == 200, job
        if job["status"] in statuses:
            return job
        if time.monotonic() > deadline:
            raise TimeoutError(f"job {job_id} still {job['status']}")
        await asyncio.sleep(0.05)


async def job_log(jp_fetch, job_id: str) -> str:
    """The whole log of a job."""
    status, text = await api(jp_fetch, "GET", "jobs", job_id, "logs")
    assert status == 200
    return text


async def start_attempt(
    backend,
    plan,
    run_dir,
    number: int = 1,
    timeout: int | None = None,
    spec=None,
    owner: str | None = None,
    launch: dict | None = None,
) -> dict:
    """``backend.start`` of one attempt of ``plan`` (a one-process command spec by default)."""
    from pathlib import Path

    from aicloud.backends.base import Attempt
    from aicloud.spec import JobSpec

    spec = spec or JobSpec(kind="command", command=["true"])
    run_dir = Path(run_dir)
    attempt = Attempt(run_dir.name, number, run_dir, plan, spec, owner, launch or {}, timeout)
    return await backend.start(attempt)


def plan_for_backend(backend, spec, job_id: str, run_dir, cwd, env: dict[str, str]):
    """The plan that the manager would make for ``spec`` on ``backend`` (attempt 1)."""
    from pathlib import Path

    from aicloud.launchers import LaunchContext, launcher_for

    context = LaunchContext(
        job_id=job_id,
        attempt=1,
        run_dir=Path(run_dir),
        cwd=Path(cwd),
        env=env,
        python=backend.python,
        network=backend.network(job_id, 1),
        cores=backend.cores(spec),
    )
    return launcher_for(spec).plan(spec, context)
