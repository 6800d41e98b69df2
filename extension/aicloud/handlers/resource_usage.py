"""``/resources/usage``: the machine now, and each user's GPUs in use against their quota.

GPUs in use are leases of GPUs that exist (:func:`aicloud.resources.leased_gpus`), so a
machine without a GPU never shows one in use. In the hub (the handler is wrapped with
:class:`aicloud.hub.service.HubUserMixin`) the quota is the catalog's for the user's groups,
the one ``/resources`` and every job submission apply, and running servers hold their
profile's GPUs where a cluster backend runs them; a user sees their own row, an admin every
user's with an active job.
"""

from __future__ import annotations

import asyncio

from jupyter_server.auth.decorator import authorized
from tornado import web

from aicloud.handlers.base import AICloudHandler
from aicloud.handlers.jobs import API
from aicloud.resources import leased_gpus, machine_usage
from aicloud.spec import JobStatus
from aicloud.store import Job

RUNNING = (JobStatus.starting.value, JobStatus.running.value)
CLUSTER_BACKENDS = frozenset({"kubernetes"})


def job_gpus(job: Job, devices: set[int]) -> int:
    """GPUs ``job`` holds now (its latest attempt's lease)."""
    handle = job.attempts[-1].handle if job.attempts else None
    return leased_gpus(job.backend, handle, job.spec, devices)


class ResourceUsageHandler(AICloudHandler):
    """``/resources/usage``."""

    @web.authenticated
    @authorized
    async def get(self):
        """CPU, memory and GPUs of this machine; per user: GPUs in use, quota, running jobs."""
        machine = await asyncio.to_thread(machine_usage)
        devices = {gpu["index"] for gpu in machine["gpus"]}
        jobs = self.manager.store.active_jobs(RUNNING, owner=self.owner)
        owners = sorted({self.caller, *(job.owner for job in jobs)})
        if self.owner is not None:
            owners = [self.owner]
        users = []
        for user in owners:
            mine = [job for job in jobs if job.owner == user]
            quota, servers = await self.quota_of(user)
            users.append(
                {
                    "user": user,
                    "gpus_in_use": servers + sum(job_gpus(job, devices) for job in mine),
                    "gpu_quota": quota,
                    "jobs_running": len(mine),
                }
            )
        self.write_json({**machine, "users": users})

    async def quota_of(self, user: str) -> tuple[int | None, int]:
        """``user``'s GPU quota (None: none) and GPUs their running servers hold."""
        catalog = self.settings.get("aicloud_catalog")
        if catalog is None or not hasattr(self, "identity_provider"):
            return None, 0
        hub_auth = getattr(self.identity_provider, "hub_auth", None)
        if hub_auth is None:
            return None, 0
        from aicloud.hub.quota import fetch_hub_user, servers_gpus

        hub_user = await fetch_hub_user(hub_auth.api_url, hub_auth.api_token, user)
        quota = catalog.quota_for(sorted(set(hub_user.get("groups") or [])))
        on_cluster = CLUSTER_BACKENDS & set(self.manager.backends)
        return quota, servers_gpus(catalog, hub_user) if on_cluster else 0


default_handlers = [(rf"{API}/resources/usage", ResourceUsageHandler)]
