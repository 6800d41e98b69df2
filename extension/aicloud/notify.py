"""Webhook notifications of scheduled runs: a POST on start, success and failure, retried.

The body (JSON)::

    {"event": "started" | "succeeded" | "failed" | "cancelled",
     "schedule": {"id": "sch-…", "name": "…"},
     "job": <the job, as GET /jobs/{id} returns it>,
     "sent_at": "2026-11-30T06:00:01.234Z"}
"""

from __future__ import annotations

import asyncio

import httpx
from traitlets import Float, Int
from traitlets.config import LoggingConfigurable

from aicloud.models import isoformat, job_model
from aicloud.store import utcnow


class Notifier(LoggingConfigurable):
    """Sends webhooks in the background; a failed POST is retried with back-off."""

    retries = Int(3, config=True, help="Tries per webhook after the first one fails.")
    backoff_seconds = Float(0.5, config=True, help="First wait between tries; doubles each time.")
    timeout_seconds = Float(10.0, config=True, help="Timeout of one webhook POST.")

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self._pending: set[asyncio.Task] = set()
        self._client: httpx.AsyncClient | None = None

    def send(self, schedule, job, event: str) -> None:
        """Queue the POST of one event to the schedule's webhook."""
        body = {
            "event": event,
            "schedule": {"id": schedule.id, "name": schedule.name},
            "job": job_model(job),
            "sent_at": isoformat(utcnow()),
        }
        task = asyncio.create_task(self._post(schedule.webhook_url, body))
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)

    async def _post(self, url: str, body: dict) -> bool:
        if self._client is None:
            self._client = httpx.AsyncClient(timeout=self.timeout_seconds)
        wait = self.backoff_seconds
        for attempt in range(self.retries + 1):
            try:
                response = await self._client.post(url, json=body)
                if response.status_code < 400:
                    return True
                problem = f"HTTP {response.status_code}"
            except httpx.HTTPError as e:
                problem = type(e).__name__
            self.log.warning(
                "aicloud: webhook for %s %s failed (%s), try %d of %d",
                body["job"]["id"],
                body["event"],
                problem,
                attempt + 1,
                self.retries + 1,
            )
            if attempt < self.retries:
                await asyncio.sleep(wait)
                wait *= 2
        return False

    async def close(self, timeout: float = 5.0) -> None:
        """Give pending webhooks a moment, then close the connection pool."""
        if self._pending:
            await asyncio.wait(self._pending, timeout=timeout)
        if self._client is not None:
            await self._client.aclose()
            self._client = None
