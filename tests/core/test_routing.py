"""Routing (app/core/routing.py): which deliveries a notification gets, and what a held delivery
becomes when its time comes. Pure functions, driven at fixed instants."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime
from typing import Any

from herald_server.core.routing import Router, release
from herald_server.models import (
    DELIVERY_CHANNELS,
    EVERY_TYPE,
    Contact,
    EscalationStep,
    HeldDelivery,
    PlannedDelivery,
    Preferences,
    Priority,
    QuietHours,
    RecipientProfile,
    Release,
    RoutingRequest,
)

ALL = frozenset(DELIVERY_CHANNELS)
# Monday 2 June 2025, 12:00 in Paris: outside the night, and a known local hour.
NOON = int(datetime.fromisoformat("2025-06-02T12:00:00+02:00").timestamp() * 1000)
NIGHT = int(datetime.fromisoformat("2025-06-02T23:00:00+02:00").timestamp() * 1000)
NEXT_MORNING = int(datetime.fromisoformat("2025-06-03T07:00:00+02:00").timestamp() * 1000)
MINUTE = 60_000
EMAIL_ON = {EVERY_TYPE: {"email": True, "sms": True}}


def alice(**preferences: Any) -> RecipientProfile:
    """Alice, reachable on every channel: two browsers, two webhooks (one for invoices only)."""
    preferences.setdefault("timezone", "Europe/Paris")
    return RecipientProfile(
        "alice",
        Preferences(**preferences),
        Contact("alice@example.com", "+15550001"),
        push_subscriptions=(11, 12),
        webhooks=((21, None), (22, ("invoice",))),
    )


def request(
    *recipients: RecipientProfile,
    type: str = "invoice",
    priority: Priority = "normal",
    requested: set[str] | None = None,
    admin: dict[str, dict[str, bool]] | None = None,
    escalation: tuple[EscalationStep, ...] = (),
    created_at: int = NOON,
) -> RoutingRequest:
    return RoutingRequest(
        notification_id=1,
        type=type,
        priority=priority,
        requested=None if requested is None else frozenset(requested),
        created_at=created_at,
        recipients=recipients,
        admin=EMAIL_ON if admin is None else admin,
        escalation=escalation,
    )


def by_channel(planned: list[PlannedDelivery]) -> dict[str, list[PlannedDelivery]]:
    found: dict[str, list[PlannedDelivery]] = {}
    for one in planned:
        found.setdefault(one.channel, []).append(one)
    return found


def immediate(channel: str, target: str, now: int = NOON) -> PlannedDelivery:
    return PlannedDelivery("alice", channel, target, 0, "pending", now)


QUIET = QuietHours(22 * 3600, 7 * 3600)


# --- plan -----------------------------------------------------------------------------------


def test_every_enabled_configured_channel_gets_one_delivery_per_target_now() -> None:
    planned = Router(ALL).plan(request(alice()), NOON)
    assert sorted(planned, key=lambda one: (one.channel, one.target)) == [
        immediate("email", "alice@example.com"),
        immediate("push", "11"),
        immediate("push", "12"),
        immediate("sms", "+15550001"),
        immediate("webhook", "21"),
        immediate("webhook", "22"),
    ]


def test_a_muted_user_gets_nothing_and_the_other_recipients_still_do() -> None:
    bob = replace(alice(), user="bob")
    planned = Router(ALL).plan(request(alice(muted=True), bob), NOON)
    assert planned
    assert {one.user for one in planned} == {"bob"}


def test_a_channel_this_deployment_cannot_send_on_gets_nothing() -> None:
    planned = Router(frozenset({"webhook"})).plan(request(alice()), NOON)
    assert set(by_channel(planned)) == {"webhook"}
    assert Router(frozenset()).plan(request(alice()), NOON) == []


def test_a_switched_off_channel_gets_nothing() -> None:
    user = alice(switches={"invoice": {"push": False}, EVERY_TYPE: {"sms": False}})
    assert set(by_channel(Router(ALL).plan(request(user), NOON))) == {"email", "webhook"}
    assert set(by_channel(Router(ALL).plan(request(alice(), admin={}), NOON))) == {
        "push",
        "webhook",
    }


def test_a_channel_without_a_target_gets_nothing() -> None:
    nobody = RecipientProfile("alice", Preferences(), Contact())
    assert Router(ALL).plan(request(nobody), NOON) == []
    only_email = RecipientProfile("alice", Preferences(), Contact(email="a@example.com"))
    planned = Router(ALL).plan(request(only_email), NOON)
    assert planned == [immediate("email", "a@example.com")]


def test_a_webhook_registered_for_some_types_gets_only_those() -> None:
    invoice = by_channel(Router(ALL).plan(request(alice(), type="invoice"), NOON))
    other = by_channel(Router(ALL).plan(request(alice(), type="comment"), NOON))
    assert [one.target for one in invoice["webhook"]] == ["21", "22"]
    assert [one.target for one in other["webhook"]] == ["21"]


def test_a_requested_list_limits_the_channels() -> None:
    planned = Router(ALL).plan(request(alice(), requested={"in_app", "push"}, admin={}), NOON)
    assert set(by_channel(planned)) == {"push"}


def test_escalation_steps_are_held_until_created_at_plus_after_with_their_condition() -> None:
    steps = (
        EscalationStep(5 * MINUTE, "seen", "push"),
        EscalationStep(30 * MINUTE, "read", "sms"),
        EscalationStep(60 * MINUTE, "read", "push"),
    )
    created = NOON - 2 * MINUTE
    planned = by_channel(
        Router(ALL).plan(request(alice(), escalation=steps, created_at=created), NOON)
    )
    assert sorted(planned["push"], key=lambda one: (one.step, one.target)) == [
        PlannedDelivery("alice", "push", "11", 1, "held", created + 5 * MINUTE, "unless-seen"),
        PlannedDelivery("alice", "push", "12", 1, "held", created + 5 * MINUTE, "unless-seen"),
        PlannedDelivery("alice", "push", "11", 3, "held", created + 60 * MINUTE, "unless-read"),
        PlannedDelivery("alice", "push", "12", 3, "held", created + 60 * MINUTE, "unless-read"),
    ]
    assert planned["sms"] == [
        PlannedDelivery(
            "alice", "sms", "+15550001", 2, "held", created + 30 * MINUTE, "unless-read"
        )
    ]
    # A channel with escalation steps is not also sent at once; the others are.
    assert all(one.status == "held" for one in planned["push"] + planned["sms"])
    assert [one.status for one in planned["email"]] == ["pending"]
    assert [one.status for one in planned["webhook"]] == ["pending", "pending"]


def test_an_escalation_step_on_a_switched_off_channel_plans_nothing() -> None:
    steps = (EscalationStep(5 * MINUTE, "seen", "sms"),)
    user = alice(switches={EVERY_TYPE: {"sms": False}})
    assert "sms" not in by_channel(Router(ALL).plan(request(user, escalation=steps), NOON))


def test_a_digest_holds_email_only_until_the_next_digest() -> None:
    planned = by_channel(Router(ALL).plan(request(alice(digest="hourly")), NOON + 20 * MINUTE))
    one_pm = NOON + 60 * MINUTE
    assert planned["email"] == [
        PlannedDelivery("alice", "email", "alice@example.com", 0, "held", one_pm, "digest")
    ]
    for channel in ("push", "sms", "webhook"):
        assert all(one.status == "pending" for one in planned[channel]), channel


def test_a_daily_digest_holds_email_until_digest_at() -> None:
    planned = by_channel(
        Router(ALL).plan(request(alice(digest="daily", digest_at=18 * 3600)), NOON)
    )
    six_pm = NOON + 6 * 60 * MINUTE
    assert [(one.status, one.due_at, one.reason) for one in planned["email"]] == [
        ("held", six_pm, "digest")
    ]


def test_quiet_hours_hold_email_push_and_sms_until_they_end_but_not_webhooks() -> None:
    planned = by_channel(Router(ALL).plan(request(alice(quiet_hours=QUIET)), NIGHT))
    for channel in ("email", "push", "sms"):
        assert planned[channel], channel
        for one in planned[channel]:
            assert (one.status, one.due_at, one.reason) == ("held", NEXT_MORNING, "quiet-hours")
    assert [(one.status, one.due_at) for one in planned["webhook"]] == [
        ("pending", NIGHT),
        ("pending", NIGHT),
    ]


def test_outside_quiet_hours_nothing_is_held() -> None:
    planned = Router(ALL).plan(request(alice(quiet_hours=QUIET)), NOON)
    assert {one.status for one in planned} == {"pending"}


def test_a_digest_during_quiet_hours_waits_for_the_digest() -> None:
    planned = by_channel(Router(ALL).plan(request(alice(quiet_hours=QUIET, digest="daily")), NIGHT))
    morning_digest = NEXT_MORNING + 60 * MINUTE  # 08:00, the default digest_at
    assert [(one.due_at, one.reason) for one in planned["email"]] == [(morning_digest, "digest")]


def test_urgent_skips_quiet_hours_and_the_digest() -> None:
    user = alice(quiet_hours=QUIET, digest="hourly")
    planned = Router(ALL).plan(request(user, priority="urgent"), NIGHT)
    assert len(planned) == 6
    assert {(one.status, one.due_at, one.reason) for one in planned} == {("pending", NIGHT, None)}


def test_high_priority_is_still_held_by_quiet_hours() -> None:
    planned = by_channel(
        Router(ALL).plan(request(alice(quiet_hours=QUIET), priority="high"), NIGHT)
    )
    assert {one.status for one in planned["push"]} == {"held"}


# --- release --------------------------------------------------------------------------------


def held(**fields: Any) -> HeldDelivery:
    values: dict[str, Any] = {
        "id": 1,
        "user": "alice",
        "channel": "push",
        "target": "11",
        "reason": "quiet-hours",
        "priority": "normal",
        "preferences": Preferences(timezone="Europe/Paris", quiet_hours=QUIET),
        "seen": False,
        "read": False,
        "expired": False,
    }
    values.update(fields)
    return HeldDelivery(**values)


def test_a_quiet_hours_hold_is_sent_once_the_window_is_over() -> None:
    assert release(held(), NEXT_MORNING) == Release("send")


def test_an_expired_notification_is_cancelled_whatever_else_holds() -> None:
    decided = release(held(expired=True, reason="digest", channel="email"), NEXT_MORNING)
    assert decided.action == "cancel"
    assert decided.reason is not None
    assert "expired" in decided.reason


def test_a_user_who_muted_meanwhile_is_not_sent_anything() -> None:
    muted = Preferences(timezone="Europe/Paris", muted=True)
    assert release(held(preferences=muted), NOON) == Release("cancel", "muted")


def test_an_unless_seen_step_is_cancelled_once_seen_or_read_and_sent_otherwise() -> None:
    step = held(reason="unless-seen", preferences=Preferences())
    assert release(step, NOON) == Release("send")
    assert release(replace(step, seen=True), NOON) == Release("cancel", "seen before escalation")
    assert release(replace(step, seen=True, read=True), NOON) == Release(
        "cancel", "read before escalation"
    )


def test_an_unless_read_step_goes_out_when_only_seen_and_is_cancelled_when_read() -> None:
    step = held(reason="unless-read", preferences=Preferences())
    assert release(replace(step, seen=True), NOON) == Release("send")
    assert release(replace(step, read=True), NOON) == Release("cancel", "read before escalation")


def test_a_digest_member_goes_into_the_digest_unless_read() -> None:
    member = held(channel="email", target="alice@example.com", reason="digest")
    assert release(member, NEXT_MORNING) == Release("digest")
    assert release(replace(member, read=True), NEXT_MORNING) == Release(
        "cancel", "read before the digest"
    )
    # Seen is not read: still worth the digest.
    assert release(replace(member, seen=True), NEXT_MORNING) == Release("digest")


def test_still_inside_quiet_hours_the_hold_moves_to_their_end_keeping_its_reason() -> None:
    for reason, kept in (
        ("unless-seen", "unless-seen"),
        ("digest", "digest"),
        ("quiet-hours", "quiet-hours"),
        (None, "quiet-hours"),
    ):
        decided = release(held(reason=reason, channel="email"), NIGHT)
        assert decided == Release("hold", kept, NEXT_MORNING), reason


def test_an_escalation_seen_during_quiet_hours_is_cancelled_not_held() -> None:
    decided = release(held(reason="unless-seen", seen=True), NIGHT)
    assert decided.action == "cancel"


def test_webhooks_and_urgent_notifications_are_never_held_by_quiet_hours() -> None:
    assert release(held(channel="webhook", target="21", reason="unless-read"), NIGHT) == Release(
        "send"
    )
    assert release(held(priority="urgent", reason="unless-read"), NIGHT) == Release("send")
    assert release(held(priority="urgent", channel="email", reason="digest"), NIGHT) == Release(
        "digest"
    )
