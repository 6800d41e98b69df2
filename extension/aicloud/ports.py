"""Ports that a process binds a while after they are chosen (a server, a TF worker).

They are drawn below Linux's ephemeral ports (32768-60999), which every ``bind(0)`` and every
outgoing connection on the machine draws from: a port found free with ``bind(0)`` and let go
can be taken by anything before its process binds it.
"""

from __future__ import annotations

import random
import socket

PORT_RANGE = (20000, 32767)


def free_port(ip: str = "", tries: int = 200) -> int:
    """A port in :data:`PORT_RANGE` that is free on ``ip`` now."""
    for _ in range(tries):
        port = random.randint(*PORT_RANGE)
        with socket.socket() as probe:
            try:
                probe.bind((ip, port))
            except OSError:
                continue
            return port
    raise RuntimeError(f"no free port in {PORT_RANGE[0]}-{PORT_RANGE[1]}")
