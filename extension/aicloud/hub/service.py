"""The hub home of the job service: a JupyterHub-managed service, ``python -m aicloud.hub.service``.

It is a Jupyter server that loads only this extension (no JupyterLab, no kernels) at the
service's prefix (``/services/aicloud/``). Requests are authenticated with ``HubOAuth``:
a hub token or the service's OAuth cookie, held by a user with
``access:services!service=aicloud``. Each user sees and touches only their own jobs and
schedules; a user whose token holds ``custom:aicloud:admin`` sees all. Schedules live here,
so they keep firing while a user's server is stopped or culled.
"""

from __future__ import annotations

import importlib.metadata
import os
import signal
import sys
from urllib.parse import urlparse

import jupyterhub
from jupyter_server.serverapp import ServerApp
from traitlets import Bool, Int, Unicode, default

from aicloud.app import AICloudApp
from aicloud.catalog import Catalog, load_catalog
from aicloud.handlers import default_handlers
from aicloud.handlers.jobs import JobCollectionHandler
from aicloud.handlers.schedules import ScheduleCollectionHandler
from aicloud.handlers.service import ResourcesHandler, StatusHandler
from aicloud.hub import SERVICE_NAME
from aicloud.hub.auth import is_admin
from aicloud.hub.quota import (
    ACTIVE_JOB_STATUSES,
    GPUUsage,
    HubQuota,
    fetch_hub_user,
    jobs_gpus,
    servers_gpus,
)
from aicloud.hub.tokens import HubTokens, RevokedTokens, WithJobTokens

#: Handlers whose POST creates something the caller will own.
_CREATORS = (JobCollectionHandler, ScheduleCollectionHandler)


class HubUserMixin:
    """Makes ``owner`` the calling hub user (None, meaning anyone, for admins' reads)."""

    @property
    def owner(self) -> str | None:
        """The caller's name; None for an admin, except when creating or asking who they are."""
        user = self.current_user
        creating = self.request.method == "POST" and isinstance(self, _CREATORS)
        if is_admin(user) and not creating and not isinstance(self, StatusHandler):
            return None
        return user.username

    @property
    def caller(self) -> str:
        """The calling hub user's name."""
        return self.current_user.username

    @property
    def caller_is_admin(self) -> bool:
        """Whether the caller holds the aicloud admin scope."""
        return is_admin(self.current_user)

    async def hub_user(self) -> dict:
        """The hub's model of the caller (groups, running servers), read with the service token."""
        hub_auth = self.identity_provider.hub_auth
        return await fetch_hub_user(
            hub_auth.api_url, hub_auth.api_token, self.current_user.username
        )

    def gpu_usage(self, catalog: Catalog, hub_user: dict) -> GPUUsage:
        """GPUs the caller holds in running servers and active jobs."""
        jobs = self.manager.store.active_jobs(ACTIVE_JOB_STATUSES, owner=hub_user["name"])
        return GPUUsage(
            servers=servers_gpus(catalog, hub_user), jobs=jobs_gpus(catalog, (j.spec for j in jobs))
        )


class HubResourcesHandler(HubUserMixin, ResourcesHandler):
    """``/resources`` in the hub: with the caller's GPU quota and the GPUs they hold."""

    async def quota(self) -> dict | None:
        """Limit (None: unlimited), its groups, and GPUs in use; None without a catalog."""
        catalog: Catalog | None = self.settings.get("aicloud_catalog")
        if catalog is None:
            return None
        hub_user = await self.hub_user()
        groups = sorted(set(hub_user.get("groups") or []))
        limit = catalog.quota_for(groups)
        usage = self.gpu_usage(catalog, hub_user)
        return {
            "limit": limit,
            "groups": [
                g for g in groups if limit is not None and catalog.gpu_quota.get(g) == limit
            ],
            "used": usage.total,
            "servers": usage.servers,
            "jobs": usage.jobs,
        }


def hub_handlers() -> list[tuple]:
    """The REST API's routes, with handlers that act for the calling hub user."""
    routes = []
    for pattern, handler, *rest in default_handlers:
        if handler is ResourcesHandler:
            wrapped = HubResourcesHandler
        else:
            wrapped = type(handler.__name__, (HubUserMixin, handler), {})
        routes.append((pattern, wrapped, *rest))
    return routes


