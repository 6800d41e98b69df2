"""A c10d rendezvous store in a process of its own.

Run as ``python -m aicloud.launchers.rendezvous_store --port PORT``.

With the store outside every ``torchrun`` agent (``--rdzv-conf is_host=false``), losing any one
node of an elastic job leaves the rendezvous intact, and the survivors carry on.
"""

from __future__ import annotations

import argparse
import signal
from datetime import timedelta


def main(argv: list[str] | None = None) -> None:
    """Host a TCPStore until SIGTERM."""
    parser = argparse.ArgumentParser(prog="aicloud-rendezvous-store")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args(argv)

    from torch.distributed import TCPStore

    store = TCPStore(
        args.host,
        args.port,
        is_master=True,
        wait_for_workers=False,
        multi_tenant=True,
        timeout=timedelta(hours=24),
    )
    print(f"[aicloud] rendezvous store on {args.host}:{args.port}", flush=True)
    signal.signal(signal.SIGTERM, lambda *_: None)
    signal.pause()
    del store


if __name__ == "__main__":
    main()
