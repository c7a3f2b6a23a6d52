"""Acceptance 2: a failing provider is retried with the configured backoff; one that never
recovers lands in the dead-letter queue, and a replay from there delivers the same delivery
once the provider is back. Permanent refusals skip the retries; a vanished push subscription
is dropped."""

from __future__ import annotations

import itertools
from datetime import datetime
from typing import Any

import pytest

from herald_server.config import Settings
from herald_server.models import SCOPE_ADMIN, SCOPE_PUBLISH
from tests.conftest import auth
from tests.delivery.conftest import BACKOFF, Node, Providers, call, publish, register_webhook
from tests.helpers import assert_problem, eventually

pytestmark = pytest.mark.anyio


def admin_of(node: Node) -> dict[str, str]:
    return auth(node.settings, "ops", SCOPE_ADMIN)


async def publish_to(node: Node, user: str, **fields: Any) -> str:
    return await publish(node, [user], title="Invoice ready", body="€42", **fields)


async def only_delivery(node: Node, notification_id: str, channel: str) -> dict[str, Any] | None:
    """The notification's one delivery on `channel`, None until a worker has planned it."""
    page = await call(
        node.client,
        "GET",
        f"/api/admin/deliveries?notification={notification_id}&channel={channel}",
        admin_of(node),
        200,
    )
    if not page["items"]:
        return None
    (item,) = page["items"]
    detail: dict[str, Any] = await call(
        node.client, "GET", f"/api/admin/deliveries/{item['id']}", admin_of(node), 200
    )
    return detail


async def settled(node: Node, notification_id: str, channel: str, status: str) -> dict[str, Any]:
    """The delivery once it reaches `status` (bounded in time)."""
    found: dict[str, Any] = {}

    async def reached() -> bool:
        found.update(await only_delivery(node, notification_id, channel) or {})
        return bool(found.get("status") == status)

    await eventually(reached)
    return found


def started(attempt: dict[str, Any]) -> float:
    return datetime.fromisoformat(attempt["started_at"]).timestamp()


async def test_a_webhook_that_fails_three_times_gets_the_fourth_attempt_after_each_backoff(
    node: Node, providers: Providers, settings: Settings
) -> None:
    await register_webhook(node, providers, "alice")
    providers.webhooks.fail_next("alice", 3, status=503)

    notification = await publish_to(node, "alice")
    delivery = await settled(node, notification, "webhook", "delivered")

    history = delivery["history"]
    assert [attempt["outcome"] for attempt in history] == ["retry", "retry", "retry", "delivered"]
    assert "503" in history[0]["detail"]
    gaps = [started(later) - started(earlier) for earlier, later in itertools.pairwise(history)]
    assert all(gap >= delay for gap, delay in zip(gaps, BACKOFF, strict=True)), gaps
    assert len(providers.webhooks.unique) == 1
    assert providers.webhooks.hits["alice"] == 4


async def test_a_retry_after_from_the_provider_outweighs_a_shorter_backoff(
    node: Node, providers: Providers, settings: Settings
) -> None:
    publisher = auth(node.settings, "shop", SCOPE_PUBLISH)
    await call(node.client, "PUT", "/api/contacts/alice", publisher, 201, {"phone": "+15550001"})
    await call(
        node.client, "PUT", "/api/preferences", auth(node.settings, "alice"), 200,
        {"channels": {"sms": True}},
    )  # fmt: skip
    providers.twilio.fail_next(1, status=429, retry_after=1)

    notification = await publish_to(node, "alice")
    delivery = await settled(node, notification, "sms", "sent")

    first, second = delivery["history"]
    assert first["outcome"] == "retry"
    assert started(second) - started(first) >= 1.0
    assert second["outcome"] == "sent"
    assert delivery["provider_id"] == providers.twilio.messages[0]["sid"]


