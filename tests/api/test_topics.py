"""Topics: subscribe, list, unsubscribe, and fan-out of topic notifications to subscribers.
Private topics and what ordinary users may not do: tests/security/test_topics.py."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from herald_server.config import Settings
from tests.conftest import auth
from tests.helpers import assert_problem, open_stream, publish, titles_of

pytestmark = pytest.mark.anyio


async def topics_of(client: httpx.AsyncClient, headers: dict[str, str]) -> list[dict[str, Any]]:
    response = await client.get("/api/topics", headers=headers)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/json"
    items: list[dict[str, Any]] = response.json()["items"]
    return items


async def subscribe(client: httpx.AsyncClient, headers: dict[str, str], topic: str) -> None:
    response = await client.put(f"/api/topics/{topic}/subscription", headers=headers)
    assert response.status_code in (200, 201), response.text


async def test_subscribing_answers_201_then_200_when_repeated(
    client: httpx.AsyncClient, alice: dict[str, str]
) -> None:
    first = await client.put("/api/topics/deploys/subscription", headers=alice)
    assert first.status_code == 201
    assert first.headers["content-type"] == "application/json"
    assert first.json() == {"topic": "deploys", "subscribed": True}
    again = await client.put("/api/topics/deploys/subscription", headers=alice, json={})
    assert again.status_code == 200
    assert again.json() == {"topic": "deploys", "subscribed": True}
    assert await topics_of(client, alice) == [
        {"name": "deploys", "subscribed": True, "private": False}
    ]


async def test_the_list_shows_whether_the_caller_subscribes_and_counts_to_publishers_only(
    client: httpx.AsyncClient,
    settings: Settings,
    publisher: dict[str, str],
    alice: dict[str, str],
    bob: dict[str, str],
) -> None:
    carol = auth(settings, "carol")
    await subscribe(client, alice, "deploys")
    await subscribe(client, bob, "deploys")
    await subscribe(client, bob, "billing")
    assert await topics_of(client, alice) == [
        {"name": "billing", "subscribed": False, "private": False},
        {"name": "deploys", "subscribed": True, "private": False},
    ]
    assert await topics_of(client, bob) == [
        {"name": "billing", "subscribed": True, "private": False},
        {"name": "deploys", "subscribed": True, "private": False},
    ]
    assert await topics_of(client, carol) == [
        {"name": "billing", "subscribed": False, "private": False},
        {"name": "deploys", "subscribed": False, "private": False},
    ]
    assert await topics_of(client, publisher) == [
        {"name": "billing", "subscribed": False, "private": False, "subscribers": 1},
        {"name": "deploys", "subscribed": False, "private": False, "subscribers": 2},
    ]


async def test_a_topic_published_to_is_listed_without_subscribers(
    client: httpx.AsyncClient, publisher: dict[str, str], alice: dict[str, str]
) -> None:
    assert await topics_of(client, alice) == []
    await publish(client, publisher, topic="status", title="all green")
    assert await topics_of(client, alice) == [
        {"name": "status", "subscribed": False, "private": False}
    ]


async def test_unsubscribing_answers_204_then_404(
    client: httpx.AsyncClient, alice: dict[str, str], bob: dict[str, str]
) -> None:
    await subscribe(client, alice, "deploys")
    await subscribe(client, bob, "deploys")
    gone = await client.delete("/api/topics/deploys/subscription", headers=alice)
    assert gone.status_code == 204
    assert gone.content == b""
    again = await client.delete("/api/topics/deploys/subscription", headers=alice)
    assert_problem(again, 404, "not-found")
    assert await topics_of(client, alice) == [
        {"name": "deploys", "subscribed": False, "private": False}
    ]


async def test_unsubscribing_from_a_topic_never_subscribed_is_a_404(
    client: httpx.AsyncClient, alice: dict[str, str], bob: dict[str, str]
) -> None:
    await subscribe(client, bob, "deploys")
    for topic in ("deploys", "never-heard-of"):
        response = await client.delete(f"/api/topics/{topic}/subscription", headers=alice)
        assert_problem(response, 404, "not-found")
    assert await topics_of(client, bob) == [
        {"name": "deploys", "subscribed": True, "private": False}
    ]


@pytest.mark.parametrize(
    "name",
    ["-dash-first", ".dot-first", "has%20space", "a" * 101, "semi;colon", "%C3%BCmlaut", "a%2Fb"],
    ids=["dash", "dot", "space", "too-long", "semicolon", "non-ascii", "encoded-slash"],
)
async def test_an_invalid_topic_name_is_a_404_and_creates_nothing(
    client: httpx.AsyncClient, alice: dict[str, str], name: str
) -> None:
    put = await client.put(f"/api/topics/{name}/subscription", headers=alice)
    assert_problem(put, 404, "not-found")
    delete = await client.delete(f"/api/topics/{name}/subscription", headers=alice)
    assert_problem(delete, 404, "not-found")
    assert await topics_of(client, alice) == []


async def test_the_longest_valid_topic_name_is_accepted(
    client: httpx.AsyncClient, alice: dict[str, str]
) -> None:
    name = "a" + "b._-9" * 19 + "xyzw"
    assert len(name) == 100
    response = await client.put(f"/api/topics/{name}/subscription", headers=alice)
    assert response.status_code == 201
    assert response.json()["topic"] == name


@pytest.mark.parametrize(
    ("content", "media", "status", "slug"),
    [
        pytest.param(b"{", "application/json", 400, "malformed-body", id="truncated"),
        pytest.param(b'{"notify": true}', "application/json", 422, "validation-failed", id="key"),
        pytest.param(b"[]", "application/json", 422, "validation-failed", id="array"),
        pytest.param(b"{}", "text/plain", 415, "unsupported-media-type", id="text"),
    ],
)
async def test_a_malformed_subscription_body_is_refused_and_subscribes_nothing(
    client: httpx.AsyncClient,
    alice: dict[str, str],
    content: bytes,
    media: str,
    status: int,
    slug: str,
) -> None:
    response = await client.put(
        "/api/topics/deploys/subscription",
        headers={**alice, "Content-Type": media},
        content=content,
    )
    assert_problem(response, status, slug)
    assert await topics_of(client, alice) == []


async def test_a_subscriber_receives_a_topic_notification_and_a_non_subscriber_does_not(
    client: httpx.AsyncClient,
    publisher: dict[str, str],
    alice: dict[str, str],
    bob: dict[str, str],
) -> None:
    await subscribe(client, alice, "deploys")
    await subscribe(client, bob, "billing")
    async with open_stream(client, alice) as stream:
        await stream.next_of("unread_count")
        sent = await publish(client, publisher, topic="deploys", title="v2 is live")
        event = await stream.next_of("notification")
    assert sent["recipients"] == 1
    assert event.data["id"] == sent["id"]
    assert event.data["topic"] == "deploys"
    assert await titles_of(client, alice) == ["v2 is live"]
    assert await titles_of(client, bob) == []


async def test_an_unsubscribed_user_stops_receiving_the_topic(
    client: httpx.AsyncClient,
    publisher: dict[str, str],
    alice: dict[str, str],
    bob: dict[str, str],
) -> None:
    await subscribe(client, alice, "deploys")
    await subscribe(client, bob, "deploys")
    await publish(client, publisher, topic="deploys", title="v1")
    gone = await client.delete("/api/topics/deploys/subscription", headers=alice)
    assert gone.status_code == 204
    sent = await publish(client, publisher, topic="deploys", title="v2")
    assert sent["recipients"] == 1
    assert await titles_of(client, alice) == ["v1"]
    assert await titles_of(client, bob) == ["v2", "v1"]


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/api/topics"),
        ("PUT", "/api/topics/deploys/subscription"),
        ("DELETE", "/api/topics/deploys/subscription"),
    ],
)
async def test_topics_need_a_token(
    client: httpx.AsyncClient, alice: dict[str, str], method: str, path: str
) -> None:
    response = await client.request(method, path)
    assert_problem(response, 401, "unauthenticated")
    assert response.headers["www-authenticate"].startswith("Bearer")
    assert await topics_of(client, alice) == []
