"""POST /api/notifications: who may send to whom, what is refused, and what a 202 promises."""

from __future__ import annotations

import base64
import json
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import anyio
import httpx
import pytest
from joserfc import jwk, jwt

from herald_server.config import Settings
from herald_server.models import SCOPE_ADMIN, SCOPE_PUBLISH
from tests.conftest import auth, token_for
from tests.helpers import assert_problem, inbox_of, open_stream, publish, titles_of

pytestmark = pytest.mark.anyio

TOO_LARGE_BODY = 1024 * 1024


async def assert_nothing_stored_for(client: httpx.AsyncClient, headers: dict[str, str]) -> None:
    page = await inbox_of(client, headers)
    assert page["items"] == []
    assert page["unread_count"] == 0
    counts = await client.get("/api/notifications/unread-count", headers=headers)
    assert counts.json() == {"unread_count": 0, "unseen_count": 0, "counts_at": "0"}


def in_seconds(seconds: float) -> str:
    return (datetime.now(UTC) + timedelta(seconds=seconds)).isoformat()


def b64url(document: dict[str, Any]) -> str:
    raw = json.dumps(document).encode()
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def bad_token(settings: Settings, kind: str) -> str:
    now = int(time.time())
    claims = {"sub": "billing-service", "scope": SCOPE_PUBLISH, "iat": now, "exp": now + 600}
    if kind == "expired":
        assert settings.jwt_secret is not None
        key = jwk.OctKey.import_key(settings.jwt_secret)
        expired = {**claims, "iat": now - 3600, "exp": now - 600}
        return jwt.encode({"alg": "HS256"}, expired, key, algorithms=["HS256"])
    if kind == "garbled":
        return "eyJhbGciOiJIUzI1NiJ9.bm90LWpzb24.c2lnbmF0dXJl"
    if kind == "junk":
        return "not-a-jwt"
    if kind in ("alg_none", "alg_None"):
        unsigned = {"alg": kind.removeprefix("alg_"), "typ": "JWT"}
        return f"{b64url(unsigned)}.{b64url(claims)}."
    if kind == "wrong_key":
        key = jwk.OctKey.import_key("another-secret-" + "y" * 40)
        return jwt.encode({"alg": "HS256"}, claims, key, algorithms=["HS256"])
    if kind == "tampered":
        signed_header, _, signature = token_for(settings, "alice").split(".")
        return f"{signed_header}.{b64url(claims)}.{signature}"
    raise AssertionError(kind)


# --- the happy path ------------------------------------------------------------------------


async def test_publish_answers_202_with_the_id_the_recipient_count_and_not_scheduled(
    client: httpx.AsyncClient, publisher: dict[str, str], alice: dict[str, str]
) -> None:
    response = await client.post(
        "/api/notifications",
        headers=publisher,
        json={
            "recipients": ["alice"],
            "type": "invoice.ready",
            "title": "Invoice ready",
            "body": "Invoice #12 is ready",
            "data": {"invoice": 12, "url": "/invoices/12"},
            "priority": "high",
        },
    )
    assert response.status_code == 202, response.text
    assert response.headers["content-type"] == "application/json"
    result = response.json()
    assert set(result) == {"id", "recipients", "scheduled"}
    assert isinstance(result["id"], str)
    assert result["recipients"] == 1
    assert result["scheduled"] is False

    page = await inbox_of(client, alice)
    [item] = page["items"]
    assert item["id"] == result["id"]
    assert item["type"] == "invoice.ready"
    assert item["title"] == "Invoice ready"
    assert item["body"] == "Invoice #12 is ready"
    assert item["data"] == {"invoice": 12, "url": "/invoices/12"}
    assert item["priority"] == "high"
    assert item["topic"] is None
    assert item["created_at"].endswith("Z")
    assert item["seen_at"] is None
    assert item["read_at"] is None
    assert page["unread_count"] == 1


async def test_defaults_fill_in_type_body_data_and_priority(
    client: httpx.AsyncClient, publisher: dict[str, str], alice: dict[str, str]
) -> None:
    sent = await publish(client, publisher, recipients=["alice"], title="Only a title")
    [item] = (await inbox_of(client, alice))["items"]
    assert item["id"] == sent["id"]
    assert item["type"] == "default"
    assert item["body"] == ""
    assert item["data"] is None
    assert item["priority"] == "normal"


