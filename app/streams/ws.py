"""GET /api/ws: the same events as SSE, as JSON frames `{"event","id","data"}`.

The client may send `{"type":"ping"}` (answered with a `pong` frame) and
`{"type":"read","id":"<notification id>"}` (a read, announced to the user's other streams).
A refusal before the stream starts (a bad request or token, an origin not allowed, too many
streams) answers the handshake with its problem document and HTTP status. Close codes: 4001
when the token expires or is revoked (get a new stream token and resume), 1012 when the node
shuts down, 1008 when the client sends more than HERALD_WS_FRAME_RATE frames a second
(bursts of HERALD_WS_FRAME_BURST).
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from typing import Any

import anyio
import msgspec
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream
from starlette.responses import Response
from starlette.routing import WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect

from herald_server import codec
from herald_server.core.hub import Admission
from herald_server.core.params import parse_id
from herald_server.core.render import Frame
from herald_server.errors import Problem, ValidationFailed
from herald_server.models import Principal
from herald_server.services import services_of
from herald_server.streams._connect import check_origin, resume_cursor, stream_principal

TOKEN_EXPIRED = 4001
# RFC 6455 "service restart": reconnect (to another node) and resume.
SERVICE_RESTART = 1012
MAX_CLIENT_FRAME = 4096
# RFC 6455: the client broke a rule of the server's (here: it sent frames too fast).
POLICY_VIOLATION = 1008


def encode(frame: Frame) -> str:
    """`data` is already JSON text, shared by every recipient; splice it in as is."""
    frame_id = "null" if frame.id is None else f'"{frame.id}"'
    return f'{{"event":"{frame.event}","id":{frame_id},"data":{frame.data}}}'


def _error_frame(problem: Problem) -> str:
    return codec.dumps_str({"event": "error", "id": None, "data": problem.document()})


def _queued(accepted: MemoryObjectSendStream[str | None], raw: str | None) -> bool:
    """Whether the frame found room among those waiting to be handled."""
    try:
        accepted.send_nowait(raw)
    except anyio.WouldBlock:
        return False
    return True


class FrameBudget:
    """A token bucket of the frames one client may send: `rate` a second, `burst` at once."""

    def __init__(self, rate: float, burst: int, clock: Callable[[], float] = time.monotonic):
        self.rate = rate
        self.burst = burst
        self._clock = clock
        self._tokens = float(burst)
        self._at = clock()

    def take(self) -> bool:
        now = self._clock()
        self._tokens = min(self.burst, self._tokens + (now - self._at) * self.rate)
        self._at = now
        if self._tokens < 1:
            return False
        self._tokens -= 1
        return True


class _Connection:
    def __init__(self, websocket: WebSocket, caller: Principal) -> None:
        self.websocket = websocket
        self.caller = caller
        self.services = services_of(websocket)
        self.lock = anyio.Lock()
        settings = self.services.settings
        self.budget = FrameBudget(settings.ws_frame_rate, settings.ws_frame_burst)

    async def send(self, text: str) -> None:
        """Bounded like SSE's send_timeout: a client that stops reading is cut."""
        with anyio.fail_after(self.services.settings.send_timeout_seconds):
            async with self.lock:
                await self.websocket.send_text(text)

    async def pump(self, cursor: int | None, admission: Admission) -> None:
        hub = self.services.hub
        frames = hub.stream(self.caller.sub, cursor, self.caller.expires_at, admission)
        async for frame in frames:
            await self.send(encode(frame))

    async def listen(self) -> None:
        """Frames are counted against the budget as they arrive and handled one at a time
        behind, at most `burst` waiting: a client that sends faster than its budget, or than
        its frames are handled, is closed before its backlog is worked through, and whatever
        it asked for is cancelled as soon as it leaves."""
        accepted, pending = anyio.create_memory_object_stream[str | None](self.budget.burst)
        async with anyio.create_task_group() as tasks:
            tasks.start_soon(self._work, pending)
            with accepted:
                await self._read(accepted)
            tasks.cancel_scope.cancel()

    async def _read(self, accepted: MemoryObjectSendStream[str | None]) -> None:
        while True:
            message = await self.websocket.receive()
            if message["type"] == "websocket.disconnect":
                return
            if not (self.budget.take() and _queued(accepted, message.get("text"))):
                reason = f"more than {self.budget.rate:g} frames a second, or than are handled"
                await self.websocket.close(POLICY_VIOLATION, reason)
                return

    async def _work(self, pending: MemoryObjectReceiveStream[str | None]) -> None:
        # A socket closed under an error frame: `_read` hears of it and ends the connection.
        with pending, contextlib.suppress(WebSocketDisconnect):
            async for raw in pending:
                try:
                    await self.handle(raw)
                except Problem as problem:
                    await self.send(_error_frame(problem))

    async def handle(self, raw: str | None) -> None:
        if raw is None:
            raise ValidationFailed("frames are JSON text, not binary")
        if len(raw) > MAX_CLIENT_FRAME:
            raise ValidationFailed(f"client frames are at most {MAX_CLIENT_FRAME} bytes")
        depth = self.services.settings.max_json_depth
        try:
            message: Any = codec.loads(raw)
        except msgspec.DecodeError:
            raise ValidationFailed("frames are JSON objects") from None
        except RecursionError:
            raise ValidationFailed(f"frames nest at most {depth} levels deep") from None
        if codec.nests_deeper_than(raw, message, depth):
            raise ValidationFailed(f"frames nest at most {depth} levels deep")
        kind = message.get("type") if isinstance(message, dict) else None
        if kind == "ping":
            await self.send('{"event":"pong","id":null,"data":{}}')
        elif kind == "read":
            notification_id = parse_id(message.get("id"))
            await self.services.inbox.change(self.caller.sub, notification_id, "read")
        else:
            raise ValidationFailed('frame type must be "ping" or "read"')


