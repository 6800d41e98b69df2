"""The local spawner draws server ports below the ephemeral range (JupyterHub's race)."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from aicloud import ports


def test_ports_come_from_below_the_ephemeral_range():
    low, high = ports.PORT_RANGE
    ephemeral = Path("/proc/sys/net/ipv4/ip_local_port_range").read_text()
    ephemeral_low = int(ephemeral.split()[0])
    assert high < ephemeral_low
    for _ in range(20):
        port = ports.free_port("127.0.0.1")
        assert low <= port <= high
        with socket.socket() as s:
            s.bind(("127.0.0.1", port))  # free indeed


def test_a_taken_port_is_skipped(monkeypatch):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        busy = taken.getsockname()[1]
        taken.listen()
        other = ports.free_port("127.0.0.1")
        draws = iter([busy, busy, other])
        monkeypatch.setattr(ports.random, "randint", lambda a, b: next(draws))
        assert ports.free_port("127.0.0.1") == other


def test_no_free_port_is_an_error(monkeypatch):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        busy = taken.getsockname()[1]
        monkeypatch.setattr(ports.random, "randint", lambda a, b: busy)
        with pytest.raises(RuntimeError, match="no free port in 20000-32767"):
            ports.free_port("127.0.0.1", tries=3)
