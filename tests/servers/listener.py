"""An HTTP/1.1 endpoint on one loopback address that records who reached it and answers 204:
what the attacker points Herald at (127.0.0.1, standing for Herald's own network) or what
it was allowed to reach instead. Not a webhook receiver: it only counts and keeps heads."""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress


class Listener:
    def __init__(self, host: str, port: int) -> None:
        self.host = host
        self.port = port
        # Every connection accepted (TLS: every completed handshake), whatever followed.
        self.connections = 0
        # The headers of every request, names lowercased.
        self.requests: list[dict[str, str]] = []
        # The TLS server name (SNI) each client asked for.
        self.server_names: list[str | None] = []

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        with suppress(asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError):
            head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1")
            lines = head.split("\r\n")[1:]
            headers = {
                name.strip().lower(): value.strip()
                for name, _, value in (line.partition(":") for line in lines if line)
            }
            await reader.readexactly(int(headers.get("content-length", "0")))
            self.requests.append(headers)
            writer.write(b"HTTP/1.1 204 No Content\r\nconnection: close\r\n\r\n")
            await writer.drain()
        writer.close()

    def note_server_name(self, _: ssl.SSLObject, name: str | None, __: ssl.SSLContext) -> None:
        self.server_names.append(name)


@asynccontextmanager
async def listening(
    host: str, port: int = 0, tls: ssl.SSLContext | None = None
) -> AsyncIterator[Listener]:
    """A Listener on `host` (any 127.x.y.z address is loopback on Linux) and `port`, or a
    free port; with `tls`, behind that server context."""
    listener = Listener(host, port)
    if tls is not None:
        tls.sni_callback = listener.note_server_name
    server = await asyncio.start_server(listener.serve, host, port, ssl=tls)
    listener.port = server.sockets[0].getsockname()[1]
    async with server:
        yield listener
