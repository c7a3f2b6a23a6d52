"""Herald's domain data: frozen dataclasses, no I/O.

Times are integer milliseconds since the epoch everywhere below the HTTP layer: the same in
both SQL dialects, cheap to compare, and formatted once when served.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

Priority = Literal["low", "normal", "high", "urgent"]
StateAction = Literal["read", "unread", "seen", "archive", "unarchive", "delete"]
BulkAction = Literal["read", "seen", "archive"]

SCOPE_PUBLISH = "notifications:publish"
SCOPE_ADMIN = "notifications:admin"


def now_ms() -> int:
    return time.time_ns() // 1_000_000


def iso(ms: int | None) -> str | None:
    """RFC 3339 in UTC with milliseconds, the one time format Herald serves."""
    if ms is None:
        return None
    stamp = datetime.fromtimestamp(ms / 1000, UTC).isoformat(timespec="milliseconds")
    return stamp.replace("+00:00", "Z")


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is calling: a user id (`sub`), the scopes granted, when the token expires, and
    (for stream tokens, which can be revoked) when it was issued, in ms."""

    sub: str
    scopes: frozenset[str] = frozenset()
    expires_at: int | None = None
    issued_at: int | None = None
    # Private topics the token's `topics` claim lets this user join by themself.
    topics: frozenset[str] = frozenset()

    def can(self, scope: str) -> bool:
        return scope in self.scopes or SCOPE_ADMIN in self.scopes


@dataclass(frozen=True, slots=True)
class Recipients:
    users: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class TopicAudience:
    name: str


@dataclass(frozen=True, slots=True)
class Everyone:
    pass


Audience = Recipients | TopicAudience | Everyone


@dataclass(frozen=True, slots=True)
class Draft:
    """A notification as accepted for publishing, before it has an id."""

    type: str
    title: str
    body: str
    data: Any
    priority: Priority
    publisher: str
    topic: str | None = None
    collapse_key: str | None = None
    send_at: int | None = None
    expires_at: int | None = None
    # Channels beyond the inbox the publisher asked for; None leaves it to the type defaults.
    channels: tuple[str, ...] | None = None
    # Per-locale, per-channel renderings of a template (JSON); None derives them from title/body.
    content: str | None = None
    template: str | None = None


@dataclass(frozen=True, slots=True)
class Notification:
    id: int
    type: str
    title: str
    body: str
    data: Any
    priority: Priority
    topic: str | None
    collapse_key: str | None
    created_at: int
    expires_at: int | None


@dataclass(frozen=True, slots=True)
class InboxItem:
    """One notification as one user sees it; `seq` is that user's cursor for it."""

    seq: int
    notification: Notification
    seen_at: int | None = None
    read_at: int | None = None
    archived_at: int | None = None


@dataclass(frozen=True, slots=True)
class SentNotification:
    """A notification as an operator sees it: who sent it, how many got it, how many read it.

    `send_at` is set while it is still held for later delivery.
    """

    notification: Notification
    publisher: str
    recipients: int
    read: int
    send_at: int | None


@dataclass(frozen=True, slots=True)
class Counts:
    """Unread and unseen counts, exact as of the user's cursor `head`: a client that applies
    later events on top of them counts each event once."""

    unread: int
    unseen: int
    head: int


@dataclass(frozen=True, slots=True)
class LiveEvent:
    """An event fanned out to streams: one encoded payload, each target with its own cursor.

    `data` is the JSON text sent as is to every target, so it is serialized once per event,
    not once per connection.
    """

    kind: str
    data: str
    targets: tuple[tuple[str, int], ...]


@dataclass(frozen=True, slots=True)
class StateEvent:
    """A change of state the user's other streams must hear of, with the counts after it.

    `notification_id` names the item; a bulk change has none and covers every item whose
    cursor is at most `up_to`.
    """

    seq: int
    action: str
    notification_id: int | None
    up_to: int | None
    at: int
    counts: Counts


@dataclass(frozen=True, slots=True)
class Published:
    """The outcome of a publish. `targets` pairs each recipient with its cursor; it is empty
    when nothing was delivered now (scheduled, or an idempotent replay)."""

    notification_id: int
    recipients: int
    notification: Notification | None = None
    targets: tuple[tuple[str, int], ...] = ()
    scheduled: bool = False
    replayed: bool = False
    # Named recipients left out because this publisher's bucket for them was empty.
    rate_limited: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class InboxQuery:
    limit: int = 50
    before: int | None = None
    after: int | None = None
    unread: bool | None = None
    type: str | None = None
    topic: str | None = None
    archived: bool = False


@dataclass(frozen=True, slots=True)
class InboxPage:
    """`last_seq` is the cursor of the page's last row, which may be one left out as unreadable:
    paging goes on from there."""

    items: list[InboxItem] = field(default_factory=list)
    has_more: bool = False
    last_seq: int | None = None


@dataclass(frozen=True, slots=True)
class Topic:
    name: str
    subscribed: bool
    subscribers: int
    private: bool = False


# --- delivery beyond the browser -----------------------------------------------------------

DeliveryChannel = Literal["email", "push", "sms", "webhook"]
DELIVERY_CHANNELS: tuple[DeliveryChannel, ...] = ("email", "push", "sms", "webhook")
# Every channel a user can switch per notification type; "in_app" is the inbox and its streams.
CHANNELS = ("in_app", *DELIVERY_CHANNELS)
# The notification type that stands for every type in channel switches and type defaults.
EVERY_TYPE = "*"
# The owner of the admin's type defaults among channel switches (no user id is empty).
ADMIN_OWNER = ""
DigestFrequency = Literal["off", "hourly", "daily"]
DeliveryStatus = Literal["held", "pending", "sending", "sent", "delivered", "failed", "cancelled"]
Switches = dict[str, dict[str, bool]]
"""Channel switches: notification type (or EVERY_TYPE) → channel → on."""


