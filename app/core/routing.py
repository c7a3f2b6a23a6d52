"""Notification and preferences → deliveries, and what becomes of a held delivery when its
time comes. Pure functions: the store calls them inside its transactions, so a plan and its
rows commit together, once, whichever worker ran it.

A delivery is held, not sent, when quiet hours are on (email, push and SMS), when the user
takes email as a digest, or while it waits as an escalation step. Urgent notifications skip
quiet hours and digests. Webhooks are machines: never held, never digested.
"""

from __future__ import annotations

from collections.abc import Iterator

from herald_server.core.preferences import channel_enabled, next_digest, quiet_until
from herald_server.models import (
    DELIVERY_CHANNELS,
    HeldDelivery,
    PlannedDelivery,
    RecipientProfile,
    Release,
    RoutingRequest,
)

# Channels a person reads, which quiet hours silence.
HUMAN_CHANNELS = frozenset({"email", "push", "sms"})
DIGEST = "digest"
QUIET_HOURS = "quiet-hours"
UNLESS_PREFIX = "unless-"


class Router:
    def __init__(self, configured: frozenset[str]) -> None:
        """`configured`: the delivery channels this deployment can send on."""
        self._configured = configured

    def plan(self, request: RoutingRequest, now: int) -> list[PlannedDelivery]:
        planned: list[PlannedDelivery] = []
        for recipient in request.recipients:
            if not recipient.preferences.muted:
                planned.extend(self._plan_one(request, recipient, now))
        return planned

    def _plan_one(
        self, request: RoutingRequest, recipient: RecipientProfile, now: int
    ) -> Iterator[PlannedDelivery]:
        switches = recipient.preferences.switches
        for channel in DELIVERY_CHANNELS:
            if channel not in self._configured or not channel_enabled(
                channel, request.type, switches, request.admin, request.requested
            ):
                continue
            steps = [
                (number, step)
                for number, step in enumerate(request.escalation, 1)
                if step.channel == channel
            ]
            for target in targets(recipient, channel, request.type):
                if steps:
                    for number, step in steps:
                        yield PlannedDelivery(
                            recipient.user,
                            channel,
                            target,
                            number,
                            "held",
                            request.created_at + step.after,
                            UNLESS_PREFIX + step.unless,
                        )
                else:
                    yield _immediate(request, recipient, channel, target, now)


def targets(recipient: RecipientProfile, channel: str, notification_type: str) -> list[str]:
    if channel == "email":
        return [recipient.contact.email] if recipient.contact.email else []
    if channel == "sms":
        return [recipient.contact.phone] if recipient.contact.phone else []
    if channel == "push":
        return [str(subscription) for subscription in recipient.push_subscriptions]
    return [
        str(webhook)
        for webhook, types in recipient.webhooks
        if types is None or notification_type in types
    ]


def _immediate(
    request: RoutingRequest, recipient: RecipientProfile, channel: str, target: str, now: int
) -> PlannedDelivery:
    preferences = recipient.preferences
    if request.priority != "urgent" and channel in HUMAN_CHANNELS:
        if channel == "email" and preferences.digest != "off":
            due = next_digest(preferences, now)
            return PlannedDelivery(recipient.user, channel, target, 0, "held", due, DIGEST)
        quiet_end = quiet_until(preferences, now)
        if quiet_end is not None:
            return PlannedDelivery(
                recipient.user, channel, target, 0, "held", quiet_end, QUIET_HOURS
            )
    return PlannedDelivery(recipient.user, channel, target, 0, "pending", now)


def release(held: HeldDelivery, now: int) -> Release:
    """What a held delivery becomes now that its time has come."""
    if held.expired:
        return Release("cancel", "expired before it could be sent")
    if held.preferences.muted:
        return Release("cancel", "muted")
    reason = held.reason or ""
    if reason.startswith(UNLESS_PREFIX):
        condition = reason.removeprefix(UNLESS_PREFIX)
        if held.read or (condition == "seen" and held.seen):
            return Release("cancel", f"{'read' if held.read else 'seen'} before escalation")
    if reason == DIGEST and held.read:
        return Release("cancel", "read before the digest")
    if held.priority != "urgent" and held.channel in HUMAN_CHANNELS:
        quiet_end = quiet_until(held.preferences, now)
        if quiet_end is not None:
            # The reason stays: an escalation still checks seen/read, a digest still batches.
            return Release("hold", reason or QUIET_HOURS, quiet_end)
    return Release("digest" if reason == DIGEST else "send")
