"""Hole 7: an ordinary user (mallory) tries to find, join and read a private topic, to learn
how many follow other topics, and to grow the topic list without end."""

from __future__ import annotations

import time
from typing import Any

import httpx
import pytest
from joserfc import jwk, jwt

from herald_server.config import Settings
from tests.conftest import auth
from tests.helpers import assert_problem, publish, titles_of

pytestmark = pytest.mark.anyio

PAYROLL = "acme-finance-payroll"


def claiming(settings: Settings, sub: str, topics: Any) -> dict[str, str]:
    """Headers with an API token whose `topics` claim is `topics`, as an IdP would issue it."""
    assert settings.jwt_secret is not None
    now = int(time.time())
    claims = {"sub": sub, "iat": now, "exp": now + 3600, "topics": topics}
    key = jwk.OctKey.import_key(settings.jwt_secret)
    token = jwt.encode({"alg": "HS256"}, claims, key, algorithms=["HS256"])
    return {"Authorization": f"Bearer {token}"}


async def listed(
    client: httpx.AsyncClient, headers: dict[str, str], **params: str
) -> list[dict[str, Any]]:
    response = await client.get("/api/topics", headers=headers, params=params)
    assert response.status_code == 200, response.text
    items: list[dict[str, Any]] = response.json()["items"]
    return items


async def make_private(client: httpx.AsyncClient, backend: dict[str, str], topic: str) -> None:
    answer = await client.put(
        f"/api/topics/{topic}/access", headers=backend, json={"private": True}
    )
    assert answer.status_code in (200, 201), answer.text
    assert answer.json()["private"] is True


async def add(client: httpx.AsyncClient, backend: dict[str, str], topic: str, user: str) -> None:
    answer = await client.put(f"/api/topics/{topic}/subscribers/{user}", headers=backend)
    assert answer.status_code == 201, answer.text


async def test_an_ordinary_user_can_neither_see_nor_join_nor_read_a_private_topic(
    client: httpx.AsyncClient,
    settings: Settings,
    publisher: dict[str, str],
    alice: dict[str, str],
) -> None:
    mallory = auth(settings, "mallory")
    await make_private(client, publisher, PAYROLL)
    await add(client, publisher, PAYROLL, "alice")

    assert PAYROLL not in [topic["name"] for topic in await listed(client, mallory)]
    joined = await client.put(f"/api/topics/{PAYROLL}/subscription", headers=mallory)
    assert_problem(joined, 404, "not-found")
    sent = await publish(client, publisher, topic=PAYROLL, title="salaries")

    assert sent["recipients"] == 1
    assert await titles_of(client, mallory) == []
    assert await titles_of(client, alice) == ["salaries"]
    assert await listed(client, alice) == [{"name": PAYROLL, "subscribed": True, "private": True}]


async def test_one_who_joined_while_it_was_public_is_out_once_it_turns_private(
    client: httpx.AsyncClient, settings: Settings, publisher: dict[str, str]
) -> None:
    mallory = auth(settings, "mallory")
    joined = await client.put(f"/api/topics/{PAYROLL}/subscription", headers=mallory)
    assert joined.status_code == 201
    await make_private(client, publisher, PAYROLL)
    await add(client, publisher, PAYROLL, "alice")

    sent = await publish(client, publisher, topic=PAYROLL, title="salaries")
    assert sent["recipients"] == 1
    assert await titles_of(client, mallory) == []
    assert await listed(client, mallory) == []
    again = await client.put(f"/api/topics/{PAYROLL}/subscription", headers=mallory)
    assert_problem(again, 404, "not-found")


async def test_a_token_claim_lets_its_holder_join_a_private_topic_and_no_one_else(
    client: httpx.AsyncClient, settings: Settings, publisher: dict[str, str]
) -> None:
    await make_private(client, publisher, PAYROLL)
    alice = claiming(settings, "alice", [PAYROLL])
    mallory = claiming(settings, "mallory", ["acme-marketing"])
    assert await listed(client, alice) == [{"name": PAYROLL, "subscribed": False, "private": True}]
    assert await listed(client, mallory) == []

    assert (
        await client.put(f"/api/topics/{PAYROLL}/subscription", headers=alice)
    ).status_code == 201
    refused = await client.put(f"/api/topics/{PAYROLL}/subscription", headers=mallory)
    assert_problem(refused, 404, "not-found")
    await publish(client, publisher, topic=PAYROLL, title="salaries")
    assert await titles_of(client, alice) == ["salaries"]
    assert await titles_of(client, mallory) == []


