"""Acceptance 4, and escalation: a switched-off channel gets nothing, quiet hours hold and then
release (urgent goes through), a digest sends one email for many notifications, and an
escalation step goes out only if the user has not seen or read the item by then."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import anyio
import pytest

from herald_server.config import Settings
from herald_server.models import SCOPE_ADMIN, SCOPE_PUBLISH
from tests.conftest import auth
from tests.delivery.conftest import (
    Node,
    Providers,
    call,
    publish,
    register_webhook,
    subscribe_browser,
)
from tests.helpers import eventually, inbox_of

pytestmark = pytest.mark.anyio


async def reachable(node: Node, providers: Providers, user: str) -> str:
    """The user, reachable by email, Web Push and webhook; returns their push endpoint."""
    publisher = auth(node.settings, "shop", SCOPE_PUBLISH)
    email = {"email": f"{user}@example.com"}
    await call(node.client, "PUT", f"/api/contacts/{user}", publisher, 201, email)
    await register_webhook(node, providers, user)
    return await subscribe_browser(node, providers, user)


async def choose(node: Node, user: str, preferences: dict[str, Any]) -> None:
    await call(node.client, "PUT", "/api/preferences", auth(node.settings, user), 200, preferences)


async def deliveries_of(node: Node, notification_id: str) -> dict[tuple[str, str], str]:
    """(user, channel) → status."""
    admin = auth(node.settings, "ops", SCOPE_ADMIN)
    page = await call(
        node.client, "GET", f"/api/admin/deliveries?notification={notification_id}", admin, 200
    )
    return {(item["user"], item["channel"]): item["status"] for item in page["items"]}


async def until_settled(
    node: Node, notification_id: str, expected: dict[tuple[str, str], str]
) -> None:
    async def reached() -> bool:
        return await deliveries_of(node, notification_id) == expected

    await eventually(reached)


def local_clock(zone: str, seconds_from_now: float) -> str:
    moment = datetime.now(ZoneInfo(zone)) + timedelta(seconds=seconds_from_now)
    return moment.strftime("%H:%M:%S")


async def test_a_switched_off_channel_gets_nothing_and_the_others_still_do(
    node: Node, providers: Providers, settings: Settings
) -> None:
    await reachable(node, providers, "alice")
    await choose(
        node,
        "alice",
        {"channels": {"email": True, "push": False}, "types": {"build": {"email": False}}},
    )

    build = await publish(node, ["alice"], type="build")
    await until_settled(node, build, {("alice", "webhook"): "delivered"})
    other = await publish(node, ["alice"], type="deploy")
    await until_settled(
        node, other, {("alice", "webhook"): "delivered", ("alice", "email"): "sent"}
    )

    assert providers.push.received == []
    assert len(providers.smtp.messages) == 1


async def test_mute_silences_every_channel_but_the_inbox(
    node: Node, providers: Providers, settings: Settings
) -> None:
    await reachable(node, providers, "alice")
    await reachable(node, providers, "bob")
    await choose(node, "alice", {"muted": True, "channels": {"email": True}})

    # Bob's deliveries settling shows the notification was routed, Alice's included.
    muted = await publish(node, ["alice", "bob"], priority="urgent")
    await until_settled(node, muted, {("bob", "webhook"): "delivered", ("bob", "push"): "sent"})

    assert len(providers.push.received) == 1
    assert providers.smtp.messages == []
    inbox = await inbox_of(node.client, auth(node.settings, "alice"))
    assert [item["id"] for item in inbox["items"]] == [muted]


async def test_switching_the_inbox_off_for_a_type_leaves_the_other_channels(
    node: Node, providers: Providers, settings: Settings
) -> None:
    await reachable(node, providers, "alice")
    await choose(node, "alice", {"types": {"marketing": {"in_app": False, "push": False}}})
    publisher = auth(node.settings, "shop", SCOPE_PUBLISH)

    published = await call(
        node.client,
        "POST",
        "/api/notifications",
        publisher,
        202,
        {"recipients": ["alice", "bob"], "title": "Sale", "type": "marketing"},
    )
    await until_settled(node, published["id"], {("alice", "webhook"): "delivered"})

    assert published["recipients"] == 2
    alice, bob = auth(node.settings, "alice"), auth(node.settings, "bob")
    assert (await inbox_of(node.client, alice))["items"] == []
    assert [item["title"] for item in (await inbox_of(node.client, bob))["items"]] == ["Sale"]


async def test_quiet_hours_hold_until_they_end_and_urgent_goes_through(
    node: Node, providers: Providers, settings: Settings
) -> None:
    await reachable(node, providers, "alice")
    zone = "Asia/Kolkata"
    quiet = {"start": local_clock(zone, -60), "end": local_clock(zone, 3)}
    await choose(
        node, "alice", {"timezone": zone, "quiet_hours": quiet, "channels": {"email": True}}
    )

    held = await publish(node, ["alice"], title="Nightly report")
    urgent = await publish(node, ["alice"], title="Production is down", priority="urgent")
    await until_settled(
        node,
        urgent,
        {("alice", "email"): "sent", ("alice", "push"): "sent", ("alice", "webhook"): "delivered"},
    )
    statuses = await deliveries_of(node, held)
    assert statuses == {
        ("alice", "email"): "held",
        ("alice", "push"): "held",
        ("alice", "webhook"): "delivered",
    }
    assert [email.message["Subject"] for email in providers.smtp.messages] == ["Production is down"]

    await until_settled(
        node,
        held,
        {("alice", "email"): "sent", ("alice", "push"): "sent", ("alice", "webhook"): "delivered"},
    )
    assert [email.message["Subject"] for email in providers.smtp.messages] == [
        "Production is down",
        "Nightly report",
    ]


async def test_a_daily_digest_sends_one_email_for_many_and_leaves_out_what_was_read(
    node: Node, providers: Providers, settings: Settings
) -> None:
    await reachable(node, providers, "alice")
    zone = "America/New_York"
    await choose(
        node,
        "alice",
        {
            "timezone": zone,
            "digest": {"frequency": "daily", "at": local_clock(zone, 3)},
            "channels": {"email": True, "push": False},
        },
    )
    published = [await publish(node, ["alice"], title=f"Report {n}") for n in range(1, 5)]
    alice = auth(node.settings, "alice")
    await call(node.client, "POST", f"/api/notifications/{published[1]}/read", alice, 200)
    for notification in published:
        webhook = "read" if notification == published[1] else "delivered"
        held = {("alice", "email"): "held", ("alice", "webhook"): webhook}
        await until_settled(node, notification, held)

    (digest,) = await providers.smtp.wait_for(1)
    await anyio.sleep(0.5)

    assert len(providers.smtp.messages) == 1
    assert digest.message["Subject"] == "3 new notifications"
    text = digest.message.get_body(("plain",))
    assert text is not None
    assert [line for line in text.get_content().splitlines() if line] == [
        "Report 1",
        "Report 3",
        "Report 4",
    ]
    statuses = [(await deliveries_of(node, n))[("alice", "email")] for n in published]
    assert statuses == ["digested", "cancelled", "digested", "digested"]


async def test_escalation_goes_out_only_to_those_who_have_not_seen_or_read_it(
    node: Node, providers: Providers, settings: Settings
) -> None:
    for user in ("alice", "bob", "carol"):
        await reachable(node, providers, user)
    await choose(node, "carol", {"channels": {"push": False}})
    admin = auth(node.settings, "ops", SCOPE_ADMIN)
    rule = {
        "channels": {"email": True},
        "escalation": [
            {"after_seconds": 1, "unless": "seen", "channel": "push"},
            {"after_seconds": 2, "unless": "read", "channel": "email"},
        ],
    }
    await call(node.client, "PUT", "/api/admin/types/incident", admin, 201, rule)

    incident = await publish(node, ["alice", "bob", "carol"], type="incident")
    alice, bob = auth(node.settings, "alice"), auth(node.settings, "bob")
    await call(node.client, "POST", f"/api/notifications/{incident}/read", alice, 200)
    await call(node.client, "POST", f"/api/notifications/{incident}/seen", bob, 200)

    await until_settled(
        node,
        incident,
        {
            ("alice", "webhook"): "read",
            ("alice", "push"): "cancelled",
            ("alice", "email"): "cancelled",
            ("bob", "webhook"): "delivered",
            ("bob", "push"): "cancelled",
            ("bob", "email"): "sent",
            ("carol", "webhook"): "delivered",
            ("carol", "email"): "sent",
        },
    )
    assert sorted(email.envelope_to[0] for email in providers.smtp.messages) == [
        "bob@example.com",
        "carol@example.com",
    ]
    assert providers.push.received == []
