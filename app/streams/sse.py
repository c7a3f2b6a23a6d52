"""GET /api/stream: the user's events as Server-Sent Events.

Frames are encoded here by hand rather than through sse-starlette's ServerSentEvent: event
data is single-line JSON (msgspec escapes newlines), so no line splitting is needed, and the
payload shared by every recipient is copied into the frame, not re-encoded.
"""

from __future__ import annotations

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

    async def body() -> AsyncIterator[bytes]:
        yield f": herald\nretry: {settings.sse_retry_ms}\n\n".encode()
        async for frame in found.hub.stream(caller.sub, cursor, caller.expires_at):
            yield encode(frame)

    return EventSourceResponse(
        body(),
        ping=settings.heartbeat_seconds,
        send_timeout=settings.send_timeout_seconds,
        # nginx and friends buffer responses unless told not to.
        headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
    )


routes = [Route("/api/stream", stream, methods=["GET"])]
