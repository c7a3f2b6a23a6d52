"""The admin page's API: this node's live figures and every user's recent notifications."""

from __future__ import annotations

import httpx
import pytest

from herald_server.config import Settings
from tests.conftest import auth
from tests.helpers import assert_problem, open_stream, publish

pytestmark = pytest.mark.anyio


async def test_stats_count_this_nodes_open_streams(
    client: httpx.AsyncClient, admin: dict[str, str], alice: dict[str, str], bob: dict[str, str]
) -> None:
    async with (
        open_stream(client, alice) as first,
        open_stream(client, alice),
        open_stream(client, bob),
    ):
        await first.next_of("unread_count")
        response = await client.get("/api/admin/stats", headers=admin)
        assert response.status_code == 200, response.text
        stats = response.json()
    assert stats["connections"] == 3
    assert stats["users_connected"] == 2
    assert stats["events_out"] >= 1
    assert {"replays", "resets"} <= stats.keys()


async def test_recent_lists_every_users_notifications_with_tallies(
    client: httpx.AsyncClient,
    publisher: dict[str, str],
    admin: dict[str, str],
    alice: dict[str, str],
) -> None:
    first = await publish(client, publisher, recipients=["alice", "bob"], title="to two")
    await publish(client, alice, recipients=["alice"], title="to herself")
    read = await client.post(f"/api/notifications/{first['id']}/read", headers=alice)
    assert read.status_code == 200, read.text
    await publish(
        client, publisher, recipients=["carol"], title="later", send_at="2999-01-01T00:00:00Z"
    )

    response = await client.get("/api/admin/notifications", headers=admin)
    assert response.status_code == 200, response.text
    items = response.json()["items"]
    assert [item["title"] for item in items] == ["later", "to herself", "to two"]
    later, herself, two = items
    assert (two["publisher"], two["recipients"], two["read"]) == ("billing-service", 2, 1)
    assert (herself["publisher"], herself["recipients"], herself["read"]) == ("alice", 1, 0)
    assert later["send_at"] == "2999-01-01T00:00:00.000Z"
    assert later["recipients"] == 0
    assert two["send_at"] is None


async def test_recent_pages_back_with_before(
    client: httpx.AsyncClient, publisher: dict[str, str], admin: dict[str, str]
) -> None:
    for n in range(5):
        await publish(client, publisher, recipients=["alice"], title=f"n{n}")
    first = await client.get("/api/admin/notifications?limit=2", headers=admin)
    page = first.json()
    assert [item["title"] for item in page["items"]] == ["n4", "n3"]
    rest = await client.get(
        f"/api/admin/notifications?limit=10&before={page['next_cursor']}", headers=admin
    )
    assert [item["title"] for item in rest.json()["items"]] == ["n2", "n1", "n0"]
    assert rest.json()["next_cursor"] is None


@pytest.mark.parametrize("path", ["/api/admin/stats", "/api/admin/notifications"])
async def test_admin_views_need_the_admin_scope(
    client: httpx.AsyncClient,
    settings: Settings,
    publisher: dict[str, str],
    alice: dict[str, str],
    path: str,
) -> None:
    await publish(client, publisher, recipients=["bob"], title="bob's secret")
    for headers in (alice, publisher, auth(settings, "bob")):
        assert_problem(await client.get(path, headers=headers), 403, "forbidden")
    assert_problem(await client.get(path), 401, "unauthenticated")


@pytest.mark.parametrize("query", ["limit=0", "limit=101", "limit=x", "before=abc", "before=-1"])
async def test_recent_refuses_bad_parameters(
    client: httpx.AsyncClient, admin: dict[str, str], query: str
) -> None:
    response = await client.get(f"/api/admin/notifications?{query}", headers=admin)
    assert response.status_code == 400
    assert response.headers["content-type"] == "application/problem+json"
