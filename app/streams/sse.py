"""GET /api/stream: the user's events as Server-Sent Events.

Streams are written here rather than through sse-starlette's EventSourceResponse, which gives
each connection a task group of four tasks (the stream, a ping timer, a disconnect listener, a
shutdown listener), a lock, and a cancel scope and an encode per event: on a node holding
10,000 connections that is most of its memory and of its CPU per delivery. Here a connection
is the coroutine that writes what the hub yields, and one task that waits for the client to
leave; the hub's heartbeat stands in for the ping timer, and one watcher per process for the
shutdown listeners. Event data is single-line JSON (msgspec escapes newlines), so no line
splitting is needed, and the payload shared by every recipient is copied into the frame, not
re-encoded.

A client that stops reading is cut after `send_timeout_seconds` (its hub subscription has
long since dropped its buffer and will catch up from the store if it comes back).

On SIGTERM the server's shutdown is seen by sse-starlette's process-wide watcher (it finds
uvicorn's `should_exit`, checked twice a second); `end_streams_on_exit` then closes the hub,
which ends every stream, and each response ends cleanly with a last `retry:` hint, so
EventSource comes back (through the load balancer, to another node) and resumes from its
Last-Event-ID. A response still not finished when the server's grace period ends (a client
that does not read) is cancelled by uvicorn.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import AsyncGenerator
from contextlib import aclosing

import anyio
from sse_starlette import EventSourceResponse
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from herald_server.core.hub import Hub
from herald_server.core.render import HEARTBEAT, Frame
from herald_server.services import services_of
from herald_server.streams._connect import resume_cursor, stream_principal

log = logging.getLogger(__name__)

HEADERS = [
    (b"content-type", b"text/event-stream; charset=utf-8"),
    (b"cache-control", b"no-store"),
    # nginx and friends buffer responses unless told not to.
    (b"x-accel-buffering", b"no"),
]
PING = b": ping\n\n"


def encode(frame: Frame) -> bytes:
    if frame is HEARTBEAT:
        return PING
    head = (
        f"event: {frame.event}\n"
        if frame.id is None
        else (f"id: {frame.id}\nevent: {frame.event}\n")
    )
    return f"{head}data: {frame.data}\n\n".encode()


class EventStream(Response):
    """One SSE response: the frames of one hub stream, written until they end, the client
    leaves, or a write waits longer than `send_timeout`."""

    def __init__(
        self, frames: AsyncGenerator[Frame, None], hub: Hub, retry_ms: int, send_timeout: float
    ) -> None:
        self.status_code = 200
        self.background = None
        self.raw_headers = list(HEADERS)
        self._frames = frames
        self._hub = hub
        self._retry_ms = retry_ms
        self._send_timeout = send_timeout

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["method"] == "HEAD":
            # Starlette answers HEAD on GET routes: the headers, never an endless body.
            await send({"type": "http.response.start", "status": 200, "headers": self.raw_headers})
            await send({"type": "http.response.body", "body": b"", "more_body": False})
            return
        async with aclosing(self._frames) as frames, anyio.create_task_group() as tasks:
            tasks.start_soon(_cancel_on_disconnect, receive, tasks.cancel_scope)
            await send({"type": "http.response.start", "status": 200, "headers": self.raw_headers})
            written = await self._write(send, f": herald\nretry: {self._retry_ms}\n\n".encode())
            if written:
                async for frame in frames:
                    written = await self._write(send, encode(frame))
                    if not written:
                        break
            if written and self._hub.closed:
                # Spread the reconnections of every client of this node over one retry period.
                retry = self._retry_ms + random.randrange(self._retry_ms + 1)  # noqa: S311
                farewell = f": node shutting down, reconnect\nretry: {retry}\n\n"
                await self._write(send, farewell.encode())
            if written:
                await send({"type": "http.response.body", "body": b"", "more_body": False})
            tasks.cancel_scope.cancel()

    async def _write(self, send: Send, chunk: bytes) -> bool:
        """Whether the chunk was handed to the server in time; a client that stopped reading
        makes the server's send wait for its socket to drain."""
        # asyncio's timeout, not anyio's cancel scope: this runs once per delivered event.
        try:
            async with asyncio.timeout(self._send_timeout):
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
        except TimeoutError:
            log.info("stream cut: the client read nothing for %s s", self._send_timeout)
            return False
        return True


async def _cancel_on_disconnect(receive: Receive, scope: anyio.CancelScope) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass
    scope.cancel()


async def end_streams_on_exit(hub: Hub) -> None:
    """Close the hub as soon as the server begins to shut down, long before the app's
    lifespan hears of it (the server first waits for open connections to finish)."""
    # The one shared watcher that every EventSourceResponse would otherwise wait on.
    await EventSourceResponse._listen_for_exit_signal()
    hub.close()


async def stream(request: Request) -> Response:
    found = services_of(request)
    caller = await stream_principal(request)
    cursor = resume_cursor(request)
    settings = found.settings
    admission = found.hub.admit(caller.sub)
    frames = found.hub.stream(
        caller.sub, cursor, caller.expires_at, admission, heartbeat=settings.heartbeat_seconds
    )
    return EventStream(frames, found.hub, settings.sse_retry_ms, settings.send_timeout_seconds)


routes = [Route("/api/stream", stream, methods=["GET"])]
