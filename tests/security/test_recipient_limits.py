"""Hole 1: a user looping sends to themself (no scope needed) must not stop a service's publish
that names them from reaching its other recipients, nor from reaching them."""

from __future__ import annotations

from dataclasses import replace

import anyio
import httpx
import pytest

from herald_server.config import Settings
from herald_server.main import create_app
from herald_server.models import SCOPE_PUBLISH
from tests.conftest import auth, run_server
from tests.helpers import inbox_of

pytestmark = pytest.mark.anyio

# The service's publishes in each half of the run (without, then with, the attacker).
ROUNDS = 5
VICTIMS = ("alice", "bob")


async def service_round(
    client: httpx.AsyncClient, service: dict[str, str], settings: Settings
) -> dict[str, int]:
    """ROUNDS publishes to alice, bob and mallory: how many more items each victim then has."""
    before = {user: await inbox_size(client, settings, user) for user in VICTIMS}
    for n in range(ROUNDS):
        body = {"recipients": [*VICTIMS, "mallory"], "title": f"invoice {n}"}
        answer = await client.post("/api/notifications", json=body, headers=service)
        assert answer.status_code == 202, answer.text
        assert answer.json()["recipients"] == 3
        assert "skipped" not in answer.json()
    return {user: await inbox_size(client, settings, user) - before[user] for user in VICTIMS}


async def inbox_size(client: httpx.AsyncClient, settings: Settings, user: str) -> int:
    return len((await inbox_of(client, auth(settings, user), limit="100"))["items"])


async def test_self_sends_cannot_stop_a_service_reaching_the_other_recipients(
    settings: Settings,
) -> None:
    # Mallory's own bucket holds more than the recipient burst, so before the fix her
    # self-sends emptied the shared recipient bucket first; the service's fits its sends.
    configured = replace(
        settings,
        publish_rate=0.1,
        publish_burst=4 * ROUNDS,
        recipient_rate=0.1,
        recipient_burst=2 * ROUNDS,
    )
    service = auth(configured, "billing", SCOPE_PUBLISH)
    mallory = auth(configured, "mallory")
    async with (
        run_server(create_app(configured)) as live,
        httpx.AsyncClient(base_url=live.url, timeout=10) as client,
    ):
        without = await service_round(client, service, configured)

        refused, stop = anyio.Event(), anyio.Event()

        async def loop_self_sends() -> None:
            while not stop.is_set():
                body = {"recipients": ["mallory"], "title": "spam"}
                answer = await client.post("/api/notifications", json=body, headers=mallory)
                if answer.status_code == 429:
                    refused.set()

        with anyio.fail_after(30):
            async with anyio.create_task_group() as attack:
                attack.start_soon(loop_self_sends)
                # Her buckets are empty: whatever she could spend, she has spent.
                await refused.wait()
                with_attacker = await service_round(client, service, configured)
                stop.set()

    assert without == {user: ROUNDS for user in VICTIMS}
    ratio = {user: with_attacker[user] / without[user] for user in VICTIMS}
    assert ratio == {user: 1.0 for user in VICTIMS}
