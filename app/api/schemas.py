"""Request and response bodies as msgspec Structs: decoding validates types and refuses
unknown fields in one pass, and the same types produce the OpenAPI schemas."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

import msgspec
from msgspec import Meta, Struct

# PostgreSQL text cannot hold NUL, and no title or id needs it: refused on every backend alike.
NO_NUL = r"^[^\x00]*$"
UserId = Annotated[str, Meta(min_length=1, max_length=200, pattern=r"^[^\x00-\x1f\x7f]+$")]
TopicName = Annotated[str, Meta(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")]
Cursor = Annotated[str, Meta(pattern=r"^[0-9]{1,18}$")]
Timestamp = Annotated[datetime, Meta(tz=True)]


class PublishBody(Struct, forbid_unknown_fields=True, kw_only=True):
    """Exactly one of `recipients`, `topic` or `broadcast` says who receives it."""

    title: Annotated[str, Meta(min_length=1, max_length=1000, pattern=NO_NUL)]
    body: Annotated[str, Meta(max_length=10_000, pattern=NO_NUL)] = ""
    type: Annotated[str, Meta(pattern=r"^[A-Za-z0-9_.:-]{1,100}$")] = "default"
    data: dict[str, Any] | None = None
    priority: Literal["low", "normal", "high", "urgent"] = "normal"
    recipients: list[UserId] | None = None
    topic: TopicName | None = None
    broadcast: bool = False
    send_at: Timestamp | None = None
    expires_at: Timestamp | None = None
    collapse_key: Annotated[str, Meta(min_length=1, max_length=200, pattern=NO_NUL)] | None = None


class UpToBody(Struct, forbid_unknown_fields=True, kw_only=True):
    """Bulk changes stop at this cursor when given (items that arrived later are untouched)."""

    up_to: Cursor | None = None


class EmptyBody(Struct, forbid_unknown_fields=True):
    pass


class PublishResult(Struct):
    id: str
    recipients: int
    scheduled: bool


class NotificationFields(Struct):
    """What every view of a notification serves (`app.core.render.notification_body`)."""

    id: str
    type: str
    title: str
    body: str
    data: dict[str, Any] | None
    priority: str
    topic: str | None
    collapse_key: str | None
    created_at: str
    expires_at: str | None


class NotificationOut(NotificationFields):
    """One user's item: its cursor in their sequence and their state of it."""

    cursor: str
    seen_at: str | None
    read_at: str | None
    archived_at: str | None


class NotificationPage(Struct):
    items: list[NotificationOut]
    next_cursor: str | None
    unread_count: int
    unseen_count: int
    counts_at: str
    has_more: bool | None = None


class CountsOut(Struct):
    """The counts are exact as of the user's cursor `counts_at`: events after it change them."""

    unread_count: int
    unseen_count: int
    counts_at: str


class BulkResult(Struct):
    changed: bool
    unread_count: int
    unseen_count: int
    counts_at: str


class StreamToken(Struct):
    token: str
    expires_at: str


class DevLogin(Struct):
    token: str
    sub: str
    scopes: list[str]
    expires_at: str


class NodeStats(Struct):
    connections: int
    users_connected: int
    events_out: int
    replays: int
    resets: int
    bus: dict[str, int] | None = None


class SentNotificationOut(NotificationFields):
    """An operator's view: who sent it, to how many, read by how many, held until when."""

    publisher: str
    recipients: int
    read: int
    send_at: str | None


class SentNotificationPage(Struct):
    items: list[SentNotificationOut]
    next_cursor: str | None


class TopicOut(Struct):
    name: str
    subscribed: bool
    subscribers: int


class TopicList(Struct):
    items: list[TopicOut]


class SubscriptionOut(Struct):
    topic: str
    subscribed: bool


class ProblemDoc(Struct):
    type: str
    title: str
    status: int
    detail: str | None = None


class Health(Struct):
    status: str
    store: str | None = None
    bus: str | None = None


SCHEMAS: tuple[type[Struct], ...] = (
    PublishBody,
    UpToBody,
    PublishResult,
    NotificationOut,
    NotificationPage,
    CountsOut,
    BulkResult,
    StreamToken,
    DevLogin,
    NodeStats,
    SentNotificationOut,
    SentNotificationPage,
    TopicOut,
    TopicList,
    SubscriptionOut,
    ProblemDoc,
    Health,
)


def decoder(kind: type[Struct]) -> msgspec.json.Decoder[Any]:
    return msgspec.json.Decoder(kind)