async def test_duplicate_recipients_are_counted_and_delivered_once(
    client: httpx.AsyncClient,
    publisher: dict[str, str],
    alice: dict[str, str],
    bob: dict[str, str],
) -> None:
    sent = await publish(client, publisher, recipients=["alice", "bob", "alice", "alice"])
    assert sent["recipients"] == 2
    assert len((await inbox_of(client, alice))["items"]) == 1
    assert len((await inbox_of(client, bob))["items"]) == 1


async def test_html_in_the_title_is_stored_and_served_verbatim_as_a_json_string(
    client: httpx.AsyncClient, publisher: dict[str, str], alice: dict[str, str]
) -> None:
    title = "<img src=x onerror=alert(1)><script>alert('t')</script> & <b>bold</b>"
    body = '<a href="javascript:alert(2)">click</a>'
    sent = await publish(client, publisher, recipients=["alice"], title=title, body=body)
    response = await client.get(f"/api/notifications/{sent['id']}", headers=alice)
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    assert response.json()["title"] == title
    assert response.json()["body"] == body
    [listed] = (await inbox_of(client, alice))["items"]
    assert listed["title"] == title


# --- authorization -------------------------------------------------------------------------


async def test_a_token_without_publish_scope_cannot_send_to_others(
    client: httpx.AsyncClient, alice: dict[str, str], bob: dict[str, str]
) -> None:
    for recipients in (["bob"], ["alice", "bob"]):
        response = await client.post(
            "/api/notifications", headers=alice, json={"recipients": recipients, "title": "hi"}
        )
        assert_problem(response, 403, "forbidden")
    await assert_nothing_stored_for(client, bob)
    await assert_nothing_stored_for(client, alice)


async def test_a_token_without_publish_scope_can_send_to_itself(
    client: httpx.AsyncClient, alice: dict[str, str]
) -> None:
    sent = await publish(client, alice, recipients=["alice"], title="note to self")
    assert sent["recipients"] == 1
    assert await titles_of(client, alice) == ["note to self"]


async def test_publishing_to_a_topic_needs_the_publish_scope(
    client: httpx.AsyncClient, alice: dict[str, str], bob: dict[str, str]
) -> None:
    subscribed = await client.put("/api/topics/deploys/subscription", headers=bob)
    assert subscribed.status_code == 201
    response = await client.post(
        "/api/notifications", headers=alice, json={"topic": "deploys", "title": "hi"}
    )
    assert_problem(response, 403, "forbidden")
    await assert_nothing_stored_for(client, bob)


async def test_a_broadcast_with_only_the_publish_scope_is_forbidden(
    client: httpx.AsyncClient, publisher: dict[str, str], alice: dict[str, str]
) -> None:
    await publish(client, publisher, recipients=["alice"], title="first")
    response = await client.post(
        "/api/notifications", headers=publisher, json={"broadcast": True, "title": "everyone"}
    )
    assert_problem(response, 403, "forbidden")
    assert await titles_of(client, alice) == ["first"]


async def test_an_admin_broadcast_reaches_every_known_user(
    client: httpx.AsyncClient,
    settings: Settings,
    publisher: dict[str, str],
    admin: dict[str, str],
    alice: dict[str, str],
    bob: dict[str, str],
) -> None:
    carol = auth(settings, "carol")
    dave = auth(settings, "dave")
    await publish(client, publisher, recipients=["alice"], title="received")  # alice: received
    subscribed = await client.put("/api/topics/news/subscription", headers=bob)  # bob: subscribed
    assert subscribed.status_code == 201
    async with open_stream(client, carol) as stream:  # carol: streaming
        await stream.next_of("unread_count")
        sent = await publish(client, admin, broadcast=True, title="maintenance tonight")
        event = await stream.next_of("notification")
    assert event.data["id"] == sent["id"]
    assert sent["recipients"] == 3
    assert await titles_of(client, alice) == ["maintenance tonight", "received"]
    assert await titles_of(client, bob) == ["maintenance tonight"]
    assert await titles_of(client, carol) == ["maintenance tonight"]
    await assert_nothing_stored_for(client, dave)


