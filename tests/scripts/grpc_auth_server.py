"""A v2 gRPC server of ``tiny.pt`` (in the cwd) behind the serve jobs' token check, for tests.

Run from a model folder with ``AICLOUD_TEST_TOKEN`` set and a taken port as argument: prints
how binding that port failed, then the port it bound instead, and serves until SIGTERM. The
same parts as a serve job's gRPC port (ModelState, ServingAuth.check, start_grpc_server)
without the REST server around them.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from pathlib import Path

from aicloud.inference.auth import ServingAuth
from aicloud.inference.grpc_server import GrpcBindError, start_grpc_server
from aicloud.inference.options import InferenceOptions
from aicloud.inference.state import ModelState


async def main() -> None:
    options = InferenceOptions(model="tiny.pt", input_shape=[4])
    state = ModelState("tiny", options, Path.cwd())
    state.load()
    auth = ServingAuth([os.environ["AICLOUD_TEST_TOKEN"]])
    try:
        await start_grpc_server(state, "127.0.0.1", int(sys.argv[1]))
        print("bound a taken port", flush=True)
    except GrpcBindError as e:
        print(f"GrpcBindError: {e}", flush=True)
    server = await start_grpc_server(state, "127.0.0.1", 0, authorize=auth.check)
    print(server.port, flush=True)
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    await stop.wait()
    await server.stop()


if __name__ == "__main__":
    asyncio.run(main())
