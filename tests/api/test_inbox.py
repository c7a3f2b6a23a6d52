"""GET /api/notifications and the per-item and bulk state changes: the inbox as a user works it."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from herald_server.config import Settings
from tests.conftest import auth
from tests.helpers import assert_problem, inbox_of, publish, titles_of

pytestmark = pytest.mark.anyio

SINGLE_ACTIONS = ["read", "unread", "seen", "archive", "unarchive"]
BULK_ACTIONS = ["read", "seen", "archive"]


async def item_of(
    client: httpx.AsyncClient, headers: dict[str, str], notification_id: str
) -> dict[str, Any]:
    response = await client.get(f"/api/notifications/{notification_id}", headers=headers)
    assert response.status_code == 200, response.text
    item: dict[str, Any] = response.json()
    return item


async def counts_of(client: httpx.AsyncClient, headers: dict[str, str]) -> dict[str, int]:
    response = await client.get("/api/notifications/unread-count", headers=headers)
    assert response.status_code == 200, response.text
    counts: dict[str, int] = response.json()
    return counts


async def act(
    client: httpx.AsyncClient, headers: dict[str, str], notification_id: str, action: str
) -> dict[str, Any]:
    response = await client.post(f"/api/notifications/{notification_id}/{action}", headers=headers)
    assert response.status_code == 200, response.text
    item: dict[str, Any] = response.json()
    return item


async def send_many(
    client: httpx.AsyncClient, publisher: dict[str, str], count: int, to: str = "alice"
) -> list[str]:
    """Publish `count` notifications titled n0, n1, ...; their ids, oldest first."""
    return [
        (await publish(client, publisher, recipients=[to], title=f"n{n}"))["id"]
        for n in range(count)
    ]


# --- listing -------------------------------------------------------------------------------


async def test_the_inbox_lists_newest_first_with_counts(
    client: httpx.AsyncClient, publisher: dict[str, str], alice: dict[str, str]
) -> None:
    ids = await send_many(client, publisher, 3)
    page = await inbox_of(client, alice)
    assert [item["id"] for item in page["items"]] == ids[::-1]
    assert [item["title"] for item in page["items"]] == ["n2", "n1", "n0"]
    assert page["next_cursor"] is None
    assert page["unread_count"] == 3
    assert page["unseen_count"] == 3
    cursors = [int(item["cursor"]) for item in page["items"]]
    assert cursors == sorted(cursors, reverse=True)
    for item in page["items"]:
        assert {"id", "type", "title", "body", "data", "priority", "topic"} <= set(item)
        assert {"created_at", "seen_at", "read_at", "archived_at", "cursor"} <= set(item)


async def test_an_empty_inbox_is_an_empty_page(
    client: httpx.AsyncClient, alice: dict[str, str]
) -> None:
    page = await inbox_of(client, alice)
    assert page == {
        "items": [],
        "next_cursor": None,
        "unread_count": 0,
        "unseen_count": 0,
        "counts_at": "0",
    }


async def test_limit_caps_the_page_size(
    client: httpx.AsyncClient, publisher: dict[str, str], alice: dict[str, str]
) -> None:
    await send_many(client, publisher, 3)
    assert await titles_of(client, alice, limit="1") == ["n2"]
    assert await titles_of(client, alice, limit="100") == ["n2", "n1", "n0"]


@pytest.mark.parametrize("limit", ["0", "101", "-1", "abc", "1.5", ""])
async def test_a_limit_outside_1_to_100_is_a_400(
    client: httpx.AsyncClient, alice: dict[str, str], limit: str
) -> None:
    response = await client.get("/api/notifications", headers=alice, params={"limit": limit})
    assert_problem(response, 400, "invalid-parameter")


async def test_before_pages_back_until_next_cursor_is_null(
    client: httpx.AsyncClient, publisher: dict[str, str], alice: dict[str, str]
) -> None:
    ids = await send_many(client, publisher, 5)
    seen: list[str] = []
    pages = 0
    params = {"limit": "2"}
    while True:
        page = await inbox_of(client, alice, **params)
        pages += 1
        assert len(page["items"]) <= 2
        seen.extend(item["id"] for item in page["items"])
        if page["next_cursor"] is None:
            break
        assert page["next_cursor"] == page["items"][-1]["cursor"]
        params = {"limit": "2", "before": page["next_cursor"]}
        assert pages < 10
    assert pages == 3
    assert seen == ids[::-1]


async def test_after_returns_newer_items_oldest_first_and_the_cursor_for_the_next_poll(
    client: httpx.AsyncClient, publisher: dict[str, str], alice: dict[str, str]
) -> None:
    ids = await send_many(client, publisher, 3)
    first = await inbox_of(client, alice, after="0", limit="2")
    assert [item["id"] for item in first["items"]] == ids[:2]
    assert first["next_cursor"] == first["items"][-1]["cursor"]
    second = await inbox_of(client, alice, after=first["next_cursor"], limit="2")
    assert [item["id"] for item in second["items"]] == ids[2:]
    assert second["next_cursor"] == second["items"][-1]["cursor"]
    idle = await inbox_of(client, alice, after=second["next_cursor"], limit="2")
    assert idle["items"] == []
    assert idle["next_cursor"] == second["next_cursor"]
    assert idle["unread_count"] == 3

    later = await publish(client, publisher, recipients=["alice"], title="later")
    news = await inbox_of(client, alice, after=idle["next_cursor"])
    assert [item["id"] for item in news["items"]] == [later["id"]]
    assert int(news["next_cursor"]) > int(idle["next_cursor"])


async def test_a_cursor_from_the_list_resumes_the_poll_without_gaps_or_repeats(
    client: httpx.AsyncClient, publisher: dict[str, str], alice: dict[str, str]
) -> None:
    ids = await send_many(client, publisher, 2)
    newest = (await inbox_of(client, alice))["items"][0]["cursor"]
    await act(client, alice, ids[0], "read")  # a state change takes a sequence number too
    more = await send_many(client, publisher, 2)
    page = await inbox_of(client, alice, after=newest)
    assert [item["id"] for item in page["items"]] == more


@pytest.mark.parametrize(
    "params",
    [
        {"before": "abc"},
        {"after": "abc"},
        {"before": "-1"},
        {"after": "1.5"},
        {"after": "1234567890123456789"},
        {"before": "١٢"},
    ],
    ids=["before-word", "after-word", "negative", "fraction", "too-long", "non-ascii-digits"],
)
async def test_an_invalid_cursor_is_a_400(
    client: httpx.AsyncClient, alice: dict[str, str], params: dict[str, str]
) -> None:
    response = await client.get("/api/notifications", headers=alice, params=params)
    assert_problem(response, 400, "invalid-cursor")


async def test_before_and_after_together_is_a_400(
    client: httpx.AsyncClient, publisher: dict[str, str], alice: dict[str, str]
) -> None:
    await send_many(client, publisher, 3)
    response = await client.get(
        "/api/notifications", headers=alice, params={"before": "3", "after": "1"}
    )
    assert_problem(response, 400, "invalid-parameter")


# --- ETag / If-None-Match ------------------------------------------------------------------


async def test_an_unchanged_inbox_answers_304_to_if_none_match(
    client: httpx.AsyncClient, publisher: dict[str, str], alice: dict[str, str]
) -> None:
    await send_many(client, publisher, 2)
    first = await client.get("/api/notifications", headers=alice)
    etag = first.headers["etag"]
    again = await client.get("/api/notifications", headers={**alice, "If-None-Match": etag})
    assert again.status_code == 304
    assert again.content == b""
    assert again.headers["etag"] == etag
    other = await client.get("/api/notifications", headers={**alice, "If-None-Match": '"nope"'})
    assert other.status_code == 200
    assert other.json() == first.json()


async def test_a_new_notification_changes_the_etag(
    client: httpx.AsyncClient, publisher: dict[str, str], alice: dict[str, str]
) -> None:
    await send_many(client, publisher, 1)
    etag = (await client.get("/api/notifications", headers=alice)).headers["etag"]
    await publish(client, publisher, recipients=["alice"], title="news")
    changed = await client.get("/api/notifications", headers={**alice, "If-None-Match": etag})
    assert changed.status_code == 200
    assert changed.headers["etag"] != etag
    assert changed.json()["items"][0]["title"] == "news"


async def test_a_read_changes_the_etag(
    client: httpx.AsyncClient, publisher: dict[str, str], alice: dict[str, str]
) -> None:
    [sent] = await send_many(client, publisher, 1)
    etag = (await client.get("/api/notifications", headers=alice)).headers["etag"]
    await act(client, alice, sent, "read")
    changed = await client.get("/api/notifications", headers={**alice, "If-None-Match": etag})
    assert changed.status_code == 200
    assert changed.headers["etag"] != etag
    assert changed.json()["unread_count"] == 0


async def test_the_polling_path_answers_304_until_something_arrives(
    client: httpx.AsyncClient, publisher: dict[str, str], alice: dict[str, str]
) -> None:
    await send_many(client, publisher, 2)
    cursor = (await inbox_of(client, alice, after="0"))["next_cursor"]
    poll = await client.get("/api/notifications", headers=alice, params={"after": cursor})
    etag = poll.headers["etag"]
    headers = {**alice, "If-None-Match": etag}
    idle = await client.get("/api/notifications", headers=headers, params={"after": cursor})
    assert idle.status_code == 304
    await publish(client, publisher, recipients=["alice"], title="news")
    fresh = await client.get("/api/notifications", headers=headers, params={"after": cursor})
    assert fresh.status_code == 200
    assert [item["title"] for item in fresh.json()["items"]] == ["news"]


async def test_etags_are_per_user(
    client: httpx.AsyncClient,
    publisher: dict[str, str],
    alice: dict[str, str],
    bob: dict[str, str],
) -> None:
    await send_many(client, publisher, 1, to="alice")
    await publish(client, publisher, recipients=["bob"], title="for bob")
    etag = (await client.get("/api/notifications", headers=alice)).headers["etag"]
    response = await client.get("/api/notifications", headers={**bob, "If-None-Match": etag})
    assert response.status_code == 200
    assert [item["title"] for item in response.json()["items"]] == ["for bob"]


# --- filters -------------------------------------------------------------------------------


async def test_the_unread_filter(
    client: httpx.AsyncClient, publisher: dict[str, str], alice: dict[str, str]
) -> None:
    ids = await send_many(client, publisher, 3)
    await act(client, alice, ids[1], "read")
    assert await titles_of(client, alice, unread="true") == ["n2", "n0"]
    assert await titles_of(client, alice, unread="false") == ["n1"]
    assert await titles_of(client, alice) == ["n2", "n1", "n0"]


@pytest.mark.parametrize("name", ["unread", "archived"])
async def test_a_flag_that_is_not_true_or_false_is_a_400(
    client: httpx.AsyncClient, alice: dict[str, str], name: str
) -> None:
    response = await client.get("/api/notifications", headers=alice, params={name: "maybe"})
    assert_problem(response, 400, "invalid-parameter")


async def test_the_type_filter(
    client: httpx.AsyncClient, publisher: dict[str, str], alice: dict[str, str]
) -> None:
    await publish(client, publisher, recipients=["alice"], title="i1", type="invoice")
    await publish(client, publisher, recipients=["alice"], title="c1", type="comment")
    await publish(client, publisher, recipients=["alice"], title="i2", type="invoice")
    assert await titles_of(client, alice, type="invoice") == ["i2", "i1"]
    assert await titles_of(client, alice, type="comment") == ["c1"]
    assert await titles_of(client, alice, type="other") == []


async def test_the_topic_filter(
    client: httpx.AsyncClient, publisher: dict[str, str], alice: dict[str, str]
) -> None:
    for topic in ("deploys", "billing"):
        subscribed = await client.put(f"/api/topics/{topic}/subscription", headers=alice)
        assert subscribed.status_code == 201
    await publish(client, publisher, topic="deploys", title="v1 live")
    await publish(client, publisher, recipients=["alice"], title="direct")
    await publish(client, publisher, topic="billing", title="invoice")
    await publish(client, publisher, topic="deploys", title="v2 live")
    assert await titles_of(client, alice, topic="deploys") == ["v2 live", "v1 live"]
    assert await titles_of(client, alice, topic="billing") == ["invoice"]


@pytest.mark.parametrize("name", ["type", "topic"])
async def test_a_nul_character_in_a_filter_matches_nothing_or_is_a_400(
    client: httpx.AsyncClient, publisher: dict[str, str], alice: dict[str, str], name: str
) -> None:
    await send_many(client, publisher, 1)
    response = await client.get("/api/notifications", headers=alice, params={name: "n\u0000"})
    if response.status_code == 200:
        assert response.json()["items"] == []
    else:
        assert_problem(response, 400, "invalid-parameter")


async def test_archived_items_are_hidden_by_default_and_listed_with_archived_true(
    client: httpx.AsyncClient, publisher: dict[str, str], alice: dict[str, str]
) -> None:
    ids = await send_many(client, publisher, 3)
    archived = await act(client, alice, ids[1], "archive")
    assert archived["archived_at"] is not None
    page = await inbox_of(client, alice)
    assert [item["title"] for item in page["items"]] == ["n2", "n0"]
    assert page["unread_count"] == 2
    assert await titles_of(client, alice, archived="true") == ["n1"]
    assert await titles_of(client, alice, archived="false") == ["n2", "n0"]
    assert (await item_of(client, alice, ids[1]))["archived_at"] is not None

    restored = await act(client, alice, ids[1], "unarchive")
    assert restored["archived_at"] is None
    assert await titles_of(client, alice) == ["n2", "n1", "n0"]
    assert await titles_of(client, alice, archived="true") == []


# --- counts and states ---------------------------------------------------------------------


async def test_unread_count_agrees_with_the_list(
    client: httpx.AsyncClient, publisher: dict[str, str], alice: dict[str, str]
) -> None:
    ids = await send_many(client, publisher, 4)
    await act(client, alice, ids[0], "read")
    await act(client, alice, ids[1], "seen")
    counts = await counts_of(client, alice)
    # Four notifications and two changes: the counts are exact as of cursor 6.
    assert counts == {"unread_count": 3, "unseen_count": 2, "counts_at": "6"}
    page = await inbox_of(client, alice)
    assert (page["unread_count"], page["unseen_count"], page["counts_at"]) == (3, 2, "6")


async def test_get_one_returns_the_callers_item(
    client: httpx.AsyncClient, publisher: dict[str, str], alice: dict[str, str]
) -> None:
    sent = await publish(client, publisher, recipients=["alice"], title="one", data={"k": [1]})
    item = await item_of(client, alice, sent["id"])
    assert item["id"] == sent["id"]
    assert item["title"] == "one"
    assert item["data"] == {"k": [1]}
    assert item == (await inbox_of(client, alice))["items"][0]


async def test_read_sets_seen_too(
    client: httpx.AsyncClient, publisher: dict[str, str], alice: dict[str, str]
) -> None:
    [sent] = await send_many(client, publisher, 1)
    item = await act(client, alice, sent, "read")
    assert item["read_at"] is not None
    assert item["seen_at"] is not None
    assert await counts_of(client, alice) == {
        "unread_count": 0,
        "unseen_count": 0,
        "counts_at": "2",
    }
    again = await act(client, alice, sent, "read")
    assert again["read_at"] == item["read_at"]


async def test_unread_clears_read_but_keeps_seen(
    client: httpx.AsyncClient, publisher: dict[str, str], alice: dict[str, str]
) -> None:
    [sent] = await send_many(client, publisher, 1)
    read = await act(client, alice, sent, "read")
    item = await act(client, alice, sent, "unread")
    assert item["read_at"] is None
    assert item["seen_at"] == read["seen_at"]
    assert await counts_of(client, alice) == {
        "unread_count": 1,
        "unseen_count": 0,
        "counts_at": "3",
    }


async def test_seen_marks_seen_only(
    client: httpx.AsyncClient, publisher: dict[str, str], alice: dict[str, str]
) -> None:
    [sent] = await send_many(client, publisher, 1)
    item = await act(client, alice, sent, "seen")
    assert item["seen_at"] is not None
    assert item["read_at"] is None
    assert await counts_of(client, alice) == {
        "unread_count": 1,
        "unseen_count": 0,
        "counts_at": "2",
    }


async def test_delete_answers_204_and_then_the_item_is_gone(
    client: httpx.AsyncClient, publisher: dict[str, str], alice: dict[str, str]
) -> None:
    ids = await send_many(client, publisher, 2)
    deleted = await client.delete(f"/api/notifications/{ids[0]}", headers=alice)
    assert deleted.status_code == 204
    assert deleted.content == b""
    assert_problem(
        await client.get(f"/api/notifications/{ids[0]}", headers=alice), 404, "not-found"
    )
    again = await client.delete(f"/api/notifications/{ids[0]}", headers=alice)
    assert_problem(again, 404, "not-found")
    assert_problem(
        await client.post(f"/api/notifications/{ids[0]}/read", headers=alice), 404, "not-found"
    )
    assert await titles_of(client, alice) == ["n1"]
    assert await counts_of(client, alice) == {
        "unread_count": 1,
        "unseen_count": 1,
        "counts_at": "3",
    }


# --- bulk changes --------------------------------------------------------------------------


async def test_read_all_reads_everything(
    client: httpx.AsyncClient, publisher: dict[str, str], alice: dict[str, str]
) -> None:
    await send_many(client, publisher, 3)
    response = await client.post("/api/notifications/read-all", headers=alice)
    assert response.status_code == 200
    assert response.json() == {
        "changed": True,
        "unread_count": 0,
        "unseen_count": 0,
        "counts_at": "4",
    }
    page = await inbox_of(client, alice)
    assert all(item["read_at"] and item["seen_at"] for item in page["items"])
    repeat = await client.post("/api/notifications/read-all", headers=alice, json={})
    assert repeat.json() == {
        "changed": False,
        "unread_count": 0,
        "unseen_count": 0,
        "counts_at": "4",
    }


async def test_seen_all_sees_everything_and_reads_nothing(
    client: httpx.AsyncClient, publisher: dict[str, str], alice: dict[str, str]
) -> None:
    await send_many(client, publisher, 3)
    response = await client.post("/api/notifications/seen-all", headers=alice)
    assert response.status_code == 200
    assert response.json() == {
        "changed": True,
        "unread_count": 3,
        "unseen_count": 0,
        "counts_at": "4",
    }
    page = await inbox_of(client, alice)
    assert all(item["seen_at"] and item["read_at"] is None for item in page["items"])


async def test_archive_all_archives_everything(
    client: httpx.AsyncClient, publisher: dict[str, str], alice: dict[str, str]
) -> None:
    await send_many(client, publisher, 3)
    response = await client.post("/api/notifications/archive-all", headers=alice, json={})
    assert response.status_code == 200
    assert response.json() == {
        "changed": True,
        "unread_count": 0,
        "unseen_count": 0,
        "counts_at": "4",
    }
    assert await titles_of(client, alice) == []
    assert await titles_of(client, alice, archived="true") == ["n2", "n1", "n0"]


@pytest.mark.parametrize("action", BULK_ACTIONS)
async def test_a_bulk_change_up_to_a_cursor_leaves_later_items_untouched(
    client: httpx.AsyncClient, publisher: dict[str, str], alice: dict[str, str], action: str
) -> None:
    column = {"read": "read_at", "seen": "seen_at", "archive": "archived_at"}[action]
    await send_many(client, publisher, 3)
    listed = {item["title"]: item for item in (await inbox_of(client, alice))["items"]}
    up_to = listed["n1"]["cursor"]
    response = await client.post(
        f"/api/notifications/{action}-all", headers=alice, json={"up_to": up_to}
    )
    assert response.status_code == 200, response.text
    assert response.json()["changed"] is True
    after = {item["title"]: item for item in (await inbox_of(client, alice))["items"]}
    after.update(
        {item["title"]: item for item in (await inbox_of(client, alice, archived="true"))["items"]}
    )
    assert after["n0"][column] is not None
    assert after["n1"][column] is not None
    assert after["n2"][column] is None
    assert after["n2"] == listed["n2"]


@pytest.mark.parametrize("action", BULK_ACTIONS)
@pytest.mark.parametrize(
    ("content", "media", "status", "slug"),
    [
        pytest.param(b'{"up_to": ', "application/json", 400, "malformed-body", id="truncated"),
        pytest.param(b'{"up_to": 1}', "application/json", 422, "validation-failed", id="int"),
        pytest.param(b'{"up_to": "x"}', "application/json", 422, "validation-failed", id="word"),
        pytest.param(b'{"upto": "1"}', "application/json", 422, "validation-failed", id="unknown"),
        pytest.param(b'["1"]', "application/json", 422, "validation-failed", id="array"),
        pytest.param(b'{"up_to": "1"}', "text/plain", 415, "unsupported-media-type", id="text"),
    ],
)
async def test_a_malformed_bulk_body_is_refused_and_changes_nothing(
    client: httpx.AsyncClient,
    publisher: dict[str, str],
    alice: dict[str, str],
    action: str,
    content: bytes,
    media: str,
    status: int,
    slug: str,
) -> None:
    await send_many(client, publisher, 2)
    before = await inbox_of(client, alice)
    response = await client.post(
        f"/api/notifications/{action}-all",
        headers={**alice, "Content-Type": media},
        content=content,
    )
    assert_problem(response, status, slug)
    assert await inbox_of(client, alice) == before


async def test_a_bulk_change_only_touches_the_callers_inbox(
    client: httpx.AsyncClient,
    publisher: dict[str, str],
    alice: dict[str, str],
    bob: dict[str, str],
) -> None:
    await publish(client, publisher, recipients=["alice", "bob"], title="shared")
    before = await inbox_of(client, alice)
    for action in BULK_ACTIONS:
        response = await client.post(f"/api/notifications/{action}-all", headers=bob)
        assert response.status_code == 200
    assert await inbox_of(client, alice) == before
    assert await titles_of(client, bob, archived="true") == ["shared"]


# --- isolation -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "suffix", "prepare"),
    [
        ("GET", "", None),
        ("DELETE", "", None),
        ("POST", "/read", None),
        ("POST", "/unread", "read"),
        ("POST", "/seen", None),
        ("POST", "/archive", None),
        ("POST", "/unarchive", "archive"),
    ],
    ids=["get", "delete", "read", "unread", "seen", "archive", "unarchive"],
)
async def test_another_users_notification_is_not_found_and_unchanged(
    client: httpx.AsyncClient,
    publisher: dict[str, str],
    alice: dict[str, str],
    bob: dict[str, str],
    method: str,
    suffix: str,
    prepare: str | None,
) -> None:
    secret_title = "alice's secret 7f3a"
    sent = await publish(client, publisher, recipients=["alice"], title=secret_title)
    await publish(client, publisher, recipients=["bob"], title="bob's own")
    if prepare is not None:
        await act(client, alice, sent["id"], prepare)
    before = await item_of(client, alice, sent["id"])
    before_counts = await counts_of(client, alice)

    response = await client.request(method, f"/api/notifications/{sent['id']}{suffix}", headers=bob)
    assert_problem(response, 404, "not-found")
    assert secret_title not in response.text
    unknown = await client.request(method, f"/api/notifications/999999{suffix}", headers=bob)
    assert_problem(unknown, 404, "not-found")
    assert set(unknown.json()) == set(response.json())

    assert await item_of(client, alice, sent["id"]) == before
    assert await counts_of(client, alice) == before_counts
    assert await titles_of(client, bob) == ["bob's own"]


@pytest.mark.parametrize("raw_id", ["abc", "1.0", "-1", "1" * 19, "%C2%B2"])
async def test_a_malformed_id_is_simply_not_found(
    client: httpx.AsyncClient, publisher: dict[str, str], alice: dict[str, str], raw_id: str
) -> None:
    await send_many(client, publisher, 1)
    for method, suffix in (("GET", ""), ("DELETE", ""), ("POST", "/read")):
        response = await client.request(
            method, f"/api/notifications/{raw_id}{suffix}", headers=alice
        )
        assert_problem(response, 404, "not-found")


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/api/notifications"),
        ("GET", "/api/notifications/unread-count"),
        ("GET", "/api/notifications/1"),
        ("DELETE", "/api/notifications/1"),
        *(("POST", f"/api/notifications/1/{action}") for action in SINGLE_ACTIONS),
        *(("POST", f"/api/notifications/{action}-all") for action in BULK_ACTIONS),
    ],
)
async def test_every_inbox_endpoint_needs_a_token(
    client: httpx.AsyncClient,
    settings: Settings,
    publisher: dict[str, str],
    method: str,
    path: str,
) -> None:
    await send_many(client, publisher, 1)
    response = await client.request(method, path)
    assert_problem(response, 401, "unauthenticated")
    assert response.headers["www-authenticate"].startswith("Bearer")
    assert "n0" not in response.text
    alice_again = auth(settings, "alice")
    assert await counts_of(client, alice_again) == {
        "unread_count": 1,
        "unseen_count": 1,
        "counts_at": "1",
    }
