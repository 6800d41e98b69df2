"""Per-group GPU quotas that count a user's notebook servers and jobs together.

The catalog's ``gpu_quota`` maps hub groups to the most GPUs (whole devices or MIG slices) one
user of that group may hold at once; a user in several groups gets the largest. Servers hold
the GPUs of their profile while they run; jobs hold theirs while queued, starting or running.

The hub checks the quota before a server starts (:mod:`aicloud.hub.profiles`). The service
checks it for every job it makes, whatever makes it (``POST /jobs``, a rerun, a schedule's
tick, a run now): :class:`HubQuota` is the job manager's :class:`~aicloud.manager.Quota`, and
the count of the user's jobs is taken under a per-user lock in the transaction that inserts
the job, so two submissions at once cannot both pass. The GPUs of servers come from the hub
at that moment; a server and a job started at the same instant are checked apart.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from aicloud.catalog import Catalog, CatalogError
from aicloud.errors import AICloudError
from aicloud.manager import Quota
from aicloud.spec import JobSpec
from aicloud.store.store import ACTIVE, Admission

ACTIVE_JOB_STATUSES = ACTIVE


class QuotaExceeded(AICloudError):
    """The request would take the user past the GPU quota of their groups."""

    status = 403


class HubUnavailable(AICloudError):
    """The hub did not describe a user (their groups and servers decide the quota)."""

    status = 502


@dataclass(frozen=True)
class GPUUsage:
    """GPUs a user holds now, by where they are held."""

    servers: int = 0
    jobs: int = 0

    @property
    def total(self) -> int:
        """All GPUs held."""
        return self.servers + self.jobs


def profile_gpus(catalog: Catalog, slug: str | None) -> int:
    """GPUs one pod of profile ``slug`` holds (the default profile when ``slug`` is empty)."""
    if not slug:
        default = next((p for p in catalog.profiles if p.default), catalog.profiles[0])
        return default.gpus
    try:
        return catalog.get(slug).gpus
    except CatalogError:
        return 0


def server_gpus(catalog: Catalog, user_options: dict[str, Any] | None) -> int:
    """GPUs a server started with ``user_options`` holds."""
    return profile_gpus(catalog, (user_options or {}).get("profile"))


def job_gpus(catalog: Catalog | None, spec: dict[str, Any]) -> int:
    """GPUs a job spec (its JSON form) holds: NVIDIA accelerators, or its profile's GPUs."""
    resources = spec.get("resources") or {}
    nodes = int(resources.get("nodes") or 1)
    accelerator = resources.get("accelerator") or ""
    if accelerator.startswith("nvidia.com/"):
        return nodes * int(resources.get("accelerator_count") or 0)
    if resources.get("profile") and catalog is not None:
        return nodes * profile_gpus(catalog, resources["profile"])
    return 0


def jobs_gpus(catalog: Catalog | None, specs: Iterable[dict[str, Any]]) -> int:
    """GPUs held by the active jobs whose specs are given."""
    return sum(job_gpus(catalog, spec) for spec in specs)


def check_gpu_quota(
    catalog: Catalog, user: str, groups: Iterable[str], usage: GPUUsage, requested: int, what: str
) -> None:
    """Raise :class:`QuotaExceeded` if ``requested`` more GPUs would pass the user's quota."""
    if requested <= 0:
        return
    groups = sorted(set(groups))
    limit = catalog.quota_for(groups)
    if limit is None or usage.total + requested <= limit:
        return
    quota_groups = [g for g in groups if catalog.gpu_quota.get(g) == limit]
    raise QuotaExceeded(
        f"GPU quota: {what} needs {requested} GPU(s), but {user} already holds {usage.total} "
        f"({usage.servers} in servers, {usage.jobs} in jobs) of the {limit} allowed to group "
        f"{', '.join(quota_groups)}; stop a server or cancel a job first"
    )


def servers_gpus(catalog: Catalog, hub_user: dict[str, Any]) -> int:
    """GPUs held by the running servers of the hub's user model ``hub_user``."""
    return sum(
        server_gpus(catalog, server.get("user_options"))
        for server in (hub_user.get("servers") or {}).values()
    )


async def fetch_hub_user(api_url: str, api_token: str, name: str) -> dict[str, Any]:
    """The hub's model of user ``name`` (groups, servers), read with the service's token."""
    from tornado.httpclient import AsyncHTTPClient, HTTPClientError, HTTPRequest

    url = f"{api_url.rstrip('/')}/users/{quote(name, safe='')}"
    request = HTTPRequest(url, headers={"Authorization": f"token {api_token}"})
    try:
        response = await AsyncHTTPClient().fetch(request)
    except HTTPClientError as e:
        raise HubUnavailable(f"the hub did not describe user {name}: {e.code}") from None
    except OSError as e:
        raise HubUnavailable(f"the hub did not describe user {name}: {e}") from None
    return json.loads(response.body)


class HubQuota(Quota):
    """The catalog's GPU quota, as the job manager's gate (``JobManager.quota``).

    ``hub_user(name)`` is a coroutine giving the hub's model of a user: their groups and
    their servers' ``user_options``. A job that asks for no GPU, or a user without a limit,
    is let in without a lock.
    """

    def __init__(self, catalog: Catalog, hub_user: Callable[[str], Awaitable[dict[str, Any]]]):
        self.catalog = catalog
        self.hub_user = hub_user

    async def admission(self, spec: JobSpec, owner: str) -> Admission | None:
        """The check of ``owner``'s new job: their servers now, their jobs under the lock."""
        requested = job_gpus(self.catalog, spec.model_dump(mode="json"))
        if not requested:
            return None
        user = await self.hub_user(owner)
        groups = user.get("groups") or []
        if self.catalog.quota_for(sorted(set(groups))) is None:
            return None
        servers = servers_gpus(self.catalog, user)

        def admit(active_specs: list[dict]) -> None:
            usage = GPUUsage(servers=servers, jobs=jobs_gpus(self.catalog, active_specs))
            check_gpu_quota(self.catalog, owner, groups, usage, requested, "job")

        return admit
