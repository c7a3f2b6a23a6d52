"""Hole 3: a deeply nested `data` was accepted, then broke the recipient's inbox for good.

At the door: every JSON body nests at most HERALD_MAX_JSON_DEPTH levels (the body counting as
one), refused with a 422 before anything is stored. Behind it: a stored row that cannot be read
(written before the limit, or by hand) is left out and logged, and everything else is served.
"""

from __future__ import annotations

import logging
import sqlite3
from typing import Any
from urllib.parse import urlsplit

import anyio
import asyncpg
import httpx
import pytest

from herald_server.config import Settings
from tests.helpers import assert_problem, inbox_of, open_stream, publish, titles_of
from tests.streams.test_ws import next_frame, open_ws

pytestmark = pytest.mark.anyio


JSON = {"Content-Type": "application/json"}


def nested_text(levels: int) -> str:
    """`levels` lists, one inside the other, as JSON text (no encoder recurses that deep)."""
    return "[" * levels + "]" * levels


def nested(levels: int) -> Any:
    """`levels` lists, one inside the other."""
    value: Any = []
    for _ in range(levels - 1):
        value = [value]
    return value


@pytest.mark.parametrize("levels", [31, 970, 1500])
async def test_data_nested_past_the_limit_is_refused_and_nothing_is_stored(
    client: httpx.AsyncClient,
    publisher: dict[str, str],
    alice: dict[str, str],
    settings: Settings,
    levels: int,
) -> None:
    # The body is one level and `data` a second: 31 lists inside take it to 33.
    assert settings.max_json_depth == 32
    body = '{"recipients": ["alice"], "title": "t", "data": {"x": ' + nested_text(levels) + "}}"

    attack = await client.post("/api/notifications", content=body, headers=publisher | JSON)

    assert_problem(attack, 422, "validation-failed")
    assert "32 levels" in attack.json()["detail"]
    assert await titles_of(client, alice) == []


async def test_data_at_the_limit_is_accepted(
    client: httpx.AsyncClient, publisher: dict[str, str], alice: dict[str, str]
) -> None:
    data = {"x": nested(30)}
    await publish(client, publisher, recipients=["alice"], title="deep", data=data)

    (item,) = (await inbox_of(client, alice))["items"]
    assert item["data"] == data


async def test_template_vars_nested_past_the_limit_are_refused(
    client: httpx.AsyncClient, publisher: dict[str, str], alice: dict[str, str]
) -> None:
    body = {"recipients": ["alice"], "template": "welcome", "vars": {"x": nested(40)}}

    attack = await client.post("/api/notifications", json=body, headers=publisher)

    assert_problem(attack, 422, "validation-failed")
    assert await titles_of(client, alice) == []


async def test_a_self_send_nested_970_deep_is_refused(
    client: httpx.AsyncClient, alice: dict[str, str]
) -> None:
    body = '{"recipients": ["alice"], "title": "t", "data": {"x": ' + nested_text(970) + "}}"
    attack = await client.post("/api/notifications", content=body, headers=alice | JSON)
    assert_problem(attack, 422, "validation-failed")
    assert (await client.get("/api/notifications", headers=alice)).status_code == 200


async def overwrite_data(settings: Settings, notification_id: str, text: str) -> None:
    """Write a notification's stored `data` by hand, as a row stored before the limit was."""
    url = settings.database_url
    if url.startswith("sqlite"):
        await anyio.to_thread.run_sync(_overwrite_sqlite, urlsplit(url).path, notification_id, text)
        return
    conn = await asyncpg.connect(url)
    try:
        await conn.execute(
            "UPDATE notifications SET data = $1 WHERE id = $2", text, int(notification_id)
        )
    finally:
        await conn.close()


def _overwrite_sqlite(path: str, notification_id: str, text: str) -> None:
    # In a thread, waiting its turn: the node in this event loop may hold the write lock.
    with sqlite3.connect(path, timeout=10) as conn:
        conn.execute("UPDATE notifications SET data = ? WHERE id = ?", (text, notification_id))


UNREADABLE = {"nested-970": nested_text(970), "not-json": '{"x": [1, 2'}


@pytest.fixture(params=sorted(UNREADABLE))
async def bad_row(
    request: pytest.FixtureRequest,
    client: httpx.AsyncClient,
    publisher: dict[str, str],
    settings: Settings,
) -> str:
    """alice's inbox: "first", then an item whose stored data cannot be read, then "last"."""
    await publish(client, publisher, recipients=["alice"], title="first")
    bad = await publish(client, publisher, recipients=["alice"], title="bad")
    await publish(client, publisher, recipients=["alice"], title="last")
    await overwrite_data(settings, bad["id"], UNREADABLE[request.param])
    return str(bad["id"])


async def test_an_unreadable_row_is_left_out_of_the_inbox_and_logged(
    client: httpx.AsyncClient,
    alice: dict[str, str],
    bad_row: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.ERROR, logger="herald_server.store.base"):
        listed = await client.get("/api/notifications", headers=alice)
        single = await client.get(f"/api/notifications/{bad_row}", headers=alice)

    assert listed.status_code == 200, listed.text
    assert [item["title"] for item in listed.json()["items"]] == ["last", "first"]
    assert_problem(single, 404, "not-found")
    assert any(f"notification {bad_row} cannot be read" in r.getMessage() for r in caplog.records)


async def test_paging_goes_on_past_an_unreadable_row(
    client: httpx.AsyncClient, alice: dict[str, str], bad_row: str
) -> None:
    titles: list[str] = []
    params = {"limit": "1"}
    for _ in range(4):
        page = await inbox_of(client, alice, **params)
        titles += [item["title"] for item in page["items"]]
        if page["next_cursor"] is None:
            break
        params = {"limit": "1", "before": page["next_cursor"]}
    assert titles == ["last", "first"]
    assert page["next_cursor"] is None

    polled = await inbox_of(client, alice, after="0", limit="3")
    assert [item["title"] for item in polled["items"]] == ["first", "last"]
    assert polled["next_cursor"] == "3"


async def test_replay_over_sse_and_websocket_skips_an_unreadable_row(
    server: str, client: httpx.AsyncClient, alice: dict[str, str], bad_row: str
) -> None:
    async with open_stream(client, alice, last_event_id="0") as stream:
        sse = [(await stream.next_of("notification")).data["title"] for _ in range(2)]
        counts = await stream.next_of("unread_count")
    async with open_ws(server, alice, "?last_event_id=0") as ws:
        frames = [await next_frame(ws, "notification") for _ in range(2)]

    assert sse == ["first", "last"]
    assert counts.data["counts_at"] == "3"
    assert [frame["data"]["title"] for frame in frames] == ["first", "last"]


async def test_the_admin_list_skips_an_unreadable_row(
    client: httpx.AsyncClient, admin: dict[str, str], bad_row: str
) -> None:
    listed = await client.get("/api/admin/notifications", headers=admin)
    assert listed.status_code == 200, listed.text
    assert [item["title"] for item in listed.json()["items"]] == ["last", "first"]