# --- which audience ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "audience",
    [
        pytest.param({}, id="none"),
        pytest.param({"recipients": ["alice"], "topic": "news"}, id="recipients-and-topic"),
        pytest.param({"recipients": ["alice"], "broadcast": True}, id="recipients-and-broadcast"),
        pytest.param({"topic": "news", "broadcast": True}, id="topic-and-broadcast"),
        pytest.param({"recipients": []}, id="empty-recipients"),
    ],
)
async def test_exactly_one_non_empty_audience_is_required(
    client: httpx.AsyncClient,
    admin: dict[str, str],
    alice: dict[str, str],
    audience: dict[str, Any],
) -> None:
    subscribed = await client.put("/api/topics/news/subscription", headers=alice)
    assert subscribed.status_code == 201
    response = await client.post(
        "/api/notifications", headers=admin, json={"title": "hi", **audience}
    )
    assert_problem(response, 422, "validation-failed")
    await assert_nothing_stored_for(client, alice)


async def test_topic_publish_fans_out_to_subscribers_only(
    client: httpx.AsyncClient,
    settings: Settings,
    publisher: dict[str, str],
    alice: dict[str, str],
    bob: dict[str, str],
) -> None:
    carol = auth(settings, "carol")
    for headers in (alice, carol):
        subscribed = await client.put("/api/topics/deploys/subscription", headers=headers)
        assert subscribed.status_code == 201
    await client.put("/api/topics/billing/subscription", headers=bob)
    sent = await publish(client, publisher, topic="deploys", title="v2 is live")
    assert sent["recipients"] == 2
    for headers in (alice, carol):
        [item] = (await inbox_of(client, headers))["items"]
        assert item["id"] == sent["id"]
        assert item["topic"] == "deploys"
    await assert_nothing_stored_for(client, bob)


async def test_a_topic_without_subscribers_reaches_no_one(
    client: httpx.AsyncClient, publisher: dict[str, str], alice: dict[str, str]
) -> None:
    await publish(client, publisher, recipients=["alice"], title="direct")
    sent = await publish(client, publisher, topic="empty-room", title="echo")
    assert sent["recipients"] == 0
    assert await titles_of(client, alice) == ["direct"]


# --- idempotency ---------------------------------------------------------------------------


async def test_a_retry_with_the_same_idempotency_key_returns_the_first_result_and_sends_once(
    client: httpx.AsyncClient, publisher: dict[str, str], alice: dict[str, str]
) -> None:
    body = {"recipients": ["alice"], "title": "Card charged"}
    headers = {**publisher, "Idempotency-Key": "charge-0001"}
    first = await client.post("/api/notifications", headers=headers, json=body)
    assert first.status_code == 202
    assert "idempotent-replayed" not in first.headers
    second = await client.post("/api/notifications", headers=headers, json=body)
    assert second.status_code == 202
    assert second.json() == first.json()
    assert second.headers["idempotent-replayed"] == "true"
    page = await inbox_of(client, alice)
    assert [item["id"] for item in page["items"]] == [first.json()["id"]]
    assert page["unread_count"] == 1


async def test_concurrent_retries_with_one_idempotency_key_send_once(
    client: httpx.AsyncClient, publisher: dict[str, str], alice: dict[str, str]
) -> None:
    body = {"recipients": ["alice"], "title": "Card charged"}
    headers = {**publisher, "Idempotency-Key": "charge-concurrent"}
    responses: list[httpx.Response] = []

    async def attempt() -> None:
        responses.append(await client.post("/api/notifications", headers=headers, json=body))

    with anyio.fail_after(20):
        async with anyio.create_task_group() as tasks:
            for _ in range(6):
                tasks.start_soon(attempt)
    assert [response.status_code for response in responses] == [202] * 6
    assert len({response.json()["id"] for response in responses}) == 1
    replayed = [r for r in responses if r.headers.get("idempotent-replayed") == "true"]
    assert len(replayed) == 5
    assert len((await inbox_of(client, alice))["items"]) == 1


