"""The hardware catalog as spawner profiles: KubeSpawner's ``profile_list``, and its checks.

:class:`HubProfiles` is what a ``jupyterhub_config.py`` uses:

- ``profiles.profile_list`` is a callable ``profile_list`` for KubeSpawner that offers each user
  the catalog entries their hub groups allow (admins see all);
- ``profiles.apply_user_options`` is the ``Spawner.apply_user_options`` hook (JupyterHub >= 5.3):
  it refuses an unknown profile or option with a 400 that lists the allowed values (KubeSpawner
  alone answers 500), enforces the GPU quota, and tells the server what it was given;
- ``profiles.check(spawner_class)`` runs when the hub starts: an override key that is not a
  trait of the spawner stops start-up with a message naming it (KubeSpawner would silently set
  a plain attribute, and the pod would get no GPU).
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

from tornado import web

from aicloud.catalog import Catalog, CatalogError, Profile, load_catalog, pod_resources
from aicloud.hub.quota import (
    ACTIVE_JOB_STATUSES,
    GPUUsage,
    QuotaExceeded,
    check_gpu_quota,
    jobs_gpus,
    server_gpus,
)
from aicloud.spec import MEMORY, MEMORY_UNITS

PROFILE_OPTION = "profile"


def memory_bytes(quantity: str) -> int:
    """A Kubernetes quantity (``16Gi``, ``2G``) in bytes, as JupyterHub's byte traits want."""
    match = MEMORY.match(quantity)
    if match is None:
        raise CatalogError(f"memory {quantity!r} is not a quantity like 16Gi")
    return int(float(match["number"]) * MEMORY_UNITS[match["unit"]])


def profile_environment(profile: Profile) -> dict[str, str]:
    """What the server (and its kernels) learn about the hardware they were given."""
    env = {"AICLOUD_PROFILE": profile.slug}
    if profile.accelerator:
        env["AICLOUD_ACCELERATOR"] = profile.accelerator
        env["AICLOUD_ACCELERATOR_COUNT"] = str(profile.accelerator_count)
    if profile.tpu:
        env["AICLOUD_TPU_TOPOLOGY"] = profile.tpu.topology
    return env


def kubespawner_override(catalog: Catalog, profile: Profile) -> dict[str, Any]:
    """KubeSpawner traits for ``profile``: resources, placement, image and environment."""
    resources = pod_resources(profile)
    override: dict[str, Any] = {"environment": profile_environment(profile)}
    image = catalog.image_for(profile)
    if image:
        override["image"] = image
    if profile.cpu is not None:
        override["cpu_limit"] = override["cpu_guarantee"] = profile.cpu
    if profile.memory is not None:
        override["mem_limit"] = override["mem_guarantee"] = memory_bytes(profile.memory)
    extended = {k: v for k, v in resources["limits"].items() if "/" in k}
    if extended:
        override["extra_resource_limits"] = extended
        override["extra_resource_guarantees"] = dict(extended)
    if resources["node_selector"]:
        override["node_selector"] = resources["node_selector"]
    if resources["tolerations"]:
        override["tolerations"] = resources["tolerations"]
    override.update(profile.kubespawner_override)
    return override


def profile_entry(catalog: Catalog, profile: Profile) -> dict[str, Any]:
    """One KubeSpawner ``profile_list`` entry."""
    return {
        "slug": profile.slug,
        "display_name": profile.display_name,
        "description": profile.description,
        "default": profile.default,
        "kubespawner_override": kubespawner_override(catalog, profile),
    }


def check_overrides(catalog: Catalog, spawner_class: type) -> None:
    """Raise :class:`CatalogError` naming any override key that ``spawner_class`` lacks."""
    traits = set(spawner_class.class_trait_names())
    problems = []
    for profile in catalog.profiles:
        for key in profile.kubespawner_override:
            if key not in traits:
                problems.append(
                    f"profiles[{profile.slug}].kubespawner_override: {key!r} is not a trait "
                    f"of {spawner_class.__name__}"
                )
    if problems:
        raise CatalogError("; ".join(problems))


def allowed_profiles(catalog: Catalog, groups: Iterable[str], admin: bool) -> list[Profile]:
    """The profiles a user in ``groups`` may pick, the default first if it is among them."""
    profiles = catalog.for_groups(set(groups), admin=admin)
    return sorted(profiles, key=lambda p: not p.default)


