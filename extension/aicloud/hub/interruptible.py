"""``python -m aicloud.hub.interruptible MODULE ARGS...``: run ``python -m MODULE ARGS...`` with
SIGINT's default action back.

JupyterHub stops its managed services with SIGINT, and waits for them. A hub started as a
shell's background job (a CI step, ``make up &``) ignores SIGINT, and its services inherit
that; ``jupyterhub-idle-culler`` then never stops, and neither does the hub's shutdown.
"""

from __future__ import annotations

import runpy
import signal
import sys


def main() -> None:
    if len(sys.argv) < 2:
        sys.exit("usage: python -m aicloud.hub.interruptible MODULE [ARGS...]")
    module, sys.argv = sys.argv[1], sys.argv[1:]
    signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        runpy.run_module(module, run_name="__main__", alter_sys=True)
    except KeyboardInterrupt:  # the hub asked it to stop
        sys.exit(0)


if __name__ == "__main__":
    main()