class AICloudHubApp(AICloudApp):
    """The job service as a hub service: per-user ownership, the catalog, hub mode."""

    name = "aicloud_hub"
    load_other_extensions = False

    catalog_path = Unicode(
        config=True,
        help="The hardware catalog (hardware.yaml) for GPU quotas on job submission "
        "(default: $AICLOUD_CATALOG; empty: no quota).",
    )

    job_tokens = Bool(
        True,
        config=True,
        help="Give each job attempt a hub token of its owner (AICLOUD_TOKEN), limited to "
        "calling this service, so that jobs (scheduled notebooks, %%aicloud cells, the CLI) can "
        "call the service back while the owner's server is stopped. Needs the 'tokens' scope "
        "in the service's role. False: jobs get the service's URL but no credentials.",
    )
    job_token_lifetime = Int(
        86400,
        min=60,
        config=True,
        help="Longest life, in seconds, of a job attempt's token (its expires_in). An attempt "
        "with a timeout gets the timeout plus 5 minutes, if shorter. Tokens are revoked when "
        "their attempt ends.",
    )

    @default("catalog_path")
    def _default_catalog_path(self) -> str:
        return os.environ.get("AICLOUD_CATALOG", "")

    def initialize_settings(self) -> None:
        """The standalone settings, then hub mode and the catalog.

        Users' webhooks may not reach internal addresses (the hub's API, the cloud's metadata
        endpoint) unless the operator set ``Notifier.allow_internal_webhooks`` otherwise.
        """
        if "allow_internal_webhooks" not in self.config.Notifier:
            self.config.Notifier.allow_internal_webhooks = False
        super().initialize_settings()
        catalog = load_catalog(self.catalog_path) if self.catalog_path else None
        self.settings.update(aicloud_mode="hub", aicloud_owner=None, aicloud_catalog=catalog)
        if catalog is not None:  # every job the service makes passes the GPU quota
            hub_auth = self.serverapp.identity_provider.hub_auth
            self.settings["aicloud_manager"].quota = HubQuota(
                catalog, lambda name: fetch_hub_user(hub_auth.api_url, hub_auth.api_token, name)
            )
        if self.job_tokens:
            self._issue_job_tokens(self.settings["aicloud_manager"])
        self.log.info(
            "aicloud hub service: JupyterHub %s (package %s) at %s",
            jupyterhub.__version__,
            importlib.metadata.version("jupyterhub"),
            os.path.dirname(jupyterhub.__file__),
        )

    def _issue_job_tokens(self, manager) -> None:
        """Attempts get a hub token of their job's owner (see hub.tokens), on the backends
        that hand a plan's environment to its processes (the Kubernetes one does not yet)."""
        hub_auth = self.serverapp.identity_provider.hub_auth
        revoked = RevokedTokens(
            keep_seconds=max(hub_auth.cache_max_age + 60, self.job_token_lifetime)
        )
        self.settings["aicloud_revoked_tokens"] = revoked  # read by HubServiceIdentityProvider
        tokens = HubTokens(hub_auth.api_url, hub_auth.api_token, self.log)
        manager.backends = {
            name: WithJobTokens(
                backend,
                tokens,
                revoked,
                owner_of=lambda job_id: manager.store.get_job(job_id).owner,
                lifetime=self.job_token_lifetime,
            )
            if backend.passes_environment
            else backend
            for name, backend in manager.backends.items()
        }

    def _service_env(self) -> dict[str, str]:
        """Jobs get the service URL but no credentials of the service's own."""
        env = super()._service_env()
        env.pop("AICLOUD_TOKEN", None)
        return env

    def initialize_handlers(self) -> None:
        """Register the REST API with hub-user handlers."""
        self.handlers.extend(hub_handlers())


def _jupyter_server_extension_points():
    return [{"module": "aicloud.hub.service", "app": AICloudHubApp}]


class AICloudHubServer(ServerApp):
    """A Jupyter server that loads the aicloud hub extension and nothing else."""

    name = "aicloud-hub-service"
    #: Only what the service itself needs of Jupyter's own REST API: no contents, files,
    #: kernels, terminals or sessions, which every hub user could otherwise drive inside the
    #: service (its process, its account, the homes it can read).
    default_services = ("api", "auth", "security")

    def find_server_extensions(self) -> None:
        """Ignore extensions enabled in Jupyter's config paths: only ours runs here."""

    def init_signal(self) -> None:
        """Stop at once on SIGINT, the signal the hub stops its services with: no "Shutdown
        this Jupyter server?" prompt on a terminal, and no deaf service when it was started
        with SIGINT ignored (a hub run in the background), which cost every stop 30 s."""
        super().init_signal()
        signal.signal(signal.SIGINT, self._signal_stop)


def service_argv(environ: dict[str, str]) -> list[str]:
    """Server options from the variables JupyterHub gives a managed service."""
    url = urlparse(environ["JUPYTERHUB_SERVICE_URL"])
    prefix = environ.get("JUPYTERHUB_SERVICE_PREFIX", f"/services/{SERVICE_NAME}/")
    return [
        f"--ServerApp.ip={url.hostname}",
        f"--ServerApp.port={url.port or 80}",
        f"--ServerApp.base_url={prefix}",
        "--ServerApp.port_retries=0",
        "--ServerApp.open_browser=False",
        "--ServerApp.allow_root=True",
        "--ServerApp.identity_provider_class=aicloud.hub.auth.HubServiceIdentityProvider",
        "--ServerApp.authorizer_class=aicloud.hub.auth.HubServiceAuthorizer",
    ]


def main(argv: list[str] | None = None) -> None:
    """Run the service; extra arguments are Jupyter server / aicloud options."""
    argv = sys.argv[1:] if argv is None else argv
    # Keep the service's hub token out of the environment that jobs inherit.
    token = os.environ.pop("JUPYTERHUB_API_TOKEN", "") or os.environ.pop("JPY_API_TOKEN", "")
    os.environ.pop("JPY_API_TOKEN", None)
    app = AICloudHubServer.instance(
        jpserver_extensions={"aicloud.hub.service": True, "aicloud": False}
    )
    app.config.HubOAuth.api_token = token
    # As in jupyterhub-singleuser: tornado's own XSRF check runs before authentication and
    # cannot tell token requests apart; Jupyter's check (after authentication) stays on.
    app.config.ServerApp.tornado_settings = {"xsrf_cookies": False}
    app.initialize([*service_argv(os.environ), *argv])
    app.start()


if __name__ == "__main__":
    main()