@dataclass(frozen=True, slots=True)
class QuietHours:
    """A daily window in the user's time zone, in seconds after local midnight. It may wrap
    midnight (22:00 → 07:00); start == end is refused when set."""

    start: int
    end: int


@dataclass(frozen=True, slots=True)
class Preferences:
    """What a user chose. `switches` holds only what they set: an absent switch inherits the
    admin's type defaults."""

    muted: bool = False
    timezone: str = "UTC"
    locale: str | None = None
    quiet_hours: QuietHours | None = None
    digest: DigestFrequency = "off"
    # Seconds after local midnight at which a daily digest goes out.
    digest_at: int = 8 * 3600
    switches: Switches = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class EscalationStep:
    """Send on `channel` `after` ms unless the user has `unless` (seen or read) the item."""

    after: int
    unless: Literal["seen", "read"]
    channel: DeliveryChannel


@dataclass(frozen=True, slots=True)
class TypeDefaults:
    """An admin's defaults for one notification type (or EVERY_TYPE)."""

    type: str
    channels: dict[str, bool] = field(default_factory=dict)
    escalation: tuple[EscalationStep, ...] = ()
    updated_at: int = 0


@dataclass(frozen=True, slots=True)
class Contact:
    """Where a user's email and SMS go; set by a trusted backend, not by the user."""

    email: str | None = None
    phone: str | None = None


@dataclass(frozen=True, slots=True)
class PushSubscriptionRecord:
    id: int
    user: str
    endpoint: str
    p256dh: str
    auth: str
    created_at: int


@dataclass(frozen=True, slots=True)
class Webhook:
    id: int
    user: str
    url: str
    secret: str
    # Notification types it receives; None means every type.
    types: tuple[str, ...] | None
    created_by: str
    created_at: int


@dataclass(frozen=True, slots=True)
class Template:
    key: str
    version: int
    document: dict[str, Any]
    updated_at: int
    updated_by: str


@dataclass(frozen=True, slots=True)
class Delivery:
    """One notification (or one digest, with `notification_id` None) to one user's target on
    one channel, through its attempts. `read` is whether the user has read it in the inbox."""

    id: int
    notification_id: int | None
    user: str
    channel: str
    target: str
    status: str
    reason: str | None
    attempts: int
    due_at: int
    created_at: int
    updated_at: int
    last_error: str | None
    provider_id: str | None
    digest_id: int | None
    read: bool = False


@dataclass(frozen=True, slots=True)
class DeliveryAttempt:
    attempt: int
    started_at: int
    finished_at: int | None
    outcome: str
    detail: str | None


@dataclass(frozen=True, slots=True)
class DeliveryQuery:
    limit: int = 50
    before: int | None = None
    status: str | None = None
    channel: str | None = None
    notification_id: int | None = None
    user: str | None = None


@dataclass(frozen=True, slots=True)
class DeliveryTask:
    """A claimed attempt and everything needed to make it. `notification` is None for a
    digest, whose notifications are in `digest`; `push` and `webhook` are the live target
    records (None when the target was removed since routing)."""

    delivery: Delivery
    tries: int
    notification: Notification | None
    content: str | None
    locale: str | None
    push: PushSubscriptionRecord | None = None
    webhook: Webhook | None = None
    digest: tuple[Notification, ...] = ()


# --- routing: what the store hands the router, and what it gets back ---------------------


@dataclass(frozen=True, slots=True)
class RecipientProfile:
    user: str
    preferences: Preferences
    contact: Contact
    push_subscriptions: tuple[int, ...] = ()
    # (webhook id, the types it takes or None for all)
    webhooks: tuple[tuple[int, tuple[str, ...] | None], ...] = ()


@dataclass(frozen=True, slots=True)
class RoutingRequest:
    notification_id: int
    type: str
    priority: Priority
    requested: frozenset[str] | None
    created_at: int
    recipients: Sequence[RecipientProfile]
    admin: Switches
    escalation: tuple[EscalationStep, ...]


@dataclass(frozen=True, slots=True)
class PlannedDelivery:
    user: str
    channel: str
    target: str
    step: int
    status: Literal["pending", "held"]
    due_at: int
    reason: str | None = None


@dataclass(frozen=True, slots=True)
class HeldDelivery:
    """A held delivery whose time has come, with what the decision depends on."""

    id: int
    user: str
    channel: str
    # The address: a digest gathers one user's deliveries to one address.
    target: str
    reason: str | None
    priority: Priority
    preferences: Preferences
    seen: bool
    read: bool
    expired: bool


@dataclass(frozen=True, slots=True)
class Release:
    """`send`: pending now; `hold`: until `until`; `cancel`: never; `digest`: into the user's
    next digest email. `reason` is kept with the delivery for operators."""

    action: Literal["send", "hold", "cancel", "digest"]
    reason: str | None = None
    until: int | None = None


@dataclass(frozen=True, slots=True)
class AuditEntry:
    """One admin action that changed something. `detail` is what the action needs to be
    understood later (a template's new version, a type's switches), never a secret."""

    id: int
    at: int
    actor: str
    action: str
    target: str
    request_id: str | None
    detail: dict[str, Any]
