"""A v2 gRPC server of ``tiny.pt`` (in the cwd) behind the serve jobs' token check, for tests.

Run from a model folder with ``AICLOUD_TEST_TOKEN`` set; prints the bound port, then serves
until SIGTERM. The same parts as a serve job's gRPC port: ModelState, ServingAuth.check and
start_grpc_server, without the REST server around them.
"""

from __future__ import annotations

import asyncio
import os
import signal
from pathlib import Path

from aicloud.inference.auth import ServingAuth
from aicloud.inference.grpc_server import start_grpc_server
from aicloud.inference.options import InferenceOptions
from aicloud.inference.state import ModelState


async def main() -> None:
    options = InferenceOptions(model="tiny.pt", input_shape=[4])
    state = ModelState("tiny", options, Path.cwd())
    state.load()
    auth = ServingAuth([os.environ["AICLOUD_TEST_TOKEN"]])
    server = await start_grpc_server(state, "127.0.0.1", 0, authorize=auth.check)
    print(server.port, flush=True)
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    await stop.wait()
    await server.stop()


if __name__ == "__main__":
    asyncio.run(main())
