"""What every no-loss test shares: clients that drop and resume at random, and the verdict.

A client keeps the cursors and notification ids it received; it reconnects (to the same node or
another) from the last cursor it saw. The verdict: every client ends with exactly the ids
addressed to its user, in cursor order, none twice.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Any

import anyio
import httpx
from websockets.asyncio.client import connect

from herald_server import codec
from tests.helpers import open_stream


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
    users: list[str]
    expected: dict[str, list[str]] = field(default_factory=dict)
    published: int = 0
    done: bool = False

    def __post_init__(self) -> None:
        self.expected = {user: [] for user in self.users}

    def sent(self, recipients: list[str], notification_id: str) -> None:
        for user in recipients:
            self.expected[user].append(notification_id)
        self.published += 1

    def finished(self, me: Client) -> bool:
        return self.done and len(me.received) >= len(self.expected[me.user])


async def sse_session(
    client: httpx.AsyncClient,
    headers: dict[str, str],
    me: Client,
    rng: random.Random,
    longest: float = 0.5,
) -> None:
    """One connection: read a random number of events or for a random time, then drop."""
    budget = rng.randint(1, 40)
    async with open_stream(client, headers, last_event_id=me.cursor) as stream:
        with anyio.move_on_after(rng.uniform(0.02, longest)):
            while budget > 0:
                event = await stream.next(timeout=30)
                assert event.event != "reset", "the client was told to refetch: events were lost"
                if event.event == "notification":
                    assert event.id is not None
                    me.record(int(event.id), event.data["id"])
                    budget -= 1


async def ws_session(
    base_url: str, headers: dict[str, str], me: Client, rng: random.Random
) -> None:
    budget = rng.randint(1, 40)
    url = base_url.replace("http://", "ws://") + f"/api/ws?last_event_id={me.cursor}"
    async with connect(url, additional_headers=headers, open_timeout=10) as ws:
        with anyio.move_on_after(rng.uniform(0.02, 0.5)):
            while budget > 0:
                frame: dict[str, Any] = codec.loads(await ws.recv())
                assert frame["event"] != "reset", "the client was told to refetch"
                if frame["event"] == "notification":
                    me.record(int(frame["id"]), frame["data"]["id"])
                    budget -= 1


async def poll_session(
    client: httpx.AsyncClient, headers: dict[str, str], me: Client, rng: random.Random
) -> None:
    params = {"after": me.cursor, "limit": str(rng.randint(1, 100))}
    response = await client.get("/api/notifications", params=params, headers=headers)
    assert response.status_code == 200, response.text
    page = response.json()
    for item in page["items"]:
        me.record(int(item["cursor"]), item["id"])
    if not page["has_more"]:
        # A mobile client polls on a timer, not in a hot loop: it asks again at once only
        # while more is waiting. Ten clients polling every 10 ms kept the embedded store so
        # busy that publishes fell to ~6 a second and the run missed its deadline.
        await anyio.sleep(0.25)


def verify(clients: dict[str, Client], run: Run) -> None:
    for user, me in clients.items():
        cursors = [cursor for cursor, _ in me.received]
        assert cursors == sorted(set(cursors)), f"{user}: out of order or duplicated"
        received_ids = [notification_id for _, notification_id in me.received]
        assert len(received_ids) == len(set(received_ids)), f"{user}: a duplicate"
        assert set(received_ids) == set(run.expected[user]), f"{user}: lost or foreign"
