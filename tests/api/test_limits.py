"""Abuse limits: a refusal per limit, with problem+json and Retry-After, and nothing stored or
sent. Rate limits are token buckets: in-process on the embedded backend, in Redis on the
production one, where every node draws on the same buckets."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import replace

import anyio
import httpx
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

from herald_server.config import Settings
from herald_server.main import create_app
from herald_server.models import SCOPE_PUBLISH
from tests.conftest import auth, run_server
from tests.helpers import assert_problem, free_port, inbox_of, open_stream

pytestmark = pytest.mark.anyio


@asynccontextmanager
async def limited_clients(
    settings: Settings, nodes: int = 1
) -> AsyncIterator[list[httpx.AsyncClient]]:
    """Clients of `nodes` nodes run with these settings (sharing their store and bus)."""
    async with AsyncExitStack() as stack:
        clients = []
        for _ in range(nodes):
            live = await stack.enter_async_context(run_server(create_app(settings)))
            clients.append(
                await stack.enter_async_context(httpx.AsyncClient(base_url=live.url, timeout=10))
            )
        yield clients


async def post(
    client: httpx.AsyncClient, headers: dict[str, str], **body: object
) -> httpx.Response:
    body.setdefault("title", "hello")
    return await client.post("/api/notifications", json=body, headers=headers)


def assert_rate_limited(response: httpx.Response, slug: str = "rate-limited") -> None:
    assert_problem(response, 429, slug)
    assert int(response.headers["Retry-After"]) >= 1


async def test_a_publisher_past_its_burst_is_refused_until_its_bucket_refills(
    settings: Settings,
) -> None:
    configured = replace(settings, publish_rate=4, publish_burst=3, recipient_rate=0)
    publisher = auth(configured, "billing", SCOPE_PUBLISH)
    async with limited_clients(configured) as (client,):
        for n in range(3):
            assert (await post(client, publisher, recipients=[f"u{n}"])).status_code == 202
        refused = await post(client, publisher, recipients=["u9"])
        assert_rate_limited(refused)
        assert "publisher" in refused.json()["detail"]
        assert (await inbox_of(client, auth(configured, "u9")))["items"] == []

        await anyio.sleep(0.3)  # a quarter of a second refills one token at 4 per second
        assert (await post(client, publisher, recipients=["u9"])).status_code == 202
        assert len((await inbox_of(client, auth(configured, "u9")))["items"]) == 1


async def test_publishers_have_buckets_of_their_own(settings: Settings) -> None:
    configured = replace(settings, publish_rate=0.1, publish_burst=1, recipient_rate=0)
    async with limited_clients(configured) as (client,):
        first, second = (auth(configured, name, SCOPE_PUBLISH) for name in ("one", "two"))
        assert (await post(client, first, recipients=["alice"])).status_code == 202
        assert_rate_limited(await post(client, first, recipients=["alice"]))
        assert (await post(client, second, recipients=["alice"])).status_code == 202


async def test_a_recipient_past_its_burst_is_skipped_and_the_others_still_get_it(
    settings: Settings,
) -> None:
    configured = replace(settings, publish_rate=0, recipient_rate=0.1, recipient_burst=2)
    publisher = auth(configured, "billing", SCOPE_PUBLISH)
    async with limited_clients(configured) as (client,):
        for _ in range(2):
            assert (await post(client, publisher, recipients=["alice"])).status_code == 202
        both = await post(client, publisher, recipients=["alice", "bob"], title="to both")
        assert both.status_code == 202, both.text
        assert both.json()["recipients"] == 1
        assert both.json()["skipped"] == [{"recipient": "alice", "reason": "rate_limited"}]
        assert len((await inbox_of(client, auth(configured, "alice")))["items"]) == 2
        assert len((await inbox_of(client, auth(configured, "bob")))["items"]) == 1

        # With no one left to reach, the publish is refused whole and nothing is stored.
        refused = await post(client, publisher, recipients=["alice"], title="alone")
        assert_rate_limited(refused)
        assert "recipient" in refused.json()["detail"]
        assert len((await inbox_of(client, auth(configured, "alice")))["items"]) == 2


async def test_recipient_buckets_are_per_publisher_and_a_send_to_oneself_takes_none(
    settings: Settings,
) -> None:
    configured = replace(settings, publish_rate=0, recipient_rate=0.1, recipient_burst=1)
    first, second = (auth(configured, name, SCOPE_PUBLISH) for name in ("one", "two"))
    alice = auth(configured, "alice")
    async with limited_clients(configured) as (client,):
        assert (await post(client, first, recipients=["alice"])).status_code == 202
        assert_rate_limited(await post(client, first, recipients=["alice"]))
        assert (await post(client, second, recipients=["alice"])).status_code == 202
        for _ in range(3):
            assert (await post(client, alice, recipients=["alice"])).status_code == 202
        assert len((await inbox_of(client, alice))["items"]) == 5


async def test_topics_and_broadcasts_are_not_counted_per_recipient(settings: Settings) -> None:
    configured = replace(settings, publish_rate=0, recipient_rate=0.1, recipient_burst=1)
    publisher = auth(configured, "billing", SCOPE_PUBLISH)
    async with limited_clients(configured) as (client,):
        alice = auth(configured, "alice")
        await client.put("/api/topics/deploys/subscription", headers=alice)
        for _ in range(3):
            assert (await post(client, publisher, topic="deploys")).status_code == 202
        assert len((await inbox_of(client, alice))["items"]) == 3


async def test_every_node_draws_on_the_same_buckets(production_settings: Settings) -> None:
    configured = replace(production_settings, publish_rate=0.1, publish_burst=2, recipient_rate=0)
    publisher = auth(configured, "billing", SCOPE_PUBLISH)
    async with limited_clients(configured, nodes=2) as (first, second):
        assert (await post(first, publisher, recipients=["alice"])).status_code == 202
        assert (await post(second, publisher, recipients=["alice"])).status_code == 202
        assert_rate_limited(await post(first, publisher, recipients=["alice"]))
        assert_rate_limited(await post(second, publisher, recipients=["alice"]))


async def test_with_redis_unreachable_publishing_goes_on_unthrottled(
    production_settings: Settings,
) -> None:
    """Limits protect the service; refusing every publish while Redis is down would be the
    outage they guard against."""
    configured = replace(
        production_settings,
        redis_url=f"redis://127.0.0.1:{free_port()}/0",
        publish_rate=0.1,
        publish_burst=1,
    )
    publisher = auth(configured, "billing", SCOPE_PUBLISH)
    async with limited_clients(configured) as (client,):
        for _ in range(3):
            assert (await post(client, publisher, recipients=["alice"])).status_code == 202


async def test_streams_past_the_per_user_limit_are_refused_and_a_closed_one_frees_its_slot(
    settings: Settings,
) -> None:
    configured = replace(settings, max_streams_per_user=2)
    alice = auth(configured, "alice")
    async with limited_clients(configured) as (client,):
        async with open_stream(client, alice) as first:
            await first.next_of("unread_count")
            async with open_stream(client, alice) as second:
                await second.next_of("unread_count")
                third = await client.get("/api/stream", headers=alice)
                assert_rate_limited(third, "too-many-streams")
                ws_url = str(client.base_url).replace("http://", "ws://") + "/api/ws"
                with pytest.raises(InvalidStatus) as refused:
                    async with connect(ws_url, additional_headers=alice, open_timeout=5):
                        pass
                assert refused.value.response.status_code == 429
                # Bob's streams are his own.
                async with open_stream(client, auth(configured, "bob")) as bobs:
                    await bobs.next_of("unread_count")
        async with open_stream(client, alice) as again:
            await again.next_of("unread_count")


async def test_a_user_at_the_topic_limit_may_not_subscribe_to_another(
    settings: Settings,
) -> None:
    configured = replace(settings, max_topics_per_user=2)
    alice = auth(configured, "alice")
    async with limited_clients(configured) as (client,):
        for name in ("a", "b"):
            response = await client.put(f"/api/topics/{name}/subscription", headers=alice)
            assert response.status_code == 201
        refused = await client.put("/api/topics/c/subscription", headers=alice)
        assert_problem(refused, 422, "too-many-topics")
        again = await client.put("/api/topics/a/subscription", headers=alice)
        assert again.status_code == 200
        topics = (await client.get("/api/topics", headers=alice)).json()["items"]
        assert sorted(t["name"] for t in topics if t["subscribed"]) == ["a", "b"]
        await client.delete("/api/topics/a/subscription", headers=alice)
        assert (await client.put("/api/topics/c/subscription", headers=alice)).status_code == 201


async def test_concurrent_subscriptions_stop_at_the_limit(settings: Settings) -> None:
    configured = replace(settings, max_topics_per_user=3)
    alice = auth(configured, "alice")
    async with limited_clients(configured) as (client,):
        answers: list[int] = []
        async with anyio.create_task_group() as subscribing:
            for n in range(12):

                async def subscribe(n: int = n) -> None:
                    response = await client.put(f"/api/topics/t{n}/subscription", headers=alice)
                    answers.append(response.status_code)

                subscribing.start_soon(subscribe)
        assert sorted(answers) == [201] * 3 + [422] * 9
        topics = (await client.get("/api/topics", headers=alice)).json()["items"]
        assert sum(t["subscribed"] for t in topics) == 3
