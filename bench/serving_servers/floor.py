"""The floor: the least an HTTP server can do, to show that the load generator is not the limit.

An asyncio protocol that reads each request (head and ``Content-Length`` body) and answers one
fixed Open Inference Protocol response: no JSON parsing, no model, no checks. Whatever
req/s the client reaches here is a ceiling no real server on this machine can pass.

    python floor.py PORT
"""

from __future__ import annotations

import asyncio
import sys

BODY = (
    b'{"model_name":"mlp","outputs":[{"name":"output","datatype":"FP32","shape":[1,8],'
    b'"data":[0,0,0,0,0,0,0,0]}]}'
)
RESPONSE = (
    b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
    b"Content-Length: " + str(len(BODY)).encode() + b"\r\n\r\n" + BODY
)
HEALTH = b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"


class Floor(asyncio.Protocol):
    """One connection: answer every complete request in the buffer."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport
        self.buffer = b""

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        while True:
            end = self.buffer.find(b"\r\n\r\n")
            if end < 0:
                return
            head = self.buffer[:end].lower()
            length = 0
            marker = head.find(b"content-length:")
            if marker >= 0:
                length = int(head[marker + 15 :].split(b"\r\n", 1)[0])
            if len(self.buffer) < end + 4 + length:
                return
            self.buffer = self.buffer[end + 4 + length :]
            self.transport.write(RESPONSE if head.startswith(b"post") else HEALTH)


async def main(port: int) -> None:
    server = await asyncio.get_running_loop().create_server(Floor, "127.0.0.1", port)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1])))
