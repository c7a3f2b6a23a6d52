"""Request and response bodies as msgspec Structs: decoding validates types and refuses
unknown fields in one pass, and the same types produce the OpenAPI schemas."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

import msgspec
from msgspec import Meta, Struct, field

# PostgreSQL text cannot hold NUL, and no title or id needs it: refused on every backend alike.
NO_NUL = r"^[^\x00]*$"
# msgspec matches patterns with `re.search`, whose `$` also matches before a final newline, so
# "alice@example.com\n" would pass as an address (a header injection). `(?!\n)` refuses it; in
# JSON Schema (ECMA-262) `$` is already the very end, and the lookahead changes nothing.
END = r"$(?!\n)"
UserId = Annotated[str, Meta(min_length=1, max_length=200, pattern=rf"^[^\x00-\x1f\x7f]+{END}")]
TopicName = Annotated[str, Meta(pattern=rf"^[A-Za-z0-9][A-Za-z0-9._-]{{0,99}}{END}")]
Cursor = Annotated[str, Meta(pattern=rf"^[0-9]{{1,18}}{END}")]
Timestamp = Annotated[datetime, Meta(tz=True)]
TypeName = Annotated[str, Meta(pattern=rf"^[A-Za-z0-9_.:-]{{1,100}}{END}")]
Locale = Annotated[str, Meta(pattern=rf"^[A-Za-z]{{2,3}}(-[A-Za-z0-9]{{2,8}}){{0,3}}{END}")]
Clock = Annotated[str, Meta(pattern=rf"^([01][0-9]|2[0-3]):[0-5][0-9](:[0-5][0-9])?{END}")]
ChannelName = Literal["in_app", "email", "push", "sms", "webhook"]
DeliveryChannelName = Literal["email", "push", "sms", "webhook"]
ChannelSwitches = Annotated[dict[ChannelName, bool], Meta(max_length=5)]
# A plain address: no spaces or control characters (so no header injection), one @.
_ADDRESS_PART = r"[^@\s\x00-\x1f\x7f]+"
Email = Annotated[
    str, Meta(max_length=254, pattern=rf"^{_ADDRESS_PART}@{_ADDRESS_PART}\.{_ADDRESS_PART}{END}")
]
Phone = Annotated[str, Meta(pattern=rf"^\+[1-9][0-9]{{1,14}}{END}")]
# No spaces or control characters (NUL cannot even be stored): none is valid in a URL.
# An audit log action: what.how, e.g. template.put.
AUDIT_ACTION = r"^[a-z_]{1,40}\.[a-z_]{1,40}$"
Url = Annotated[str, Meta(min_length=1, max_length=2048, pattern=rf"^[^\x00-\x20\x7f]+{END}")]


class PublishBody(Struct, forbid_unknown_fields=True, kw_only=True):
    """Exactly one of `recipients`, `topic` or `broadcast` says who receives it; `title` (and
    `body`), or `template` with its `vars`, say what."""

    title: Annotated[str, Meta(min_length=1, max_length=1000, pattern=NO_NUL)] | None = None
    body: Annotated[str, Meta(max_length=10_000, pattern=NO_NUL)] | None = None
    template: TypeName | None = None
    vars: dict[str, Any] | None = None
    locale: Locale | None = None
    channels: Annotated[list[ChannelName], Meta(min_length=1, max_length=5)] | None = None
    type: TypeName = "default"
    data: dict[str, Any] | None = None
    priority: Literal["low", "normal", "high", "urgent"] = "normal"
    recipients: list[UserId] | None = None
    topic: TopicName | None = None
    broadcast: bool = False
    send_at: Timestamp | None = None
    expires_at: Timestamp | None = None
    collapse_key: Annotated[str, Meta(min_length=1, max_length=200, pattern=NO_NUL)] | None = None


class QuietHoursBody(Struct, forbid_unknown_fields=True):
    """Local times of day; `end` may be earlier than `start` (the window wraps midnight)."""

    start: Clock
    end: Clock


class DigestBody(Struct, forbid_unknown_fields=True, kw_only=True):
    """Email as one digest, hourly or daily at `at` (local time), instead of one per item."""

    frequency: Literal["off", "hourly", "daily"] = "off"
    at: Clock = "08:00"


class PreferencesBody(Struct, forbid_unknown_fields=True, kw_only=True):
    """A user's own choices. `channels` switch a channel for every type, `types` for one type;
    a channel left out follows the admin's defaults for the type."""

    muted: bool = False
    timezone: Annotated[str, Meta(min_length=1, max_length=64)] = "UTC"
    locale: Locale | None = None
    quiet_hours: QuietHoursBody | None = None
    digest: DigestBody = field(default_factory=DigestBody)
    channels: ChannelSwitches = field(default_factory=dict)
    types: Annotated[dict[TypeName, ChannelSwitches], Meta(max_length=200)] = field(
        default_factory=dict
    )