def choose_profile(profiles: list[Profile], user_options: dict[str, Any] | None) -> Profile:
    """The profile ``user_options`` selects, or a 400 that lists the allowed values."""
    options = user_options or {}
    unknown = sorted(set(options) - {PROFILE_OPTION})
    if unknown:
        raise web.HTTPError(
            400,
            f"user_options: unknown option(s) {', '.join(map(repr, unknown))}; "
            f"allowed: {PROFILE_OPTION}",
        )
    if not profiles:
        raise web.HTTPError(403, "no hardware profile is available to you")
    slug = options.get(PROFILE_OPTION)
    if slug in (None, ""):
        return next((p for p in profiles if p.default), profiles[0])
    for profile in profiles:
        if profile.slug == slug:
            return profile
    allowed = ", ".join(p.slug for p in profiles)
    raise web.HTTPError(400, f"profile: {slug!r} is not one of the allowed values: {allowed}")


def _user_facts(spawner) -> tuple[str, list[str], bool]:
    user = spawner.user
    return user.name, [g.name for g in user.groups], bool(user.admin)


class HubProfiles:
    """The catalog as seen by the hub: profile list, user-options hook, start-up checks.

    ``job_store_url`` is the SQLAlchemy URL of the aicloud service's store; when given, the
    quota counts the user's active jobs as well as their servers, read through the store
    (:meth:`JobStore.active_jobs`), never with SQL of its own.
    """

    def __init__(self, catalog_path: str | Path, job_store_url: str | None = None):
        self.catalog_path = Path(catalog_path)
        self.catalog = load_catalog(self.catalog_path)
        self.job_store_url = job_store_url
        self._store = None

    def check(self, spawner_class: type) -> None:
        """Start-up check: stop (raise) on an override key that is not a spawner trait."""
        check_overrides(self.catalog, spawner_class)

    def profiles_for(self, spawner) -> list[Profile]:
        """The catalog entries this spawner's user may pick."""
        _, groups, admin = _user_facts(spawner)
        return allowed_profiles(self.catalog, groups, admin)

    def profile_list(self, spawner) -> list[dict[str, Any]]:
        """KubeSpawner's callable ``profile_list``: the user's profiles, as entries."""
        return [profile_entry(self.catalog, p) for p in self.profiles_for(spawner)]

    def apply_user_options(self, spawner, user_options: dict[str, Any] | None) -> None:
        """``Spawner.apply_user_options``: check the choice and the quota, set the env."""
        profile = choose_profile(self.profiles_for(spawner), user_options)
        self.check_quota(spawner, profile)
        spawner.environment = {**spawner.environment, **profile_environment(profile)}

    def check_quota(self, spawner, profile: Profile) -> None:
        """Refuse (403) a server that would take the user past their group's GPU quota."""
        if not profile.gpus:
            return
        name, groups, _ = _user_facts(spawner)
        servers = sum(
            server_gpus(self.catalog, other.user_options)
            for other in spawner.user.spawners.values()
            if other is not spawner and other.active
        )
        usage = GPUUsage(servers=servers, jobs=self._job_gpus(name))
        try:
            check_gpu_quota(
                self.catalog, name, groups, usage, profile.gpus, f"profile {profile.slug}"
            )
        except QuotaExceeded as e:
            raise web.HTTPError(e.status, e.message) from None

    def _job_gpus(self, owner: str) -> int:
        if not self.job_store_url:
            return 0
        from aicloud.store import JobStore

        if self._store is None:
            self._store = JobStore.from_url(self.job_store_url)
        jobs = self._store.active_jobs(ACTIVE_JOB_STATUSES, owner=owner)
        return jobs_gpus(self.catalog, (job.spec for job in jobs))

    def options_form(self, spawner) -> str:
        """An HTML form for spawners without their own (the local spawner): one select."""
        import html

        options = "".join(
            f'<option value="{html.escape(p.slug)}"{" selected" if i == 0 else ""}>'
            f"{html.escape(p.display_name)}</option>"
            for i, p in enumerate(self.profiles_for(spawner))
        )
        return (
            '<label for="aicloud-profile">Hardware</label>'
            f'<select class="form-control" id="aicloud-profile" name="{PROFILE_OPTION}">'
            f"{options}</select>"
        )