async def test_an_email_relay_that_defers_is_retried_and_one_that_refuses_is_not(
    node: Node, providers: Providers, settings: Settings
) -> None:
    publisher = auth(node.settings, "shop", SCOPE_PUBLISH)
    for user in ("alice", "bob"):
        await call(
            node.client, "PUT", f"/api/contacts/{user}", publisher, 201,
            {"email": f"{user}@example.com"},
        )  # fmt: skip
        await call(
            node.client, "PUT", "/api/preferences", auth(node.settings, user), 200,
            {"channels": {"email": True}},
        )  # fmt: skip

    providers.smtp.fail_next(2, code=451)
    deferred = await publish_to(node, "alice")
    delivery = await settled(node, deferred, "email", "sent")
    assert [attempt["outcome"] for attempt in delivery["history"]] == ["retry", "retry", "sent"]

    providers.smtp.fail_next(1, code=550, text="5.7.1 rejected")
    refused = await publish_to(node, "bob")
    delivery = await settled(node, refused, "email", "failed")
    assert [attempt["outcome"] for attempt in delivery["history"]] == ["failed"]
    assert "550" in delivery["last_error"]


async def test_a_provider_that_never_recovers_ends_in_the_dead_letter_queue_until_replayed(
    node: Node, providers: Providers, settings: Settings
) -> None:
    await register_webhook(node, providers, "alice")
    providers.webhooks.fail_always("alice", 500)
    notification = await publish_to(node, "alice")

    dead = await settled(node, notification, "webhook", "failed")
    assert dead["attempts"] == len(BACKOFF) + 1
    assert [attempt["outcome"] for attempt in dead["history"]] == ["retry"] * (len(BACKOFF) + 1)
    assert dead["last_error"].startswith(f"gave up after {len(BACKOFF) + 1} tries")
    letters = await call(node.client, "GET", "/api/admin/dead-letters", admin_of(node), 200)
    assert [item["id"] for item in letters["items"]] == [dead["id"]]
    assert providers.webhooks.unique == {}

    providers.webhooks.recover("alice")
    replayed = await call(
        node.client,
        "POST",
        f"/api/admin/dead-letters/{dead['id']}/retry",
        admin_of(node),
        202,
    )
    assert replayed["id"] == dead["id"]
    assert replayed["status"] == "pending"

    delivered = await settled(node, notification, "webhook", "delivered")
    assert delivered["id"] == dead["id"]
    assert delivered["attempts"] == len(BACKOFF) + 2
    (arrival,) = providers.webhooks.unique.values()
    assert arrival.webhook_id.startswith(f"herald-{dead['id']}-")
    letters = await call(node.client, "GET", "/api/admin/dead-letters", admin_of(node), 200)
    assert letters["items"] == []


async def test_only_a_dead_letter_can_be_replayed(
    node: Node, providers: Providers, settings: Settings
) -> None:
    await register_webhook(node, providers, "alice")
    notification = await publish_to(node, "alice")
    delivered = await settled(node, notification, "webhook", "delivered")
    path = f"/api/admin/dead-letters/{delivered['id']}/retry"

    assert_problem(await node.client.post(path, headers=admin_of(node)), 409, "not-dead-lettered")
    alice = auth(node.settings, "alice")
    assert_problem(await node.client.post(path, headers=alice), 403, "forbidden")
    missing = "/api/admin/dead-letters/999999/retry"
    assert_problem(await node.client.post(missing, headers=admin_of(node)), 404, "not-found")
    assert len(providers.webhooks.arrivals) == 1


async def test_a_push_subscription_the_push_service_says_is_gone_is_dropped(
    node: Node, providers: Providers, settings: Settings
) -> None:
    alice = auth(node.settings, "alice")
    channels = await call(node.client, "GET", "/api/channels", alice, 200)
    subscription = providers.push.subscribe(channels["push_public_key"])
    await call(node.client, "POST", "/api/push-subscriptions", alice, 201, subscription)
    providers.push.gone(subscription["endpoint"])

    notification = await publish_to(node, "alice")
    cancelled = await settled(node, notification, "push", "cancelled")

    assert [attempt["outcome"] for attempt in cancelled["history"]] == ["gone"]
    remaining = await call(node.client, "GET", "/api/push-subscriptions", alice, 200)
    assert remaining["items"] == []