class ContactOut(Struct):
    email: str | None
    phone: str | None
    user: str | None = None


class ChannelsOut(Struct):
    """Read-only context for a preferences page."""

    available: list[str]
    contact: ContactOut
    push_public_key: str | None
    defaults: dict[str, dict[str, bool]]


class ContactBody(Struct, forbid_unknown_fields=True, kw_only=True):
    email: Email | None = None
    phone: Phone | None = None


class PushKeys(Struct, forbid_unknown_fields=True):
    p256dh: Annotated[str, Meta(min_length=1, max_length=200)]
    auth: Annotated[str, Meta(min_length=1, max_length=100)]


class PushSubscriptionBody(Struct, forbid_unknown_fields=True, kw_only=True):
    """What a browser's `PushSubscription.toJSON()` gives."""

    endpoint: Url
    keys: PushKeys
    # The browser's own field name; accepted and not kept (push services expire on 404/410).
    expirationTime: int | None = None


class PushEndpointBody(Struct, forbid_unknown_fields=True):
    endpoint: Url


class PushSubscriptionOut(Struct):
    id: str
    endpoint: str
    created_at: str


class PushSubscriptionList(Struct):
    items: list[PushSubscriptionOut]


class WebhookBody(Struct, forbid_unknown_fields=True, kw_only=True):
    """`user` registers it for another user (admin scope); `types` limits what it receives."""

    url: Url
    types: Annotated[list[TypeName], Meta(min_length=1, max_length=100)] | None = None
    user: UserId | None = None


class WebhookOut(Struct):
    id: str
    user: str
    url: str
    types: list[str] | None
    created_at: str
    secret: str | None = None


class WebhookList(Struct):
    items: list[WebhookOut]


class TemplateInApp(Struct, forbid_unknown_fields=True, kw_only=True):
    title: Annotated[str, Meta(min_length=1, max_length=2000)]
    body: Annotated[str, Meta(max_length=20_000)] | None = None


class TemplateEmail(Struct, forbid_unknown_fields=True, kw_only=True):
    subject: Annotated[str, Meta(min_length=1, max_length=2000)]
    text: Annotated[str, Meta(max_length=100_000)] | None = None
    html: Annotated[str, Meta(max_length=100_000)] | None = None


class TemplatePush(Struct, forbid_unknown_fields=True, kw_only=True):
    title: Annotated[str, Meta(min_length=1, max_length=2000)]
    body: Annotated[str, Meta(max_length=4000)] | None = None


class TemplateSms(Struct, forbid_unknown_fields=True):
    text: Annotated[str, Meta(min_length=1, max_length=4000)]


class TemplateParts(Struct, forbid_unknown_fields=True, kw_only=True):
    in_app: TemplateInApp | None = None
    email: TemplateEmail | None = None
    push: TemplatePush | None = None
    sms: TemplateSms | None = None


class TemplateBody(Struct, forbid_unknown_fields=True, kw_only=True):
    """Per locale, per channel; the default locale needs `in_app`."""

    description: Annotated[str, Meta(max_length=1000)] = ""
    default_locale: Locale = "en"
    locales: Annotated[dict[Locale, TemplateParts], Meta(min_length=1, max_length=50)]


class TemplateOut(TemplateBody, kw_only=True):
    key: str
    version: int
    updated_at: str
    updated_by: str


class TemplateList(Struct):
    items: list[TemplateOut]


class PreviewBody(Struct, forbid_unknown_fields=True, kw_only=True):
    vars: dict[str, Any] = field(default_factory=dict)
    locale: Locale | None = None


class PreviewOut(Struct):
    """The in-app title and body in the locale asked for, and every locale's rendering."""

    title: str
    body: str
    locales: dict[str, dict[str, dict[str, str]]]


