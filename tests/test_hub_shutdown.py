"""Stopping the hub stops its services and servers, also when it was started as a shell's
background job (SIGINT ignored, which its children inherit): the hub stops them with SIGINT."""

from __future__ import annotations

import time

from tests.hub_helpers import LocalHub


def test_the_hub_stops_its_service_and_servers_by_itself(tmp_path):
    hub = LocalHub(state=tmp_path / "hub", sigint_ignored=True)
    hub.start()
    try:
        assert hub.spawn("sam", {"profile": "cpu-small"}).status_code in (201, 202)
    finally:
        started = time.monotonic()
        outlived = hub.stop()
    took = time.monotonic() - started
    assert outlived == [], outlived  # nothing the test helper had to end itself
    assert took < 25, took  # JupyterHub waits 10 s for a service that ignores SIGINT
