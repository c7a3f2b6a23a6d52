"""GET /api/ws: the same events as SSE, as JSON frames `{"event","id","data"}`.

The client may send `{"type":"ping"}` (answered with a `pong` frame) and
`{"type":"read","id":"<notification id>"}` (a read, announced to the user's other streams).
Close codes: 4400/4401 for a bad request or token before the stream starts, 4001 when the
token expires (get a new stream token and resume), 1012 when the node shuts down.
"""

from __future__ import annotations

import contextlib
from typing import Any

import anyio
import msgspec
from starlette.routing import WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect

from app import codec
from app.core.render import Frame
from app.errors import NotFound, Problem, ValidationFailed
from app.models import Principal
from app.services import services_of
from app.streams._connect import resume_cursor, stream_principal

TOKEN_EXPIRED = 4001
MAX_CLIENT_FRAME = 4096


def encode(frame: Frame) -> str:
    """`data` is already JSON text, shared by every recipient; splice it in as is."""
    frame_id = "null" if frame.id is None else f'"{frame.id}"'
    return f'{{"event":"{frame.event}","id":{frame_id},"data":{frame.data}}}'


def _error_frame(problem: Problem) -> str:
    return codec.dumps_str({"event": "error", "id": None, "data": problem.document()})


class _Connection:
    def __init__(self, websocket: WebSocket, caller: Principal) -> None:
        self.websocket = websocket
        self.caller = caller
        self.services = services_of(websocket)
        self.lock = anyio.Lock()

    async def send(self, text: str) -> None:
        """Bounded like SSE's send_timeout: a client that stops reading is cut."""
        with anyio.fail_after(self.services.settings.send_timeout_seconds):
            async with self.lock:
                await self.websocket.send_text(text)

    async def pump(self, cursor: int | None) -> None:
        hub = self.services.hub
        async for frame in hub.stream(self.caller.sub, cursor, self.caller.expires_at):
            await self.send(encode(frame))

    async def listen(self) -> None:
        while True:
            raw = await self.websocket.receive_text()
            try:
                await self.handle(raw)
            except Problem as problem:
                await self.send(_error_frame(problem))

    async def handle(self, raw: str) -> None:
        if len(raw) > MAX_CLIENT_FRAME:
            raise ValidationFailed(f"client frames are at most {MAX_CLIENT_FRAME} bytes")
        try:
            message: Any = codec.loads(raw)
        except msgspec.DecodeError:
            raise ValidationFailed("frames are JSON objects") from None
        kind = message.get("type") if isinstance(message, dict) else None
        if kind == "ping":
            await self.send('{"event":"pong","id":null,"data":{}}')
        elif kind == "read":
            raw_id = message.get("id")
            if not isinstance(raw_id, str) or not raw_id.isdigit() or len(raw_id) > 18:
                raise NotFound(f"notification {str(raw_id)[:40]!r} not found")
            await self.services.inbox.change(self.caller.sub, int(raw_id), "read")
        else:
            raise ValidationFailed('frame type must be "ping" or "read"')


async def websocket_stream(websocket: WebSocket) -> None:
    try:
        caller = await stream_principal(websocket)
        cursor = resume_cursor(websocket)
    except Problem as problem:
        await websocket.close(code=4000 + problem.status, reason=problem.title)
        return
    await websocket.accept()
    connection = _Connection(websocket, caller)
    expired = False
    async with anyio.create_task_group() as tasks:

        async def pump() -> None:
            nonlocal expired
            await connection.pump(cursor)
            expired = True
            tasks.cancel_scope.cancel()

        tasks.start_soon(pump)
        with contextlib.suppress(WebSocketDisconnect):
            await connection.listen()
        tasks.cancel_scope.cancel()
    if expired:
        await websocket.close(code=TOKEN_EXPIRED, reason="token expired")


routes = [WebSocketRoute("/api/ws", websocket_stream)]