async def test_a_malformed_topics_claim_is_refused(
    client: httpx.AsyncClient, settings: Settings
) -> None:
    for malformed in (PAYROLL, [PAYROLL, 7], {"name": PAYROLL}):
        response = await client.get("/api/topics", headers=claiming(settings, "m", malformed))
        assert_problem(response, 401, "unauthenticated")


async def test_only_the_backend_makes_a_topic_private_or_adds_and_removes_users(
    client: httpx.AsyncClient, settings: Settings, publisher: dict[str, str]
) -> None:
    mallory = auth(settings, "mallory")
    attempts = [
        ("PUT", f"/api/topics/{PAYROLL}/access", {"private": False}),
        ("PUT", f"/api/topics/{PAYROLL}/subscribers/mallory", None),
        ("DELETE", f"/api/topics/{PAYROLL}/subscribers/alice", None),
    ]
    await make_private(client, publisher, PAYROLL)
    await add(client, publisher, PAYROLL, "alice")
    for method, path, body in attempts:
        response = await client.request(method, path, headers=mallory, json=body)
        assert_problem(response, 403, "forbidden")
    await publish(client, publisher, topic=PAYROLL, title="salaries")
    assert await titles_of(client, mallory) == []
    assert await titles_of(client, auth(settings, "alice")) == ["salaries"]

    removed = await client.delete(f"/api/topics/{PAYROLL}/subscribers/alice", headers=publisher)
    assert removed.status_code == 204
    again = await client.delete(f"/api/topics/{PAYROLL}/subscribers/alice", headers=publisher)
    assert_problem(again, 404, "not-found")
    assert (await publish(client, publisher, topic=PAYROLL, title="after"))["recipients"] == 0


async def test_subscribe_and_unsubscribe_churn_leaves_the_topic_list_as_it_was(
    client: httpx.AsyncClient, settings: Settings, publisher: dict[str, str]
) -> None:
    mallory = auth(settings, "mallory")
    await client.put("/api/topics/deploys/subscription", headers=auth(settings, "alice"))
    before = await listed(client, publisher)
    for n in range(30):
        topic = f"junk-{n}"
        assert (await client.put(f"/api/topics/{topic}/subscription", headers=mallory)).is_success
        assert (
            await client.delete(f"/api/topics/{topic}/subscription", headers=mallory)
        ).is_success
    assert await listed(client, publisher) == before


async def test_another_users_view_shows_no_subscriber_counts(
    client: httpx.AsyncClient,
    settings: Settings,
    publisher: dict[str, str],
    bob: dict[str, str],
) -> None:
    await client.put("/api/topics/deploys/subscription", headers=bob)
    mallory = auth(settings, "mallory")
    assert await listed(client, mallory) == [
        {"name": "deploys", "subscribed": False, "private": False}
    ]
    assert [topic["subscribers"] for topic in await listed(client, publisher)] == [1]


async def test_the_list_comes_in_bounded_pages(
    client: httpx.AsyncClient, settings: Settings, alice: dict[str, str]
) -> None:
    names = [f"t{n}" for n in range(7)]
    for name in names:
        assert (await client.put(f"/api/topics/{name}/subscription", headers=alice)).is_success
    seen: list[str] = []
    params = {"limit": "3"}
    for _ in range(len(names)):
        page = (await client.get("/api/topics", headers=alice, params=params)).json()
        assert len(page["items"]) <= 3
        seen += [topic["name"] for topic in page["items"]]
        if page["next_cursor"] is None:
            break
        params = {"limit": "3", "after": page["next_cursor"]}
    assert seen == names

    for bad in ({"limit": "101"}, {"limit": "0"}, {"after": "-x"}, {"after": "a b"}):
        response = await client.get("/api/topics", headers=alice, params=bad)
        assert_problem(response, 400, "invalid-parameter")
