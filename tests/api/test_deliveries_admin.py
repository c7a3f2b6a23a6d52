"""The operator's view of deliveries, admin only: GET /api/admin/deliveries (filters, paging),
GET /api/admin/deliveries/{id}, GET /api/admin/dead-letters, and the per-type defaults
GET /api/admin/types, PUT|DELETE /api/admin/types/{type}."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import httpx
import pytest

from herald_server.config import Settings
from herald_server.main import create_app
from herald_server.models import SCOPE_ADMIN, SCOPE_PUBLISH
from tests.api.bodies import MALFORMED, get_json, malformed, send_malformed
from tests.conftest import auth, run_server
from tests.helpers import assert_problem, eventually
from tests.servers.smtp import smtp_server
from tests.servers.webhook import webhook_receiver

pytestmark = pytest.mark.anyio

BACKOFF = (0.05, 0.05)
DELIVERY_FIELDS = {
    "id",
    "notification_id",
    "user",
    "channel",
    "target",
    "status",
    "reason",
    "attempts",
    "due_at",
    "created_at",
    "updated_at",
    "last_error",
    "provider_id",
    "digest_id",
}


@dataclass
class Sent:
    """What the scenario published, and the deliveries it settled into."""

    client: httpx.AsyncClient
    admin: dict[str, str]
    # Alice and Bob by webhook, Alice by email too.
    to_two: str
    # Carol's webhook fails for good: a dead letter.
    to_carol: str
    # (user, channel) → delivery id
    ids: dict[tuple[str, str], str]


async def _register_hooks(
    client: httpx.AsyncClient, settings: Settings, url: Any
) -> dict[str, str]:
    secrets = {}
    for user in ("alice", "bob", "carol"):
        hook = await client.post(
            "/api/webhooks", headers=auth(settings, user), json={"url": url(user)}
        )
        assert hook.status_code == 201, hook.text
        secrets[user] = hook.json()["secret"]
    return secrets


async def _publish(client: httpx.AsyncClient, settings: Settings, users: list[str]) -> str:
    publisher = auth(settings, "shop", SCOPE_PUBLISH)
    body = {"recipients": users, "title": f"to {', '.join(users)}"}
    response = await client.post("/api/notifications", headers=publisher, json=body)
    assert response.status_code == 202, response.text
    return str(response.json()["id"])


async def _settled(client: httpx.AsyncClient, admin: dict[str, str]) -> dict[tuple[str, str], str]:
    expected = {
        ("alice", "webhook"): "delivered",
        ("alice", "email"): "sent",
        ("bob", "webhook"): "delivered",
        ("carol", "webhook"): "failed",
    }
    found: dict[tuple[str, str], dict[str, Any]] = {}

    async def reached() -> bool:
        items = (await get_json(client, "/api/admin/deliveries", admin))["items"]
        found.clear()
        found.update({(item["user"], item["channel"]): item for item in items})
        return {key: item["status"] for key, item in found.items()} == expected

    await eventually(reached)
    return {key: item["id"] for key, item in found.items()}


@pytest.fixture
async def sent(settings: Settings, tmp_path: Path) -> AsyncIterator[Sent]:
    async with smtp_server(tmp_path=tmp_path) as smtp, webhook_receiver() as hooks:
        configured = replace(
            settings,
            smtp_url=smtp.url,
            allow_private_targets=True,
            in_process_worker=True,
            delivery_backoff=BACKOFF,
            dispatch_interval=0.05,
            provider_timeout_seconds=2,
            job_visibility_seconds=5,
        )
        async with (
            run_server(create_app(configured)) as live,
            httpx.AsyncClient(base_url=live.url, timeout=10) as client,
        ):
            admin = auth(configured, "ops", SCOPE_ADMIN)
            for user, secret in (await _register_hooks(client, configured, hooks.url)).items():
                hooks.set_secret(user, secret)
            hooks.fail_always("carol", 500)
            publisher = auth(configured, "shop", SCOPE_PUBLISH)
            contact = {"email": "alice@example.com"}
            assert (
                await client.put("/api/contacts/alice", headers=publisher, json=contact)
            ).is_success
            email_on = {"channels": {"email": True}}
            alice = auth(configured, "alice")
            assert (await client.put("/api/preferences", headers=alice, json=email_on)).is_success
            to_two = await _publish(client, configured, ["alice", "bob"])
            to_carol = await _publish(client, configured, ["carol"])
            yield Sent(client, admin, to_two, to_carol, await _settled(client, admin))


async def page_of(sent: Sent, path: str = "/api/admin/deliveries", **params: str) -> dict[str, Any]:
    response = await sent.client.get(path, headers=sent.admin, params=params)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/json"
    assert response.headers["cache-control"] == "no-store"
    page: dict[str, Any] = response.json()
    return page


def keys_of(page: dict[str, Any]) -> list[tuple[str, str]]:
    return [(item["user"], item["channel"]) for item in page["items"]]


# --- deliveries ----------------------------------------------------------------------------


async def test_the_list_holds_every_delivery_newest_first(sent: Sent) -> None:
    page = await page_of(sent)
    items = page["items"]
    assert len(items) == 4
    assert all(set(item) == DELIVERY_FIELDS for item in items)
    ids = [int(item["id"]) for item in items]
    assert ids == sorted(ids, reverse=True)
    assert page["next_cursor"] is None
    by_key = {(item["user"], item["channel"]): item for item in items}
    email = by_key[("alice", "email")]
    assert (email["notification_id"], email["target"], email["attempts"]) == (
        sent.to_two,
        "alice@example.com",
        1,
    )
    dead = by_key[("carol", "webhook")]
    assert (dead["notification_id"], dead["attempts"]) == (sent.to_carol, len(BACKOFF) + 1)
    assert dead["last_error"]


FILTERS: list[tuple[dict[str, str], set[tuple[str, str]]]] = [
    ({"status": "delivered"}, {("alice", "webhook"), ("bob", "webhook")}),
    ({"status": "sent"}, {("alice", "email")}),
    ({"status": "failed"}, {("carol", "webhook")}),
    ({"status": "pending"}, set()),
    ({"channel": "email"}, {("alice", "email")}),
    ({"channel": "webhook"}, {("alice", "webhook"), ("bob", "webhook"), ("carol", "webhook")}),
    ({"channel": "sms"}, set()),
    ({"user": "alice"}, {("alice", "webhook"), ("alice", "email")}),
    ({"user": "nobody"}, set()),
    ({"user": "alice", "channel": "webhook"}, {("alice", "webhook")}),
    ({"user": "carol", "status": "delivered"}, set()),
]


async def test_filters_narrow_the_list(sent: Sent) -> None:
    # One scenario for every filter: setting it up is the slow part.
    for params, expected in FILTERS:
        assert set(keys_of(await page_of(sent, **params))) == expected, params


async def test_the_notification_filter_lists_one_notifications_deliveries(sent: Sent) -> None:
    two = await page_of(sent, notification=sent.to_two)
    assert set(keys_of(two)) == {("alice", "webhook"), ("alice", "email"), ("bob", "webhook")}
    assert keys_of(await page_of(sent, notification=sent.to_carol)) == [("carol", "webhook")]
    assert keys_of(await page_of(sent, notification="999999")) == []


async def test_before_pages_back_without_gaps_or_repeats(sent: Sent) -> None:
    everything = [item["id"] for item in (await page_of(sent))["items"]]
    first = await page_of(sent, limit="3")
    assert [item["id"] for item in first["items"]] == everything[:3]
    assert first["next_cursor"] == everything[2]
    rest = await page_of(sent, limit="3", before=first["next_cursor"])
    assert [item["id"] for item in rest["items"]] == everything[3:]
    assert rest["next_cursor"] is None
    # A full last page still names a cursor; the page after it is empty.
    exact = await page_of(sent, limit="2", before=everything[1])
    assert [item["id"] for item in exact["items"]] == everything[2:]
    assert (await page_of(sent, before=exact["next_cursor"]))["items"] == []


async def test_one_delivery_shows_its_attempts(sent: Sent) -> None:
    delivered_id = sent.ids[("bob", "webhook")]
    detail = await get_json(sent.client, f"/api/admin/deliveries/{delivered_id}", sent.admin)
    assert set(detail) == DELIVERY_FIELDS | {"history"}
    assert (detail["id"], detail["status"], detail["user"]) == (delivered_id, "delivered", "bob")
    [attempt] = detail["history"]
    assert set(attempt) == {"attempt", "started_at", "finished_at", "outcome", "detail"}
    assert (attempt["attempt"], attempt["outcome"]) == (1, "delivered")

    dead_id = sent.ids[("carol", "webhook")]
    dead = await get_json(sent.client, f"/api/admin/deliveries/{dead_id}", sent.admin)
    assert [attempt["attempt"] for attempt in dead["history"]] == [1, 2, 3]
    assert all("500" in (attempt["detail"] or "") for attempt in dead["history"])


@pytest.mark.parametrize("delivery_id", ["999999", "abc", "-1", "1e3", "9" * 19])
async def test_a_delivery_id_that_names_none_is_a_404(
    client: httpx.AsyncClient, admin: dict[str, str], delivery_id: str
) -> None:
    response = await client.get(f"/api/admin/deliveries/{delivery_id}", headers=admin)
    assert_problem(response, 404, "not-found")


async def test_dead_letters_are_the_failed_deliveries(sent: Sent) -> None:
    letters = await page_of(sent, "/api/admin/dead-letters")
    assert [item["id"] for item in letters["items"]] == [sent.ids[("carol", "webhook")]]
    assert letters["items"][0]["status"] == "failed"
    assert letters["next_cursor"] is None
    assert (await page_of(sent, "/api/admin/dead-letters", user="alice"))["items"] == []
    assert (await page_of(sent, "/api/admin/dead-letters", channel="email"))["items"] == []
    one = await page_of(sent, "/api/admin/dead-letters", limit="1")
    assert one["next_cursor"] == sent.ids[("carol", "webhook")]


BAD_FILTERS = [
    ("channel=fax", "invalid-parameter"),
    ("user=", "invalid-parameter"),
    ("user=" + "u" * 201, "invalid-parameter"),
    ("user=al%0Aice", "invalid-parameter"),
    ("limit=0", "invalid-parameter"),
    ("limit=101", "invalid-parameter"),
    ("limit=ten", "invalid-parameter"),
    ("before=abc", "invalid-cursor"),
    ("before=-1", "invalid-cursor"),
    ("notification=abc", "invalid-cursor"),
    ("notification=" + "9" * 19, "invalid-cursor"),
]
# The dead-letter queue is status=failed by definition; only the full list takes a status.
BAD_STATUS = [("status=bogus", "invalid-parameter"), ("status=", "invalid-parameter")]


@pytest.mark.parametrize(
    ("path", "query", "slug"),
    [("/api/admin/deliveries", query, slug) for query, slug in BAD_FILTERS + BAD_STATUS]
    + [("/api/admin/dead-letters", query, slug) for query, slug in BAD_FILTERS],
)
async def test_a_bad_filter_is_a_400(
    client: httpx.AsyncClient, admin: dict[str, str], path: str, query: str, slug: str
) -> None:
    assert_problem(await client.get(f"{path}?{query}", headers=admin), 400, slug)


async def test_deliveries_refuse_anyone_without_the_admin_scope(
    sent: Sent, settings: Settings
) -> None:
    own = sent.ids[("alice", "webhook")]
    for headers in (
        auth(settings, "alice"),
        auth(settings, "shop", SCOPE_PUBLISH),
        auth(settings, "carol"),
    ):
        for path in (
            "/api/admin/deliveries",
            "/api/admin/deliveries?user=alice",
            f"/api/admin/deliveries/{own}",
            "/api/admin/dead-letters",
        ):
            problem = assert_problem(await sent.client.get(path, headers=headers), 403, "forbidden")
            assert "alice@example.com" not in str(problem)
    assert_problem(await sent.client.get("/api/admin/deliveries"), 401, "unauthenticated")


# --- per-type defaults ---------------------------------------------------------------------


BUILD = {
    "channels": {"email": True, "push": False},
    "escalation": [
        {"after_seconds": 300, "unless": "seen", "channel": "email"},
        {"after_seconds": 3600, "unless": "read", "channel": "sms"},
    ],
}


async def put_type(
    client: httpx.AsyncClient, admin: dict[str, str], kind: str, body: dict[str, Any], status: int
) -> dict[str, Any]:
    response = await client.put(f"/api/admin/types/{kind}", headers=admin, json=body)
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/json"
    stored: dict[str, Any] = response.json()
    return stored


async def types_of(client: httpx.AsyncClient, admin: dict[str, str]) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = (await get_json(client, "/api/admin/types", admin))["items"]
    return items


async def test_type_defaults_are_stored_201_replaced_200_and_listed(
    client: httpx.AsyncClient, admin: dict[str, str]
) -> None:
    assert await types_of(client, admin) == []
    stored = await put_type(client, admin, "build", BUILD, 201)
    assert {key: stored[key] for key in BUILD} == BUILD
    assert stored["type"] == "build"
    assert stored["updated_at"].endswith("Z")
    assert await types_of(client, admin) == [stored]

    replaced = await put_type(client, admin, "build", {"channels": {"sms": True}}, 200)
    assert (replaced["channels"], replaced["escalation"]) == ({"sms": True}, [])
    assert await types_of(client, admin) == [replaced]


async def test_the_type_star_holds_the_defaults_of_every_type(
    client: httpx.AsyncClient, admin: dict[str, str]
) -> None:
    every = await put_type(client, admin, "*", {"channels": {"email": True}}, 201)
    assert every["type"] == "*"
    build = await put_type(client, admin, "build", BUILD, 201)
    assert await types_of(client, admin) == [every, build]
    gone = await client.delete("/api/admin/types/*", headers=admin)
    assert gone.status_code == 204
    assert await types_of(client, admin) == [build]


async def test_deleting_type_defaults_answers_204_then_404(
    client: httpx.AsyncClient, admin: dict[str, str]
) -> None:
    await put_type(client, admin, "build", BUILD, 201)
    kept = await put_type(client, admin, "deploy", {"channels": {"push": True}}, 201)
    gone = await client.delete("/api/admin/types/build", headers=admin)
    assert gone.status_code == 204
    assert gone.content == b""
    assert await types_of(client, admin) == [kept]
    again = await client.delete("/api/admin/types/build", headers=admin)
    assert_problem(again, 404, "not-found")


INVALID_DEFAULTS = {
    "negative-delay": {"escalation": [{"after_seconds": -1, "unless": "seen", "channel": "email"}]},
    "delay-over-30-days": {
        "escalation": [{"after_seconds": 30 * 86_400 + 1, "unless": "seen", "channel": "email"}]
    },
    "delay-not-a-number": {
        "escalation": [{"after_seconds": "300", "unless": "seen", "channel": "email"}]
    },
    "fractional-delay": {
        "escalation": [{"after_seconds": 1.5, "unless": "seen", "channel": "email"}]
    },
    "unless-clicked": {
        "escalation": [{"after_seconds": 60, "unless": "clicked", "channel": "email"}]
    },
    "escalate-to-the-inbox": {
        "escalation": [{"after_seconds": 60, "unless": "seen", "channel": "in_app"}]
    },
    "unknown-channel-step": {
        "escalation": [{"after_seconds": 60, "unless": "seen", "channel": "fax"}]
    },
    "step-missing-a-field": {"escalation": [{"after_seconds": 60, "channel": "email"}]},
    "step-unknown-field": {
        "escalation": [{"after_seconds": 60, "unless": "seen", "channel": "email", "to": "x"}]
    },
    "eleven-steps": {
        "escalation": [
            {"after_seconds": n, "unless": "seen", "channel": "email"} for n in range(11)
        ]
    },
    "unknown-channel": {"channels": {"fax": True}},
    "switch-not-bool": {"channels": {"email": 1}},
}


@pytest.mark.parametrize("case", INVALID_DEFAULTS.keys())
async def test_invalid_type_defaults_are_a_422_and_change_nothing(
    client: httpx.AsyncClient, admin: dict[str, str], case: str
) -> None:
    stored = await put_type(client, admin, "build", BUILD, 201)
    for kind in ("build", "fresh"):
        response = await client.put(
            f"/api/admin/types/{kind}", headers=admin, json=INVALID_DEFAULTS[case]
        )
        assert_problem(response, 422, "validation-failed")
    assert await types_of(client, admin) == [stored]


async def test_the_longest_escalation_is_accepted(
    client: httpx.AsyncClient, admin: dict[str, str]
) -> None:
    steps = [
        {"after_seconds": 30 * 86_400 - n, "unless": "read", "channel": "webhook"}
        for n in range(10)
    ]
    stored = await put_type(client, admin, "long", {"escalation": steps}, 201)
    assert stored["escalation"] == steps


@pytest.mark.parametrize("kind", MALFORMED)
async def test_malformed_type_defaults_are_refused_and_change_nothing(
    client: httpx.AsyncClient, admin: dict[str, str], kind: str
) -> None:
    stored = await put_type(client, admin, "build", BUILD, 201)
    case = malformed(kind, BUILD)
    response = await send_malformed(client, "PUT", "/api/admin/types/build", admin, case)
    assert_problem(response, case.status, case.slug)
    assert await types_of(client, admin) == [stored]


@pytest.mark.parametrize("kind", ["bad%20type", "a" * 101, "**", "build%0A", "b*"])
async def test_a_type_name_no_notification_could_have_is_a_404(
    client: httpx.AsyncClient, admin: dict[str, str], kind: str
) -> None:
    for method in ("PUT", "DELETE"):
        response = await client.request(
            method, f"/api/admin/types/{kind}", headers=admin, json=BUILD
        )
        assert_problem(response, 404, "not-found")
    assert await types_of(client, admin) == []


@pytest.mark.parametrize("scope", [None, SCOPE_PUBLISH])
async def test_type_defaults_refuse_anyone_without_the_admin_scope_and_change_nothing(
    client: httpx.AsyncClient, settings: Settings, admin: dict[str, str], scope: str | None
) -> None:
    stored = await put_type(client, admin, "build", BUILD, 201)
    caller = auth(settings, "mallory", *([scope] if scope else []))
    for method, path in (
        ("GET", "/api/admin/types"),
        ("PUT", "/api/admin/types/build"),
        ("PUT", "/api/admin/types/*"),
        ("DELETE", "/api/admin/types/build"),
    ):
        body = {"channels": {"email": False}}
        assert_problem(
            await client.request(method, path, headers=caller, json=body), 403, "forbidden"
        )
        assert_problem(await client.request(method, path, json=body), 401, "unauthenticated")
    assert await types_of(client, admin) == [stored]