async def test_reusing_an_idempotency_key_with_a_different_body_is_a_conflict(
    client: httpx.AsyncClient, publisher: dict[str, str], alice: dict[str, str]
) -> None:
    headers = {**publisher, "Idempotency-Key": "charge-0002"}
    first = await client.post(
        "/api/notifications", headers=headers, json={"recipients": ["alice"], "title": "$5"}
    )
    assert first.status_code == 202
    reused = await client.post(
        "/api/notifications", headers=headers, json={"recipients": ["alice"], "title": "$500"}
    )
    assert_problem(reused, 409, "idempotency-key-reused")
    assert await titles_of(client, alice) == ["$5"]


async def test_idempotency_keys_belong_to_their_publisher(
    client: httpx.AsyncClient,
    settings: Settings,
    publisher: dict[str, str],
    alice: dict[str, str],
) -> None:
    other = auth(settings, "shipping-service", SCOPE_PUBLISH)
    body = {"recipients": ["alice"], "title": "Update"}
    first = await client.post(
        "/api/notifications", headers={**publisher, "Idempotency-Key": "k-1"}, json=body
    )
    second = await client.post(
        "/api/notifications", headers={**other, "Idempotency-Key": "k-1"}, json=body
    )
    assert first.status_code == second.status_code == 202
    assert "idempotent-replayed" not in second.headers
    assert second.json()["id"] != first.json()["id"]
    assert len((await inbox_of(client, alice))["items"]) == 2


async def test_a_replay_of_a_scheduled_publish_returns_the_first_result(
    client: httpx.AsyncClient, publisher: dict[str, str], alice: dict[str, str]
) -> None:
    body = {"recipients": ["alice"], "title": "later", "send_at": in_seconds(3600)}
    headers = {**publisher, "Idempotency-Key": "scheduled-1"}
    first = await client.post("/api/notifications", headers=headers, json=body)
    assert first.status_code == 202
    assert first.json()["scheduled"] is True
    second = await client.post("/api/notifications", headers=headers, json=body)
    assert second.status_code == 202
    assert second.headers["idempotent-replayed"] == "true"
    assert second.json() == first.json()
    await assert_nothing_stored_for(client, alice)


@pytest.mark.parametrize("key", ["", "k" * 201, "tab\there"])
async def test_an_invalid_idempotency_key_is_refused_before_anything_is_sent(
    client: httpx.AsyncClient, publisher: dict[str, str], alice: dict[str, str], key: str
) -> None:
    response = await client.post(
        "/api/notifications",
        headers={**publisher, "Idempotency-Key": key},
        json={"recipients": ["alice"], "title": "hi"},
    )
    assert_problem(response, 400, "invalid-parameter")
    await assert_nothing_stored_for(client, alice)


# --- send_at, expires_at, collapse_key -----------------------------------------------------


async def test_an_expires_at_in_the_past_is_refused(
    client: httpx.AsyncClient, publisher: dict[str, str], alice: dict[str, str]
) -> None:
    response = await client.post(
        "/api/notifications",
        headers=publisher,
        json={"recipients": ["alice"], "title": "stale", "expires_at": in_seconds(-60)},
    )
    assert_problem(response, 422, "validation-failed")
    await assert_nothing_stored_for(client, alice)


async def test_an_expires_at_before_send_at_is_refused(
    client: httpx.AsyncClient, publisher: dict[str, str], alice: dict[str, str]
) -> None:
    response = await client.post(
        "/api/notifications",
        headers=publisher,
        json={
            "recipients": ["alice"],
            "title": "never visible",
            "send_at": in_seconds(600),
            "expires_at": in_seconds(300),
        },
    )
    assert_problem(response, 422, "validation-failed")
    await assert_nothing_stored_for(client, alice)


async def test_an_expired_notification_vanishes_from_the_inbox(
    client: httpx.AsyncClient, publisher: dict[str, str], alice: dict[str, str]
) -> None:
    await publish(client, publisher, recipients=["alice"], title="stays")
    sent = await publish(
        client, publisher, recipients=["alice"], title="flash sale", expires_at=in_seconds(1.5)
    )
    [flash, _] = (await inbox_of(client, alice))["items"]
    assert flash["id"] == sent["id"]
    assert flash["expires_at"] is not None
    with anyio.fail_after(10):  # expiry is a point in time: poll until it has passed
        while True:
            page = await inbox_of(client, alice)
            if len(page["items"]) == 1:
                break
            await anyio.sleep(0.05)
    assert [item["title"] for item in page["items"]] == ["stays"]
    assert page["unread_count"] == 1
    gone = await client.get(f"/api/notifications/{sent['id']}", headers=alice)
    assert_problem(gone, 404, "not-found")


