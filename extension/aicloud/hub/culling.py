"""GPU-aware culling: idle servers on GPU or TPU profiles stop sooner than CPU ones.

jupyterhub-idle-culler applies one ``--timeout`` to every server and has no hook to vary it
per server. aicloud runs it as the backstop, with the CPU limit, and adds this small hub
service (``python -m aicloud.hub.culling``), which reads each server's profile from its
``user_options`` and applies that profile's ``idle_timeout_seconds`` from the catalog, or else
``--gpu-timeout`` for accelerator profiles and ``--cpu-timeout`` for the others.
:func:`servers_to_cull` is the whole policy, a pure function of the hub's user models.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import os
import signal
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any
from urllib.parse import quote

from aicloud.catalog import Catalog, CatalogError, load_catalog

log = logging.getLogger("aicloud.culling")
DEFAULT_CPU_TIMEOUT = 3600
DEFAULT_GPU_TIMEOUT = 1200


@dataclass(frozen=True)
class CullPolicy:
    """Idle limits: the catalog's per-profile ones, else a default for GPU and for CPU."""

    catalog: Catalog
    cpu_timeout: int = DEFAULT_CPU_TIMEOUT
    gpu_timeout: int = DEFAULT_GPU_TIMEOUT

    def idle_limit(self, user_options: dict[str, Any] | None) -> int:
        """Seconds a server started with ``user_options`` may stay idle."""
        slug = (user_options or {}).get("profile")
        try:
            profile = self.catalog.get(slug) if slug else self._default()
        except CatalogError:
            return self.cpu_timeout  # a profile gone from the catalog: the longest limit
        if profile.idle_timeout_seconds is not None:
            return profile.idle_timeout_seconds
        return self.gpu_timeout if profile.accelerator else self.cpu_timeout

    def _default(self):
        return next((p for p in self.catalog.profiles if p.default), self.catalog.profiles[0])


@dataclass(frozen=True)
class CullDecision:
    """One server to stop, and why."""

    user: str
    server: str
    idle_seconds: float
    limit: int


def _parse_time(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def servers_to_cull(users: list[dict], now: datetime, policy: CullPolicy) -> list[CullDecision]:
    """The ready, non-pending servers idle for at least their profile's limit."""
    decisions = []
    for user in users:
        for name, server in (user.get("servers") or {}).items():
            if server.get("pending") or not server.get("ready"):
                continue
            last = server.get("last_activity") or server.get("started")
            if not last:
                continue
            idle = (now - _parse_time(last)).total_seconds()
            limit = policy.idle_limit(server.get("user_options"))
            if idle >= limit:
                decisions.append(CullDecision(user["name"], name, idle, limit))
    return decisions


async def cull_once(
    api_url: str, token: str, policy: CullPolicy, now: datetime | None = None
) -> list[CullDecision]:
    """One pass: read the hub's users, stop the servers the policy says to; return them."""
    from tornado.httpclient import AsyncHTTPClient, HTTPRequest

    client = AsyncHTTPClient()
    headers = {"Authorization": f"token {token}"}
    base = api_url.rstrip("/")
    response = await client.fetch(HTTPRequest(f"{base}/users?state=ready", headers=headers))
    users = json.loads(response.body)
    decisions = servers_to_cull(users, now or datetime.now(timezone.utc), policy)
    for decision in decisions:
        log.info(
            "aicloud: culling %s/%s (idle %.0f s, limit %d s)",
            decision.user,
            decision.server,
            decision.idle_seconds,
            decision.limit,
        )
        path = f"{base}/users/{quote(decision.user, safe='')}/server"
        if decision.server:
            path = f"{base}/users/{quote(decision.user, safe='')}/servers/{quote(decision.server)}"
        await client.fetch(HTTPRequest(path, method="DELETE", headers=headers), raise_error=False)
    return decisions


async def run(api_url: str, token: str, policy: CullPolicy, every: float) -> None:
    """Cull every ``every`` seconds, forever."""
    while True:
        try:
            await cull_once(api_url, token, policy)
        except OSError as e:
            log.warning("aicloud: culling pass failed: %s", e)
        await asyncio.sleep(every)


def main(argv: list[str] | None = None) -> None:
    """The culler as a hub-managed service (it reads $JUPYTERHUB_API_URL and _TOKEN)."""
    parser = argparse.ArgumentParser(prog="python -m aicloud.hub.culling", description=__doc__)
    parser.add_argument("--catalog", required=True, help="the hardware catalog (hardware.yaml)")
    parser.add_argument("--cpu-timeout", type=int, default=DEFAULT_CPU_TIMEOUT)
    parser.add_argument("--gpu-timeout", type=int, default=DEFAULT_GPU_TIMEOUT)
    parser.add_argument("--every", type=float, default=60.0, help="seconds between passes")
    args = parser.parse_args(argv)
    if args.gpu_timeout > args.cpu_timeout:
        parser.error("--gpu-timeout must not be longer than --cpu-timeout")
    logging.basicConfig(
        level=logging.INFO, format="[%(levelname)s %(asctime)s %(name)s] %(message)s"
    )
    policy = CullPolicy(load_catalog(args.catalog), args.cpu_timeout, args.gpu_timeout)
    api_url = os.environ["JUPYTERHUB_API_URL"]
    token = os.environ["JUPYTERHUB_API_TOKEN"]
    # the hub stops its services with SIGINT, which a hub run in the background ignores
    signal.signal(signal.SIGINT, signal.default_int_handler)
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(run(api_url, token, policy, args.every))


if __name__ == "__main__":
    main()
