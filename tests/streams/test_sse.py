"""SSE: live delivery, resume with Last-Event-ID, state events, reset, token expiry."""

from __future__ import annotations

from dataclasses import replace

import anyio
import httpx
import pytest

from herald_server.config import Settings
from herald_server.main import create_app
from tests.conftest import auth, run_server, token_for
from tests.helpers import SseReader, open_stream, publish

pytestmark = pytest.mark.anyio


async def test_published_notification_reaches_the_recipients_stream(
    client: httpx.AsyncClient, alice: dict[str, str], publisher: dict[str, str]
) -> None:
    async with open_stream(client, alice) as stream:
        counts = await stream.next()
        assert counts.event == "unread_count"
        assert counts.data == {"unread_count": 0, "unseen_count": 0, "counts_at": "0"}
        sent = await publish(client, publisher, recipients=["alice"], title="Invoice ready")
        event = await stream.next()
    assert event.event == "notification"
    assert event.data["id"] == sent["id"]
    assert event.data["title"] == "Invoice ready"
    assert event.id == "1"


async def test_reconnect_with_last_event_id_replays_what_was_missed_in_order(
    client: httpx.AsyncClient, alice: dict[str, str], publisher: dict[str, str]
) -> None:
    await publish(client, publisher, recipients=["alice"], title="one")
    async with open_stream(client, alice, last_event_id="0") as stream:
        first = await stream.next_of("notification")
    for title in ("two", "three"):
        await publish(client, publisher, recipients=["alice"], title=title)
    async with open_stream(client, alice, last_event_id=first.id) as stream:
        replayed = [await stream.next_of("notification") for _ in range(2)]
    assert [event.data["title"] for event in replayed] == ["two", "three"]
    assert [event.id for event in replayed] == ["2", "3"]


async def test_a_read_on_one_device_reaches_the_other_stream(
    client: httpx.AsyncClient, alice: dict[str, str], publisher: dict[str, str]
) -> None:
    sent = await publish(client, publisher, recipients=["alice"])
    async with open_stream(client, alice) as stream:
        await stream.next_of("unread_count")
        response = await client.post(f"/api/notifications/{sent['id']}/read", headers=alice)
        assert response.status_code == 200
        event = await stream.next_of("read")
    assert event.data["id"] == sent["id"]
    assert event.data["unread_count"] == 0


async def test_a_stream_only_carries_the_callers_events(
    client: httpx.AsyncClient,
    alice: dict[str, str],
    bob: dict[str, str],
    publisher: dict[str, str],
) -> None:
    async with open_stream(client, bob) as stream:
        await stream.next_of("unread_count")
        await publish(client, publisher, recipients=["alice"], title="for alice")
        await publish(client, publisher, recipients=["bob"], title="for bob")
        event = await stream.next_of("notification")
    assert event.data["title"] == "for bob"


async def test_a_gap_larger_than_the_replay_limit_gets_a_reset(settings: Settings) -> None:
    small = replace(settings, replay_limit=3)
    async with (
        run_server(create_app(small)) as live,
        httpx.AsyncClient(base_url=live.url) as client,
    ):
        headers = {"Authorization": f"Bearer {token_for(small, 'alice')}"}
        publisher = {"Authorization": f"Bearer {token_for(small, 'svc', 'notifications:publish')}"}
        for n in range(5):
            await publish(client, publisher, recipients=["alice"], title=f"n{n}")
        async with open_stream(client, headers, last_event_id="0") as stream:
            reset = await stream.next()
            counts = await stream.next()
    assert reset.event == "reset"
    assert reset.id == "5"
    assert reset.data == {"cursor": "5"}
    assert counts.data["unread_count"] == 5


async def test_stream_token_in_query_opens_the_stream_and_api_tokens_do_not(
    client: httpx.AsyncClient, alice: dict[str, str], settings: Settings
) -> None:
    issued = await client.post("/api/stream/token", headers=alice)
    assert issued.status_code == 201
    async with open_stream(client, params={"token": issued.json()["token"]}) as stream:
        assert (await stream.next()).event == "unread_count"
    refused = await client.get("/api/stream", params={"token": token_for(settings, "alice")})
    assert refused.status_code == 401
    assert refused.headers["content-type"] == "application/problem+json"
    anonymous = await client.get("/api/stream")
    assert anonymous.status_code == 401


async def test_a_malformed_last_event_id_is_a_400_problem(
    client: httpx.AsyncClient, alice: dict[str, str]
) -> None:
    response = await client.get("/api/stream", headers={**alice, "Last-Event-ID": "abc"})
    assert response.status_code == 400
    assert response.json()["type"].endswith("/invalid-cursor")


async def test_the_stream_warns_before_its_token_expires_then_closes(
    client: httpx.AsyncClient, settings: Settings
) -> None:
    short = {"Authorization": f"Bearer {token_for(settings, 'alice', ttl=2)}"}
    async with open_stream(client, short) as stream:
        assert (await stream.next()).event == "unread_count"
        warning = await stream.next()
        assert warning.event == "token_expiring"
        with pytest.raises(EOFError):
            await stream.next(timeout=5)


async def _drain(stream: SseReader) -> None:
    while True:
        await stream.next()


async def test_a_restarted_server_ends_streams_cleanly_and_clients_resume_without_loss(
    settings: Settings,
) -> None:
    alice = {"Authorization": f"Bearer {token_for(settings, 'alice')}"}
    sender = {"Authorization": f"Bearer {token_for(settings, 'svc', 'notifications:publish')}"}
    async with (
        run_server(create_app(settings)) as live,
        httpx.AsyncClient(base_url=live.url) as client,
    ):
        await publish(client, sender, recipients=["alice"], title="before")
        async with open_stream(client, alice, last_event_id="0") as stream:
            seen = await stream.next_of("notification")
            live.stop()
            with anyio.fail_after(5), pytest.raises((EOFError, httpx.TransportError)):
                await _drain(stream)
    async with (
        run_server(create_app(settings)) as restarted,
        httpx.AsyncClient(base_url=restarted.url) as client,
    ):
        for title in ("while away 1", "while away 2"):
            await publish(client, sender, recipients=["alice"], title=title)
        async with open_stream(client, alice, last_event_id=seen.id) as stream:
            events = [await stream.next() for _ in range(3)]
    assert [(e.event, e.data.get("title")) for e in events] == [
        ("notification", "while away 1"),
        ("notification", "while away 2"),
        ("unread_count", None),
    ]


async def test_an_idle_stream_sends_a_ping_comment_every_heartbeat(settings: Settings) -> None:
    app = create_app(replace(settings, heartbeat_seconds=0.1))
    async with (
        run_server(app) as live,
        httpx.AsyncClient(base_url=live.url, timeout=5) as http,
        http.stream("GET", "/api/stream", headers=auth(settings, "alice")) as response,
    ):
        assert response.headers["content-type"] == "text/event-stream; charset=utf-8"
        assert response.headers["cache-control"] == "no-store"
        received = b""
        with anyio.fail_after(5):
            async for chunk in response.aiter_bytes():
                received += chunk
                if received.count(b": ping\n\n") >= 2:
                    break
    assert received.startswith(b": herald\nretry: ")
    assert b"event: unread_count\n" in received


async def test_head_answers_the_stream_headers_without_a_body(
    client: httpx.AsyncClient, alice: dict[str, str]
) -> None:
    with anyio.fail_after(5):
        response = await client.head("/api/stream", headers=alice)
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/event-stream; charset=utf-8"
    assert response.content == b""
