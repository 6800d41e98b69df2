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