class EscalationStepBody(Struct, forbid_unknown_fields=True):
    """Send on `channel` `after_seconds` after the notification, unless the user has `unless`
    (seen or read) it by then."""

    after_seconds: Annotated[int, Meta(ge=0, le=30 * 86_400)]
    unless: Literal["seen", "read"]
    channel: DeliveryChannelName


class TypeDefaultsBody(Struct, forbid_unknown_fields=True, kw_only=True):
    channels: ChannelSwitches = field(default_factory=dict)
    escalation: Annotated[list[EscalationStepBody], Meta(max_length=10)] = field(
        default_factory=list
    )


class TypeDefaultsOut(TypeDefaultsBody, kw_only=True):
    type: str
    updated_at: str | None


class TypeDefaultsList(Struct):
    items: list[TypeDefaultsOut]


class DeliveryOut(Struct):
    """`status`: held, pending, sending, sent, delivered, read, failed (dead-lettered),
    cancelled, or digested (carried by the digest delivery `digest_id`)."""

    id: str
    notification_id: str | None
    user: str
    channel: str
    target: str
    status: str
    reason: str | None
    attempts: int
    due_at: str
    created_at: str
    updated_at: str
    last_error: str | None
    provider_id: str | None
    digest_id: str | None


class AttemptOut(Struct):
    attempt: int
    started_at: str
    finished_at: str | None
    outcome: str
    detail: str | None


class DeliveryDetail(DeliveryOut):
    history: list[AttemptOut]


class DeliveryPage(Struct):
    items: list[DeliveryOut]
    next_cursor: str | None


class UpToBody(Struct, forbid_unknown_fields=True, kw_only=True):
    """Bulk changes stop at this cursor when given (items that arrived later are untouched)."""

    up_to: Cursor | None = None


class EmptyBody(Struct, forbid_unknown_fields=True):
    pass


class SkippedRecipient(Struct):
    """A named recipient this publish did not reach: `rate_limited` when the publisher's
    bucket for that recipient was empty (the others were reached all the same)."""

    recipient: str
    reason: Literal["rate_limited"]


class PublishResult(Struct, omit_defaults=True):
    """`recipients` counts those reached; `skipped`, only there when some were left out,
    says who and why."""

    id: str
    recipients: int
    scheduled: bool
    skipped: list[SkippedRecipient] = []


class NotificationFields(Struct):
    """What every view of a notification serves (`herald_server.core.render.notification_body`)."""

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


class AuditEntryOut(Struct):
    id: str
    at: str
    actor: str
    action: str
    target: str
    request_id: str | None
    detail: dict[str, Any]


class AuditPage(Struct):
    items: list[AuditEntryOut]
    next_cursor: str | None


class TopicOut(Struct, omit_defaults=True):
    """`subscribers` is shown to publishers and admins only."""

    name: str
    subscribed: bool
    private: bool
    subscribers: int | None = None


class TopicList(Struct):
    """By name; `next_cursor` goes in `after=` for the next page (null on the last)."""

    items: list[TopicOut]
    next_cursor: str | None


class TopicAccessBody(Struct, forbid_unknown_fields=True):
    """A private topic is joined only through the backend or a token claim naming it."""

    private: bool


class TopicAccessOut(Struct):
    name: str
    private: bool
    subscribers: int


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
    # Each supervised background loop: "up", or "crashing" (the node is then not ready).
    loops: dict[str, str] | None = None


SCHEMAS: tuple[type[Struct], ...] = (
    PublishBody,
    PreferencesBody,
    ChannelsOut,
    ContactBody,
    ContactOut,
    PushSubscriptionBody,
    PushEndpointBody,
    PushSubscriptionOut,
    PushSubscriptionList,
    WebhookBody,
    WebhookOut,
    WebhookList,
    TemplateBody,
    TemplateOut,
    TemplateList,
    PreviewBody,
    PreviewOut,
    TypeDefaultsBody,
    TypeDefaultsOut,
    TypeDefaultsList,
    DeliveryPage,
    DeliveryDetail,
    UpToBody,
    SkippedRecipient,
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
    AuditEntryOut,
    AuditPage,
    TopicOut,
    TopicList,
    TopicAccessBody,
    TopicAccessOut,
    SubscriptionOut,
    ProblemDoc,
    Health,
    EmptyBody,
)


def decoder(kind: type[Struct]) -> msgspec.json.Decoder[Any]:
    return msgspec.json.Decoder(kind)
