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
from dataclasses import replace

import anyio
import httpx
import pytest

from herald_server.config import Settings
from tests.conftest import token_for
from tests.noloss import Client, Run, poll_session, sse_session, verify, ws_session

pytestmark = pytest.mark.anyio

USERS = [f"user{n}" for n in range(10)]
PUBLISHERS = 4
PER_PUBLISHER = 500
TEST_DEADLINE = 240

Session = Callable[[Client, random.Random], Awaitable[None]]


@pytest.fixture
def settings(settings: Settings) -> Settings:
    """Rate limits off: 2,000 publishes to ten users in seconds is the load this test is for
    (each user gets ~40 a second, past the default recipient limit; tests/api/test_limits.py
    covers the limits)."""
    return replace(settings, publish_rate=0, recipient_rate=0)


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
        run.sent(recipients, response.json()["id"])


async def _client(session: Session, me: Client, run: Run, rng: random.Random) -> None:
    while not run.finished(me):
        await session(me, rng)
        me.disconnects += 1


@pytest.mark.parametrize("transport", ["sse", "ws", "poll"])
async def test_every_client_ends_with_exactly_its_notifications_in_order(
    transport: str, settings: Settings, server: str, client: httpx.AsyncClient
) -> None:
    rng = random.Random(f"{transport}-{settings.database_url}")
    run = Run(USERS)
    clients = {user: Client(user) for user in USERS}
    headers = {user: {"Authorization": f"Bearer {token_for(settings, user)}"} for user in USERS}
    publisher = {"Authorization": f"Bearer {token_for(settings, 'svc', 'notifications:publish')}"}
    sessions: dict[str, Session] = {
        "sse": lambda me, r: sse_session(client, headers[me.user], me, r),
        "ws": lambda me, r: ws_session(server, headers[me.user], me, r),
        "poll": lambda me, r: poll_session(client, headers[me.user], me, r),
    }
    started = time.monotonic()
    with anyio.fail_after(TEST_DEADLINE):
        async with anyio.create_task_group() as tasks:
            for me in clients.values():
                tasks.start_soon(_client, sessions[transport], me, run, random.Random(rng.random()))
            async with anyio.create_task_group() as publishers:
                for p in range(PUBLISHERS):
                    publishers.start_soon(
                        _publisher, client, publisher, run, random.Random(rng.random()), f"p{p}"
                    )
            run.done = True
    elapsed = time.monotonic() - started

    verify(clients, run)
    disconnects = sum(me.disconnects for me in clients.values())
    assert disconnects >= len(USERS) * 5, "the run did not exercise reconnects"
    print(
        f"\nno-loss[{transport}, {settings.database_url.split(':')[0]}]: {run.published}"
        f" notifications from {PUBLISHERS} publishers to {len(USERS)} clients,"
        f" {sum(len(v) for v in run.expected.values())} deliveries, {disconnects} reconnects,"
        f" {elapsed:.1f} s"
    )
