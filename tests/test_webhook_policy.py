"""Webhooks cannot reach internal hosts where the service refuses them (the hub service does).

Real HTTP on loopback: a receiver that records POSTs, the real Notifier, the real REST API.
"""

from __future__ import annotations

import asyncio
import ipaddress
import json
import logging
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from aicloud.notify import Notifier
from tests.helpers import api


class Recorder(BaseHTTPRequestHandler):
    received: list[dict] = []

    def do_POST(self):
        self.received.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args):
        pass


@pytest.fixture
def receiver():
    Recorder.received = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), Recorder)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/hooks/s3cret?token=t0p", Recorder.received
    server.shutdown()


BODY = {"event": "succeeded", "job": {"id": "job-1"}}


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:8081/hub/api/users",
        "http://localhost/x",
        "http://[::1]:9/x",
        "http://10.0.0.7/x",
        "http://192.168.1.1/x",
        "http://169.254.169.254/latest/meta-data/",
        "http://0.0.0.0/x",
    ],
)
def test_literal_internal_addresses_are_refused(url):
    notifier = Notifier(allow_internal_webhooks=False)
    with pytest.raises(ValueError, match="webhooks may not go to"):
        notifier.check_url(url)
    Notifier().check_url(url)  # allowed by default (the local service)


def test_allowed_networks_and_public_hosts_pass():
    notifier = Notifier(allow_internal_webhooks=False, allowed_networks=["10.0.0.0/8"])
    notifier.check_url("http://10.0.0.7/x")
    notifier.check_url("https://hooks.example.org/x")  # a name: checked when resolved
    notifier.check_url("http://93.184.216.34/x")


def test_refused_posts_are_not_sent_and_not_logged_with_secrets(receiver, caplog):
    url, received = receiver
    notifier = Notifier(allow_internal_webhooks=False, retries=0)
    with caplog.at_level(logging.WARNING):
        assert asyncio.run(notifier._post(url, BODY)) is False
    assert received == []
    assert "refused" in caplog.text and "s3cret" not in caplog.text and "t0p" not in caplog.text

    allowed = Notifier(allow_internal_webhooks=False, allowed_networks=["127.0.0.0/8"])
    assert asyncio.run(allowed._post(url, BODY)) is True
    assert received == [BODY]


def test_names_are_checked_where_they_resolve(receiver):
    """This machine's own name: refused when it resolves to a non-public address."""
    _, received = receiver
    name = socket.gethostname()
    address = socket.getaddrinfo(name, 80, type=socket.SOCK_STREAM)[0][4][0]
    notifier = Notifier(allow_internal_webhooks=False)
    notifier.check_url(f"http://{name}/x")  # a name passes when saved...
    refusal = asyncio.run(notifier._refusal(f"http://{name}/x"))  # ...and is resolved to send
    if ipaddress.ip_address(address).is_global:
        assert refusal is None
    else:
        assert refusal == f"{name} resolves to internal {address}"


@pytest.fixture
def jp_server_config(jp_server_config):
    """The service as the hub runs it: internal webhooks refused."""
    return {**jp_server_config, "Notifier": {"allow_internal_webhooks": False}}


async def test_rest_answers_400_naming_the_field(jp_fetch):
    spec = {
        "cron": "0 3 * * *",
        "job": {"command": ["true"]},
        "webhook_url": "http://169.254.169.254/latest/meta-data/",
    }
    status, error = await api(jp_fetch, "POST", "schedules", body=spec)
    assert status == 400
    assert error["message"].startswith("webhook_url:") and "internal address" in error["message"]
    spec["webhook_url"] = "https://hooks.example.org/aicloud"
    status, created = await api(jp_fetch, "POST", "schedules", body=spec)
    assert status == 201
    status, error = await api(
        jp_fetch,
        "PATCH",
        "schedules",
        created["id"],
        body={"webhook_url": "http://127.0.0.1:9/x"},
    )
    assert status == 400 and error["message"].startswith("webhook_url:")


def test_a_bad_allowed_network_is_refused_when_configured():
    from traitlets import TraitError

    with pytest.raises(TraitError, match="Notifier.allowed_networks: .*10.0.0.0/33"):
        Notifier(allowed_networks=["10.0.0.0/33"])
