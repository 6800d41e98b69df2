"""REST handlers about the service itself: status, resources, and the OpenAPI contract."""

from __future__ import annotations

from pathlib import Path

from jupyter_server.auth.decorator import authorized
from tornado import web

from aicloud._version import __version__
from aicloud.handlers.base import AICloudHandler
from aicloud.resources import machine_resources

API = "/aicloud/api/v1"
OPENAPI = Path(__file__).parent.parent / "api" / "openapi.yaml"


class StatusHandler(AICloudHandler):
    """``/status``: version, home (standalone or hub) and backends."""

    @web.authenticated
    @authorized
    async def get(self):
        """What this job service is."""
        self.write_json(
            {
                "version": __version__,
                "mode": self.settings["aicloud_mode"],
                "user": self.owner,
                "admin": self.caller_is_admin,
                "backends": sorted(self.manager.backends),
            }
        )


class ResourcesHandler(AICloudHandler):
    """``/resources``: CPU, memory, GPUs and TPUs of this machine, and the backends."""

    @web.authenticated
    @authorized
    async def get(self):
        """The machine and the backends."""
        model = machine_resources()
        model["backends"] = [b.describe() for b in self.manager.backends.values()]
        model["quota"] = await self.quota()
        self.write_json(model)

    async def quota(self) -> dict | None:
        """The caller's GPU quota and use; none in the standalone home."""
        return None


class OpenAPIHandler(AICloudHandler):
    """``/openapi.yaml``: the REST contract, as shipped in the package."""

    @web.authenticated
    @authorized
    async def get(self):
        """The OpenAPI 3 document."""
        self.finish(OPENAPI.read_text(), set_content_type="application/yaml")


default_handlers = [
    (rf"{API}/status", StatusHandler),
    (rf"{API}/resources", ResourcesHandler),
    (rf"{API}/openapi.yaml", OpenAPIHandler),
]
