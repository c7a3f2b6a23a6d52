"""Several real nodes, one PostgreSQL, one Redis: clients hop between nodes and lose nothing,
while Redis goes away and comes back, or while a node is killed outright.
"""

from __future__ import annotations

import contextlib
import random
import time
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager

import anyio
import httpx
import pytest

from herald_server.config import Settings
from tests.cluster.harness import Node, OwnRedis, cluster
from tests.conftest import REDIS_URL, token_for
from tests.helpers import open_stream
from tests.noloss import Client, Run, sse_session, verify

pytestmark = pytest.mark.anyio

USERS = [f"member{n}" for n in range(50)]
NODES = 3
PUBLISHERS = 4
DEADLINE = 300
# A client stays at most this long on one node before hopping (or after a random count).
SESSION_SECONDS = 2.0


@asynccontextmanager
async def http_clients(nodes: list[Node]) -> AsyncIterator[dict[str, httpx.AsyncClient]]:
    async with AsyncExitStack() as stack:
        yield {
            node.url: await stack.enter_async_context(
                httpx.AsyncClient(base_url=node.url, timeout=10)
            )
            for node in nodes
        }


async def _hop(
    me: Client,
    run: Run,
    http: dict[str, httpx.AsyncClient],
    alive: list[str],
    headers: dict[str, str],
    rng: random.Random,
) -> None:
    """Stream from a random live node, drop, resume on another, until everything arrived."""
    while not run.finished(me):
        node = rng.choice(alive)
        # A node dying under the stream is a transport error: resume elsewhere, as a browser would.
        with contextlib.suppress(httpx.TransportError):
            await sse_session(http[node], headers, me, rng, longest=SESSION_SECONDS)
        me.disconnects += 1


async def _status(http: httpx.AsyncClient) -> dict[str, str]:
    body: dict[str, str] = (await http.get("/readyz")).json()
    return body


@pytest.mark.parametrize("fault", ["redis_outage", "node_killed"])
async def test_clients_hopping_between_three_nodes_get_exactly_their_notifications(
    fault: str, production_settings: Settings
) -> None:
    settings = production_settings
    per_publisher = 750 if fault == "redis_outage" else 300
    rng = random.Random(fault)
    run = Run(USERS)
    clients = {user: Client(user) for user in USERS}
    headers = {u: {"Authorization": f"Bearer {token_for(settings, u)}"} for u in USERS}
    publisher = {"Authorization": f"Bearer {token_for(settings, 'svc', 'notifications:publish')}"}
    redis = OwnRedis()
    await redis.start()
    observed: dict[str, object] = {}
    retries: list[str] = []
    started = time.monotonic()
    try:
        async with cluster(settings, redis.url, NODES) as nodes, http_clients(nodes) as http:
            alive = [node.url for node in nodes]

            async def publish(name: str, prng: random.Random, home: int) -> None:
                for n in range(per_publisher):
                    recipients = prng.sample(USERS, prng.randint(1, 3))
                    body = {"recipients": recipients, "title": f"{name}-{n}"}
                    key = {"Idempotency-Key": f"{name}-{n}", **publisher}
                    for attempt in range(len(nodes)):
                        node = nodes[(home + attempt) % len(nodes)].url
                        try:
                            response = await http[node].post(
                                "/api/notifications", json=body, headers=key
                            )
                        except httpx.TransportError:
                            retries.append(name)
                            continue  # a dead node: retry elsewhere with the same key
                        assert response.status_code == 202, response.text
                        run.sent(recipients, response.json()["id"])
                        break
                    else:
                        raise AssertionError("no node accepted the publish")

            async def redis_outage() -> None:
                with anyio.fail_after(DEADLINE):
                    while run.published < per_publisher * PUBLISHERS // 3:
                        await anyio.sleep(0.05)
                published_before = run.published
                redis.stop()
                down_at = time.monotonic()
                with anyio.fail_after(10):
                    while (await _status(http[alive[0]]))["bus"] != "down":
                        await anyio.sleep(0.1)
                observed["readyz_while_down"] = await _status(http[alive[1]])
                await anyio.sleep(max(0.0, 6 - (time.monotonic() - down_at)))
                observed["published_while_down"] = run.published - published_before
                await redis.start()
                observed["outage_seconds"] = time.monotonic() - down_at

            async def node_killed() -> None:
                with anyio.fail_after(DEADLINE):
                    while run.published < per_publisher * PUBLISHERS // 3:
                        await anyio.sleep(0.05)
                alive.remove(nodes[0].url)
                nodes[0].kill()
                observed["killed_at_published"] = run.published

            with anyio.fail_after(DEADLINE):
                async with anyio.create_task_group() as tasks:
                    for me in clients.values():
                        tasks.start_soon(
                            _hop,
                            me,
                            run,
                            http,
                            alive,
                            headers[me.user],
                            random.Random(rng.random()),
                        )
                    async with anyio.create_task_group() as producers:
                        producers.start_soon(
                            redis_outage if fault == "redis_outage" else node_killed
                        )
                        for p in range(PUBLISHERS):
                            producers.start_soon(publish, f"p{p}", random.Random(rng.random()), p)
                    run.done = True
            for url in alive:
                assert (await _status(http[url]))["bus"] == "up"
    finally:
        redis.stop()

    verify(clients, run)
    assert run.published == per_publisher * PUBLISHERS
    if fault == "redis_outage":
        readyz = observed["readyz_while_down"]
        assert isinstance(readyz, dict)
        assert {key: readyz[key] for key in ("status", "store", "bus")} == {
            "status": "ready",
            "store": "up",
            "bus": "down",
        }
        assert isinstance(observed["published_while_down"], int)
        assert observed["published_while_down"] > 0, "nothing was published during the outage"
        assert retries == [], "a publish failed while Redis was down"
    hops = sum(me.disconnects for me in clients.values())
    print(
        f"\ncluster[{fault}]: {NODES} nodes, {run.published} notifications from {PUBLISHERS}"
        f" publishers to {len(USERS)} clients, {hops} hops, {observed},"
        f" {time.monotonic() - started:.1f} s"
    )


async def test_a_read_on_one_node_reaches_the_users_stream_on_another(
    production_settings: Settings,
) -> None:
    settings = production_settings
    alice = {"Authorization": f"Bearer {token_for(settings, 'alice')}"}
    publisher = {"Authorization": f"Bearer {token_for(settings, 'svc', 'notifications:publish')}"}
    async with (
        cluster(settings, REDIS_URL, 2) as (a, b),
        http_clients([a, b]) as http,
        open_stream(http[b.url], alice) as stream,
    ):
        await stream.next_of("unread_count")
        sent = (
            await http[a.url].post(
                "/api/notifications",
                json={"recipients": ["alice"], "title": "x"},
                headers=publisher,
            )
        ).json()
        arrived = await stream.next_of("notification")
        await http[a.url].post(f"/api/notifications/{sent['id']}/read", headers=alice)
        read = await stream.next_of("read")
    assert arrived.data["id"] == sent["id"]
    assert read.data["id"] == sent["id"]