async def refuse(websocket: WebSocket, problem: Problem) -> None:
    """Answer the handshake with the problem document and its status, where the server
    supports it (uvicorn does); else close with 4000 + the status."""
    if "websocket.http.response" in websocket.scope.get("extensions", {}):
        answer = Response(
            codec.dumps(problem.document()),
            problem.status,
            problem.headers,
            media_type="application/problem+json",
        )
        await websocket.send_denial_response(answer)
    else:
        await websocket.close(code=4000 + problem.status, reason=problem.title)


async def websocket_stream(websocket: WebSocket) -> None:
    try:
        check_origin(websocket)
        caller = await stream_principal(websocket)
        cursor = resume_cursor(websocket)
        admission = services_of(websocket).hub.admit(caller.sub)
    except Problem as problem:
        await refuse(websocket, problem)
        return
    await websocket.accept()
    connection = _Connection(websocket, caller)
    ended = False
    async with anyio.create_task_group() as tasks:

        async def pump() -> None:
            nonlocal ended
            # The client, or the server shutting down, may close the socket under a send.
            with contextlib.suppress(WebSocketDisconnect):
                await connection.pump(cursor, admission)
                ended = True
            tasks.cancel_scope.cancel()

        tasks.start_soon(pump)
        with contextlib.suppress(WebSocketDisconnect):
            await connection.listen()
        tasks.cancel_scope.cancel()
    if ended:
        # The hub ends a stream when the token expires or when the node shuts down (uvicorn
        # then closes with 1012 itself, and this close may come second: nothing to do).
        closing = connection.services.hub.closed
        with contextlib.suppress(WebSocketDisconnect):
            await websocket.close(
                code=SERVICE_RESTART if closing else TOKEN_EXPIRED,
                reason="service restart" if closing else "token expired or revoked",
            )


routes = [WebSocketRoute("/api/ws", websocket_stream)]