async def test_a_future_send_at_holds_the_notification_until_its_time(
    client: httpx.AsyncClient, publisher: dict[str, str], alice: dict[str, str]
) -> None:
    async with open_stream(client, alice) as stream:
        await stream.next_of("unread_count")
        sent = await publish(
            client, publisher, recipients=["alice"], title="reminder", send_at=in_seconds(1.5)
        )
        assert sent["scheduled"] is True
        assert sent["recipients"] == 1
        await assert_nothing_stored_for(client, alice)
        early = await client.get(f"/api/notifications/{sent['id']}", headers=alice)
        assert_problem(early, 404, "not-found")
        event = await stream.next_of("notification", timeout=10)
    assert event.data["id"] == sent["id"]
    assert event.data["title"] == "reminder"
    page = await inbox_of(client, alice)
    assert [item["id"] for item in page["items"]] == [sent["id"]]
    assert page["unread_count"] == 1


async def test_a_send_at_in_the_past_is_sent_at_once(
    client: httpx.AsyncClient, publisher: dict[str, str], alice: dict[str, str]
) -> None:
    sent = await publish(
        client, publisher, recipients=["alice"], title="overdue", send_at=in_seconds(-60)
    )
    assert sent["scheduled"] is False
    assert await titles_of(client, alice) == ["overdue"]


async def test_a_collapse_key_replaces_the_earlier_notification_for_its_recipients(
    client: httpx.AsyncClient,
    publisher: dict[str, str],
    alice: dict[str, str],
    bob: dict[str, str],
) -> None:
    first = await publish(
        client, publisher, recipients=["alice", "bob"], title="build running", collapse_key="b42"
    )
    await publish(client, publisher, recipients=["alice"], title="unrelated")
    second = await publish(
        client, publisher, recipients=["alice"], title="build passed", collapse_key="b42"
    )
    page = await inbox_of(client, alice)
    assert [item["title"] for item in page["items"]] == ["build passed", "unrelated"]
    assert page["items"][0]["id"] == second["id"]
    assert page["items"][0]["collapse_key"] == "b42"
    assert page["unread_count"] == 2
    replaced = await client.get(f"/api/notifications/{first['id']}", headers=alice)
    assert_problem(replaced, 404, "not-found")
    assert await titles_of(client, bob) == ["build running"]


# --- bad input changes nothing -------------------------------------------------------------


@pytest.mark.parametrize(
    "raw",
    [
        pytest.param(b'{"recipients": ["alice"], "title": "hi"', id="truncated"),
        pytest.param(b"{'recipients': ['alice'], 'title': 'hi'}", id="single-quotes"),
        pytest.param(b'{"recipients": ["alice"], "title": "hi",}', id="trailing-comma"),
        pytest.param(b"\xff\xfe{}", id="not-utf8"),
        pytest.param(b"", id="empty"),
    ],
)
async def test_malformed_json_is_a_400_and_stores_nothing(
    client: httpx.AsyncClient, publisher: dict[str, str], alice: dict[str, str], raw: bytes
) -> None:
    response = await client.post(
        "/api/notifications",
        headers={**publisher, "Content-Type": "application/json"},
        content=raw,
    )
    assert_problem(response, 400, "malformed-body")
    await assert_nothing_stored_for(client, alice)


@pytest.mark.parametrize(
    "extra",
    [
        pytest.param({"titel": "typo"}, id="typo"),
        pytest.param({"html": "<b>x</b>"}, id="unknown"),
        pytest.param({"publisher": "someone-else"}, id="server-owned"),
    ],
)
async def test_unknown_fields_are_refused_and_nothing_is_stored(
    client: httpx.AsyncClient,
    publisher: dict[str, str],
    alice: dict[str, str],
    extra: dict[str, Any],
) -> None:
    response = await client.post(
        "/api/notifications",
        headers=publisher,
        json={"recipients": ["alice"], "title": "hi", **extra},
    )
    document = assert_problem(response, 422, "validation-failed")
    assert next(iter(extra)) in document["detail"]
    await assert_nothing_stored_for(client, alice)


