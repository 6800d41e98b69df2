"""Webhook notifications of scheduled runs: a POST on start, success and failure, retried.

The body (JSON)::

    {"event": "started" | "succeeded" | "failed" | "cancelled",
     "schedule": {"id": "sch-…", "name": "…"},
     "job": <the job, as GET /jobs/{id} returns it>,
     "sent_at": "2026-11-30T06:00:01.234Z"}

Where the service runs inside a cluster (the hub service), a user's webhook must not reach the
hub's API, the cloud's metadata endpoint or other internal hosts: with
``Notifier.allow_internal_webhooks = False`` a URL whose host is, or resolves to, a loopback,
private, link-local or otherwise non-public address is refused when the schedule is saved (a
literal address) and again before each POST (a name, resolved then).
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from urllib.parse import urlsplit

import httpx
from traitlets import Bool, Float, Int, List, TraitError, Unicode, validate
from traitlets.config import LoggingConfigurable

from aicloud.models import isoformat, job_model
from aicloud.store import utcnow


class Notifier(LoggingConfigurable):
    """Sends webhooks in the background; a failed POST is retried with back-off."""

    retries = Int(3, config=True, help="Tries per webhook after the first one fails.")
    backoff_seconds = Float(0.5, config=True, help="First wait between tries; doubles each time.")
    timeout_seconds = Float(10.0, config=True, help="Timeout of one webhook POST.")
    allow_internal_webhooks = Bool(
        True,
        config=True,
        help="Allow webhooks to loopback, private, link-local and other non-public addresses. "
        "The hub service turns this off.",
    )
    allowed_networks = List(
        Unicode(),
        config=True,
        help="Networks (CIDR) that webhooks may reach even when internal ones are refused, "
        "such as an in-cluster alerting service.",
    )

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self._pending: set[asyncio.Task] = set()
        self._client: httpx.AsyncClient | None = None

    @validate("allowed_networks")
    def _valid_networks(self, proposal):
        for network in proposal["value"]:
            try:
                ipaddress.ip_network(network, strict=False)
            except ValueError as e:
                raise TraitError(f"Notifier.allowed_networks: {e}") from None
        return proposal["value"]

    def _internal(self, address: str) -> bool:
        ip = ipaddress.ip_address(address.split("%")[0])
        if any(ip in ipaddress.ip_network(net, strict=False) for net in self.allowed_networks):
            return False
        return not ip.is_global

    def check_url(self, url: str) -> None:
        """Refuse, with a ValueError, a webhook whose host is a literal internal address."""
        if self.allow_internal_webhooks:
            return
        host = (urlsplit(url).hostname or "").rstrip(".")
        if host == "localhost" or host.endswith(".localhost"):
            raise ValueError(f"webhooks may not go to {host} on this service")
        try:
            internal = self._internal(host)
        except ValueError:  # a name: resolved before each POST
            return
        if internal:
            raise ValueError(f"webhooks may not go to the internal address {host}")

    async def _refusal(self, url: str) -> str | None:
        """Why a POST to ``url`` is refused now (its host resolves inward), or None."""
        if self.allow_internal_webhooks:
            return None
        try:
            self.check_url(url)
            parts = urlsplit(url)
            port = parts.port or (443 if parts.scheme == "https" else 80)
            found = await asyncio.get_running_loop().getaddrinfo(
                parts.hostname, port, type=socket.SOCK_STREAM
            )
        except (ValueError, OSError) as e:
            return str(e)
        inward = sorted({info[4][0] for info in found if self._internal(info[4][0])})
        return f"{parts.hostname} resolves to internal {', '.join(inward)}" if inward else None

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
        refused = await self._refusal(url)
        if refused is not None:  # the URL's path and query may hold a secret: not logged
            self.log.warning(
                "aicloud: webhook for %s %s refused: %s", body["job"]["id"], body["event"], refused
            )
            return False
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
