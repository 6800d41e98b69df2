"""Per-group GPU quotas that count a user's notebook servers and jobs together.

The catalog's ``gpu_quota`` maps hub groups to the most GPUs (whole devices or MIG slices) one
user of that group may hold at once; a user in several groups gets the largest. Servers hold
the GPUs of their profile while they run; jobs hold theirs while queued, starting or running.
The hub checks the quota before a server starts and the hub service before a job is accepted.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from aicloud.catalog import Catalog, CatalogError
from aicloud.errors import AICloudError

ACTIVE_JOB_STATUSES = ("queued", "starting", "running")


class QuotaExceeded(AICloudError):
    """The request would take the user past the GPU quota of their groups."""

    status = 403


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