@pytest.mark.parametrize(
    "body",
    [
        pytest.param({"recipients": ["alice"], "title": 42}, id="title-number"),
        pytest.param({"recipients": ["alice"], "title": ""}, id="title-empty"),
        pytest.param({"recipients": ["alice"]}, id="title-missing"),
        pytest.param({"recipients": "alice", "title": "hi"}, id="recipients-string"),
        pytest.param({"recipients": [7], "title": "hi"}, id="recipient-number"),
        pytest.param({"recipients": [""], "title": "hi"}, id="recipient-empty"),
        pytest.param({"recipients": ["alice"], "title": "hi", "priority": "critical"}, id="prio"),
        pytest.param({"recipients": ["alice"], "title": "hi", "data": [1, 2]}, id="data-list"),
        pytest.param({"recipients": ["alice"], "title": "hi", "type": "a b"}, id="type-space"),
        pytest.param({"recipients": ["alice"], "title": "hi", "broadcast": "yes"}, id="bool"),
        pytest.param({"topic": "no spaces allowed", "title": "hi"}, id="topic-name"),
        pytest.param(
            {"recipients": ["alice"], "title": "hi", "send_at": "2030-01-01T00:00:00"},
            id="naive-time",
        ),
        pytest.param(
            {"recipients": ["alice"], "title": "hi", "expires_at": "tomorrow"}, id="bad-time"
        ),
        pytest.param(["alice", "hi"], id="array-body"),
        pytest.param("hi", id="string-body"),
    ],
)
async def test_wrong_types_are_refused_and_nothing_is_stored(
    client: httpx.AsyncClient, admin: dict[str, str], alice: dict[str, str], body: Any
) -> None:
    response = await client.post("/api/notifications", headers=admin, json=body)
    assert_problem(response, 422, "validation-failed")
    await assert_nothing_stored_for(client, alice)


@pytest.mark.parametrize("media", ["text/plain", "application/x-www-form-urlencoded", None])
async def test_a_body_that_is_not_declared_json_is_a_415(
    client: httpx.AsyncClient, publisher: dict[str, str], alice: dict[str, str], media: str | None
) -> None:
    headers = dict(publisher)
    if media is not None:
        headers["Content-Type"] = media
    response = await client.post(
        "/api/notifications",
        headers=headers,
        content=json.dumps({"recipients": ["alice"], "title": "hi"}).encode(),
    )
    assert_problem(response, 415, "unsupported-media-type")
    await assert_nothing_stored_for(client, alice)


async def test_a_one_megabyte_body_is_refused_with_413(
    client: httpx.AsyncClient, publisher: dict[str, str], alice: dict[str, str]
) -> None:
    response = await client.post(
        "/api/notifications",
        headers=publisher,
        json={"recipients": ["alice"], "title": "hi", "body": "x" * TOO_LARGE_BODY},
    )
    assert_problem(response, 413, "payload-too-large")
    await assert_nothing_stored_for(client, alice)


