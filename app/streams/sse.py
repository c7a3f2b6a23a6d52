"""GET /api/stream: the user's events as Server-Sent Events.

Frames are encoded here by hand rather than through sse-starlette's ServerSentEvent: event
data is single-line JSON (msgspec escapes newlines), so no line splitting is needed, and the
payload shared by every recipient is copied into the frame, not re-encoded.

On SIGTERM the server sets the hub's `shutting_down` (sse-starlette's `shutdown_event`, checked
twice a second), the hub ends every stream, and each response ends cleanly with a last
`retry:` hint, so EventSource comes back (through the load balancer, to another node) and
resumes from its Last-Event-ID. A response still not finished after half the grace period (a
client that does not read) is cut.
"""

from __future__ import annotations

import random
from collections.abc import AsyncIterator

from sse_starlette import EventSourceResponse
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from app.core.render import Frame
from app.services import services_of
from app.streams._connect import resume_cursor, stream_principal


def encode(frame: Frame) -> bytes:
    head = (
        f"event: {frame.event}\n"
        if frame.id is None
        else (f"id: {frame.id}\nevent: {frame.event}\n")
    )
    return f"{head}data: {frame.data}\n\n".encode()


async def stream(request: Request) -> Response:
    found = services_of(request)
    caller = await stream_principal(request)
    cursor = resume_cursor(request)
    settings = found.settings
    admission = found.hub.admit(caller.sub)

    async def body() -> AsyncIterator[bytes]:
        yield f": herald\nretry: {settings.sse_retry_ms}\n\n".encode()
        async for frame in found.hub.stream(caller.sub, cursor, caller.expires_at, admission):
            yield encode(frame)
        if found.hub.closed:
            # Spread the reconnections of every client of this node over one retry period.
            retry = settings.sse_retry_ms + random.randrange(settings.sse_retry_ms + 1)  # noqa: S311
            yield f": node shutting down, reconnect\nretry: {retry}\n\n".encode()

    return EventSourceResponse(
        body(),
        ping=settings.heartbeat_seconds,
        send_timeout=settings.send_timeout_seconds,
        # One event for every stream: sse-starlette sets it when the server begins to shut down.
        shutdown_event=found.hub.shutting_down,
        shutdown_grace_period=settings.shutdown_grace_seconds / 2,
        # nginx and friends buffer responses unless told not to.
        headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
    )


routes = [Route("/api/stream", stream, methods=["GET"])]
