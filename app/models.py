"""Herald's domain data: frozen dataclasses, no I/O.

Times are integer milliseconds since the epoch everywhere below the HTTP layer: the same in
both SQL dialects, cheap to compare, and formatted once when served.
"""

from __future__ import annotations

import time
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
    """Who is calling: a user id (`sub`), the scopes granted, and when the token expires."""

    sub: str
    scopes: frozenset[str] = frozenset()
    expires_at: int | None = None

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
    items: list[InboxItem] = field(default_factory=list)
    has_more: bool = False


@dataclass(frozen=True, slots=True)
class Topic:
    name: str
    subscribed: bool
    subscribers: int
