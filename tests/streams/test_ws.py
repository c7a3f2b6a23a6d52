"""WebSocket: the same events as SSE as JSON frames; read and ping frames from the client."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import anyio
import httpx
import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import InvalidStatus

from herald_server import codec
from herald_server.config import Settings
from tests.conftest import token_for
from tests.helpers import open_stream, publish

pytestmark = pytest.mark.anyio


@asynccontextmanager
async def open_ws(
    server: str, headers: dict[str, str] | None = None, query: str = ""
) -> AsyncIterator[ClientConnection]:
    url = server.replace("http://", "ws://") + "/api/ws" + query
    async with connect(url, additional_headers=headers or {}, open_timeout=5) as ws:
        yield ws


async def next_frame(ws: ClientConnection, event: str | None = None) -> dict[str, Any]:
    with anyio.fail_after(5):
        while True:
            frame: dict[str, Any] = codec.loads(await ws.recv())
            if event is None or frame["event"] == event:
                return frame


async def test_notification_arrives_as_a_json_frame_with_its_cursor(
    server: str, client: httpx.AsyncClient, alice: dict[str, str], publisher: dict[str, str]
) -> None:
    async with open_ws(server, alice) as ws:
        counts = await next_frame(ws)
        assert counts == {
            "event": "unread_count",
            "id": None,
            "data": {"unread_count": 0, "unseen_count": 0, "counts_at": "0"},
        }
        sent = await publish(client, publisher, recipients=["alice"], title="over ws")
        frame = await next_frame(ws, "notification")
    assert frame["id"] == "1"
    assert frame["data"]["id"] == sent["id"]
    assert frame["data"]["title"] == "over ws"


async def test_a_cursor_seen_on_sse_resumes_the_websocket(
    server: str, client: httpx.AsyncClient, alice: dict[str, str], publisher: dict[str, str]
) -> None:
    await publish(client, publisher, recipients=["alice"], title="first")
    async with open_stream(client, alice, last_event_id="0") as stream:
        seen = await stream.next_of("notification")
    await publish(client, publisher, recipients=["alice"], title="second")
    async with open_ws(server, alice, f"?last_event_id={seen.id}") as ws:
        frame = await next_frame(ws, "notification")
    assert frame["data"]["title"] == "second"


async def test_a_read_frame_marks_it_read_and_reaches_the_other_streams(
    server: str, client: httpx.AsyncClient, alice: dict[str, str], publisher: dict[str, str]
) -> None:
    sent = await publish(client, publisher, recipients=["alice"])
    async with open_stream(client, alice) as other_device, open_ws(server, alice) as ws:
        await other_device.next_of("unread_count")
        await next_frame(ws, "unread_count")
        await ws.send(codec.dumps_str({"type": "read", "id": sent["id"]}))
        on_ws = await next_frame(ws, "read")
        on_sse = await other_device.next_of("read")
    assert on_ws["data"]["id"] == on_sse.data["id"] == sent["id"]
    item = (await client.get(f"/api/notifications/{sent['id']}", headers=alice)).json()
    assert item["read_at"] is not None


async def test_ping_gets_pong_and_bad_frames_get_an_error_frame(
    server: str, alice: dict[str, str]
) -> None:
    async with open_ws(server, alice) as ws:
        await ws.send('{"type": "ping"}')
        assert (await next_frame(ws, "pong"))["event"] == "pong"
        await ws.send("not json")
        error = await next_frame(ws, "error")
        assert error["data"]["type"].endswith("/validation-failed")
        await ws.send('{"type": "read", "id": "999999"}')
        missing = await next_frame(ws, "error")
        assert missing["data"]["type"].endswith("/not-found")


async def test_reading_another_users_notification_over_ws_is_not_found(
    server: str, client: httpx.AsyncClient, bob: dict[str, str], publisher: dict[str, str]
) -> None:
    sent = await publish(client, publisher, recipients=["alice"])
    async with open_ws(server, bob) as ws:
        await ws.send(codec.dumps_str({"type": "read", "id": sent["id"]}))
        error = await next_frame(ws, "error")
    assert error["data"]["status"] == 404


async def test_without_a_valid_token_the_handshake_is_refused(
    server: str, settings: Settings
) -> None:
    with pytest.raises(InvalidStatus):
        async with open_ws(server):
            pass
    with pytest.raises(InvalidStatus):
        async with open_ws(server, query=f"?token={token_for(settings, 'alice')}"):
            pass


async def test_a_stream_token_opens_the_websocket_and_the_stream_ends_when_it_expires(
    server: str, client: httpx.AsyncClient, settings: Settings
) -> None:
    short = {"Authorization": f"Bearer {token_for(settings, 'alice', ttl=2)}"}
    issued = (await client.post("/api/stream/token", headers=short)).json()
    async with open_ws(server, query=f"?token={issued['token']}") as ws:
        assert (await next_frame(ws))["event"] == "unread_count"
        warning = await next_frame(ws, "token_expiring")
        assert warning["data"]["expires_at"] == issued["expires_at"]
        with anyio.fail_after(5):
            await ws.wait_closed()
    assert ws.close_code == 4001
