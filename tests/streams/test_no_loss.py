"""Invariant 1: no loss, no duplicate, in order, across reconnects at any moment.

Several publishers write concurrently to overlapping sets of users while every user's client
drops its connection at random points (after a random number of events, or at a random
instant mid-read) and resumes from the last cursor it saw. Each transport (SSE with
Last-Event-ID, WebSocket with ?last_event_id=, REST polling with after=) must end with exactly
the notifications addressed to its user, in cursor order, none twice.
"""

from __future__ import annotations

import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import anyio
import httpx
import pytest
from websockets.asyncio.client import connect

from app import codec
from app.config import Settings
from tests.conftest import token_for
from tests.helpers import open_stream

pytestmark = pytest.mark.anyio

USERS = [f"user{n}" for n in range(10)]
PUBLISHERS = 4
PER_PUBLISHER = 500
TEST_DEADLINE = 240

Record = Callable[[int, str], None]


@dataclass
class Client:
    user: str
    received: list[tuple[int, str]] = field(default_factory=list)
    disconnects: int = 0

    @property
    def cursor(self) -> str:
        """The last cursor seen; "0" before any, so the first connection replays everything."""
        return str(self.received[-1][0]) if self.received else "0"

    def record(self, cursor: int, notification_id: str) -> None:
        self.received.append((cursor, notification_id))


@dataclass
class Run:
    expected: dict[str, list[str]] = field(default_factory=lambda: {u: [] for u in USERS})
    published: int = 0
    done: bool = False


async def _publisher(
    client: httpx.AsyncClient, headers: dict[str, str], run: Run, rng: random.Random, name: str
) -> None:
    for n in range(PER_PUBLISHER):
        recipients = rng.sample(USERS, rng.randint(1, 3))
        response = await client.post(
            "/api/notifications",
            json={"recipients": recipients, "title": f"{name}-{n}"},
            headers=headers,
        )
        assert response.status_code == 202, response.text
        for user in recipients:
            run.expected[user].append(response.json()["id"])
        run.published += 1


async def _sse_session(
    client: httpx.AsyncClient, headers: dict[str, str], me: Client, budget: int, rng: random.Random
) -> None:
    async with open_stream(client, headers, last_event_id=me.cursor) as stream:
        with anyio.move_on_after(rng.uniform(0.02, 0.5)):
            while budget > 0:
                event = await stream.next(timeout=30)
                assert event.event != "reset", "the client was told to refetch: events were lost"
                if event.event == "notification":
                    assert event.id is not None
                    me.record(int(event.id), event.data["id"])
                    budget -= 1


async def _ws_session(
    base_url: str, headers: dict[str, str], me: Client, budget: int, rng: random.Random
) -> None:
    url = base_url.replace("http://", "ws://") + f"/api/ws?last_event_id={me.cursor}"
    async with connect(url, additional_headers=headers, open_timeout=10) as ws:
        with anyio.move_on_after(rng.uniform(0.02, 0.5)):
            while budget > 0:
                frame: dict[str, Any] = codec.loads(await ws.recv())
                assert frame["event"] != "reset", "the client was told to refetch"
                if frame["event"] == "notification":
                    me.record(int(frame["id"]), frame["data"]["id"])
                    budget -= 1


async def _poll_session(
    client: httpx.AsyncClient, headers: dict[str, str], me: Client, budget: int, rng: random.Random
) -> None:
    params = {"after": me.cursor, "limit": str(rng.randint(1, 100))}
    response = await client.get("/api/notifications", params=params, headers=headers)
    assert response.status_code == 200, response.text
    for item in response.json()["items"][:budget]:
        me.record(int(item["cursor"]), item["id"])
    if not response.json()["items"]:
        await anyio.sleep(0.01)  # an idle mobile client polls on a timer, not in a hot loop


async def _client(
    session: Callable[[Client, int, random.Random], Awaitable[None]],
    me: Client,
    run: Run,
    rng: random.Random,
) -> None:
    while not (run.done and len(me.received) >= len(run.expected[me.user])):
        await session(me, rng.randint(1, 40), rng)
        me.disconnects += 1


@pytest.mark.parametrize("transport", ["sse", "ws", "poll"])
async def test_every_client_ends_with_exactly_its_notifications_in_order(
    transport: str, settings: Settings, server: str, client: httpx.AsyncClient
) -> None:
    rng = random.Random(f"{transport}-{settings.database_url}")
    run = Run()
    clients = {user: Client(user) for user in USERS}
    headers = {user: {"Authorization": f"Bearer {token_for(settings, user)}"} for user in USERS}
    publisher = {"Authorization": f"Bearer {token_for(settings, 'svc', 'notifications:publish')}"}
    sessions: dict[str, Callable[[Client, int, random.Random], Awaitable[None]]] = {
        "sse": lambda me, budget, r: _sse_session(client, headers[me.user], me, budget, r),
        "ws": lambda me, budget, r: _ws_session(server, headers[me.user], me, budget, r),
        "poll": lambda me, budget, r: _poll_session(client, headers[me.user], me, budget, r),
    }
    started = time.monotonic()
    with anyio.fail_after(TEST_DEADLINE):
        async with anyio.create_task_group() as tasks:
            for me in clients.values():
                tasks.start_soon(_client, sessions[transport], me, run, random.Random(rng.random()))

            async with anyio.create_task_group() as publishers:
                for p in range(PUBLISHERS):
                    name = f"p{p}"
                    publishers.start_soon(
                        _publisher, client, publisher, run, random.Random(rng.random()), name
                    )
            run.done = True
    elapsed = time.monotonic() - started

    for user, me in clients.items():
        cursors = [cursor for cursor, _ in me.received]
        assert cursors == sorted(set(cursors)), f"{user}: out of order or duplicated"
        received_ids = [notification_id for _, notification_id in me.received]
        assert len(received_ids) == len(set(received_ids)), f"{user}: a duplicate"
        assert set(received_ids) == set(run.expected[user]), f"{user}: lost or foreign"
    disconnects = sum(me.disconnects for me in clients.values())
    assert disconnects >= len(USERS) * 5, "the run did not exercise reconnects"
    print(
        f"\nno-loss[{transport}, {settings.database_url.split(':')[0]}]: {run.published}"
        f" notifications from {PUBLISHERS} publishers to {len(USERS)} clients,"
        f" {sum(len(v) for v in run.expected.values())} deliveries, {disconnects} reconnects,"
        f" {elapsed:.1f} s"
    )