async def test_a_one_megabyte_chunked_body_without_length_is_refused_with_413(
    client: httpx.AsyncClient, publisher: dict[str, str], alice: dict[str, str]
) -> None:
    async def chunks() -> AsyncIterator[bytes]:
        yield b'{"recipients": ["alice"], "title": "hi", "body": "'
        for _ in range(TOO_LARGE_BODY // 65536):
            yield b"x" * 65536
        yield b'"}'

    response = await client.post(
        "/api/notifications",
        headers={**publisher, "Content-Type": "application/json"},
        content=chunks(),
    )
    assert "content-length" not in response.request.headers
    assert_problem(response, 413, "payload-too-large")
    await assert_nothing_stored_for(client, alice)


async def test_ten_thousand_and_one_recipients_are_refused(
    client: httpx.AsyncClient, publisher: dict[str, str], alice: dict[str, str]
) -> None:
    recipients = ["alice", *(f"user-{n}" for n in range(10_000))]
    response = await client.post(
        "/api/notifications", headers=publisher, json={"recipients": recipients, "title": "hi"}
    )
    assert_problem(response, 422, "too-many-recipients")
    await assert_nothing_stored_for(client, alice)


async def test_ten_thousand_recipients_are_accepted(
    client: httpx.AsyncClient, publisher: dict[str, str], alice: dict[str, str]
) -> None:
    recipients = ["alice", *(f"user-{n}" for n in range(9_999))]
    sent = await publish(client, publisher, recipients=recipients, title="all hands")
    assert sent["recipients"] == 10_000
    assert await titles_of(client, alice) == ["all hands"]


async def test_notification_content_over_10_kb_is_refused(
    client: httpx.AsyncClient, publisher: dict[str, str], alice: dict[str, str]
) -> None:
    response = await client.post(
        "/api/notifications",
        headers=publisher,
        json={"recipients": ["alice"], "title": "hi", "data": {"blob": "x" * 11_000}},
    )
    assert_problem(response, 413, "notification-too-large")
    multibyte = await client.post(
        "/api/notifications",
        headers=publisher,
        json={"recipients": ["alice"], "title": "hi", "body": "é" * 6_000},
    )
    assert_problem(multibyte, 413, "notification-too-large")
    await assert_nothing_stored_for(client, alice)


async def test_notification_content_under_10_kb_is_accepted(
    client: httpx.AsyncClient, publisher: dict[str, str], alice: dict[str, str]
) -> None:
    sent = await publish(
        client, publisher, recipients=["alice"], title="hi", data={"blob": "x" * 9_000}
    )
    response = await client.get(f"/api/notifications/{sent['id']}", headers=alice)
    assert response.json()["data"] == {"blob": "x" * 9_000}


# --- bad tokens ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "kind", ["expired", "garbled", "junk", "alg_none", "alg_None", "wrong_key", "tampered"]
)
async def test_a_bad_token_is_a_401_with_www_authenticate_and_stores_nothing(
    client: httpx.AsyncClient, settings: Settings, alice: dict[str, str], kind: str
) -> None:
    response = await client.post(
        "/api/notifications",
        headers={"Authorization": f"Bearer {bad_token(settings, kind)}"},
        json={"recipients": ["alice"], "title": "hi"},
    )
    assert_problem(response, 401, "unauthenticated")
    assert response.headers["www-authenticate"].startswith("Bearer")
    await assert_nothing_stored_for(client, alice)


@pytest.mark.parametrize(
    "authorization",
    [None, "", "Bearer", "Basic YWxpY2U6c2VjcmV0", "Bearer two words"],
    ids=["absent", "empty", "no-token", "basic", "spaces"],
)
async def test_a_missing_token_is_a_401_with_www_authenticate_and_stores_nothing(
    client: httpx.AsyncClient, alice: dict[str, str], authorization: str | None
) -> None:
    headers = {} if authorization is None else {"Authorization": authorization}
    response = await client.post(
        "/api/notifications", headers=headers, json={"recipients": ["alice"], "title": "hi"}
    )
    assert_problem(response, 401, "unauthenticated")
    assert response.headers["www-authenticate"].startswith("Bearer")
    await assert_nothing_stored_for(client, alice)


async def test_the_admin_scope_also_allows_sending_to_others(
    client: httpx.AsyncClient, settings: Settings, alice: dict[str, str]
) -> None:
    ops = auth(settings, "ops", SCOPE_ADMIN)
    sent = await publish(client, ops, recipients=["alice"], title="from ops")
    assert sent["recipients"] == 1
    assert await titles_of(client, alice) == ["from ops"]


@pytest.mark.parametrize("field", ["title", "body", "recipient", "collapse_key", "data"])
async def test_a_nul_character_is_refused_or_kept_never_a_server_error(
    client: httpx.AsyncClient, publisher: dict[str, str], alice: dict[str, str], field: str
) -> None:
    body: dict[str, Any] = {"recipients": ["alice"], "title": "hi"}
    value = "nul\u0000here"
    if field == "recipient":
        body["recipients"] = ["alice", value]
    elif field == "data":
        body["data"] = {"text": value}
    else:
        body[field] = value
    response = await client.post("/api/notifications", headers=publisher, json=body)
    if response.status_code != 202:
        assert_problem(response, 422, "validation-failed")
        await assert_nothing_stored_for(client, alice)
        return
    [item] = (await inbox_of(client, alice))["items"]
    if field == "data":
        assert item["data"] == {"text": value}
    elif field != "recipient":
        assert item[field] == value
