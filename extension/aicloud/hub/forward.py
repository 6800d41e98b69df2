"""Forward ``/aicloud/api/...`` from a user's server to the hub service, as that user.

Loaded in hub user servers instead of the standalone job service (the hub configuration runs
``jupyterhub-singleuser`` with ``aicloud`` disabled and ``aicloud.hub.forward`` enabled), so
the sidebar, the magics and the CLI use the same URL in both homes. The forwarded request
carries the server's own ``$JUPYTERHUB_API_TOKEN``, which the hub issues with
``access:services!service=aicloud`` through ``Spawner.server_token_scopes``: the service sees
the server's user, never anyone else. Responses stream through (``logs?follow=true``).
"""

from __future__ import annotations

import json
import os
from urllib.parse import urlparse

from jupyter_server.auth.decorator import authorized
from jupyter_server.base.handlers import APIHandler
from jupyter_server.utils import url_path_join
from tornado import httputil, web
from tornado.httpclient import AsyncHTTPClient, HTTPRequest

from aicloud.client import API_PATH, discover

AUTH_RESOURCE = "aicloud"
PASSED_REQUEST_HEADERS = ("Content-Type", "Accept")
PASSED_RESPONSE_HEADERS = ("Content-Type", "Cache-Control", "Location")
CONNECT_TIMEOUT = 10.0
REQUEST_TIMEOUT = 24 * 3600.0  # followed logs stream for as long as the job runs


def hub_service_url(environ: dict[str, str] | None = None) -> str:
    """The hub service's URL, found as the client finds it inside a hub server."""
    env = dict(os.environ if environ is None else environ)
    env.pop("AICLOUD_URL", None)
    return discover(env).url


class ForwardHandler(APIHandler):
    """Every method under ``/aicloud/api/v1``: sent on to the hub service, answer streamed back."""

    auth_resource = AUTH_RESOURCE

    @web.authenticated
    @authorized
    async def get(self, path: str):
        """Forward a GET."""
        await self._forward(path)

    @web.authenticated
    @authorized
    async def post(self, path: str):
        """Forward a POST."""
        await self._forward(path)

    @web.authenticated
    @authorized
    async def patch(self, path: str):
        """Forward a PATCH."""
        await self._forward(path)

    @web.authenticated
    @authorized
    async def put(self, path: str):
        """Forward a PUT."""
        await self._forward(path)

    @web.authenticated
    @authorized
    async def delete(self, path: str):
        """Forward a DELETE."""
        await self._forward(path)

    async def _forward(self, path: str) -> None:
        service = self.settings["aicloud_hub_service_url"]
        target = url_path_join(service, API_PATH, path)
        if self.request.query:
            target += "?" + self.request.query
        headers = {"Authorization": f"token {self.settings['aicloud_hub_token']}"}
        for name in PASSED_REQUEST_HEADERS:
            if name in self.request.headers:
                headers[name] = self.request.headers[name]
        method = self.request.method
        request = HTTPRequest(
            target,
            method=method,
            headers=headers,
            body=self.request.body if method in ("POST", "PATCH", "PUT") else None,
            allow_nonstandard_methods=True,
            follow_redirects=False,
            connect_timeout=CONNECT_TIMEOUT,
            request_timeout=REQUEST_TIMEOUT,
            header_callback=self._on_header,
            streaming_callback=self._on_chunk,
        )
        try:
            await AsyncHTTPClient().fetch(request, raise_error=False)
        except OSError as e:
            raise web.HTTPError(
                502, f"the aicloud hub service at {service} is unreachable: {e.strerror or e}"
            ) from None
        if not self._finished:
            self.finish()

    def _on_header(self, line: str) -> None:
        if line.startswith("HTTP/"):
            start = httputil.parse_response_start_line(line.strip())
            self.set_status(start.code, start.reason)
            self.clear_header("Content-Type")
            return
        if not line.strip():
            return
        name, _, value = line.partition(":")
        name, value = name.strip(), value.strip()
        if name == "Location":
            value = self._local_location(value)
        if name in PASSED_RESPONSE_HEADERS or name.lower().startswith("x-aicloud-"):
            self.set_header(name, value)

    def _on_chunk(self, chunk: bytes) -> None:
        self.write(chunk)
        self.flush()

    def _local_location(self, location: str) -> str:
        """The service's ``Location`` as a path on this server."""
        service_path = urlparse(self.settings["aicloud_hub_service_url"]).path
        path = urlparse(location).path
        if path.startswith(service_path):
            path = path[len(service_path) :]
        return url_path_join(self.base_url, path)

    def write_error(self, status_code: int, **kwargs) -> None:
        """Errors of the forwarder itself as ``{"message", "reason"}``, like the service's."""
        error = kwargs.get("exc_info", (None, None, None))[1]
        if isinstance(error, web.HTTPError) and error.log_message:
            self.set_header("Content-Type", "application/json")
            message = error.log_message % error.args if error.args else error.log_message
            reason = httputil.responses.get(status_code)
            self.finish(json.dumps({"message": message, "reason": reason}))
            return
        super().write_error(status_code, **kwargs)


def _jupyter_server_extension_points():
    return [{"module": "aicloud.hub.forward"}]


def _load_jupyter_server_extension(serverapp) -> None:
    """Route ``/aicloud/api/v1/...`` of this server to the hub service."""
    service = hub_service_url()
    token = os.environ.get("JUPYTERHUB_API_TOKEN", "")
    webapp = serverapp.web_app
    webapp.settings.update(aicloud_hub_service_url=service, aicloud_hub_token=token)
    pattern = url_path_join(webapp.settings["base_url"], API_PATH, "(.*)")
    webapp.add_handlers(".*$", [(pattern, ForwardHandler)])
    serverapp.log.info("aicloud: forwarding /%s/ to the hub service at %s", API_PATH, service)
