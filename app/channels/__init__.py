"""Delivery channels: one small class per provider behind one Protocol, chosen by settings.

A channel turns one `Message` into one provider request and reports an `Outcome`. It never
retries (the worker does, with backoff), never touches the store, and never raises for what a
provider answered: every answer, including a refused connection, is an Outcome the worker can
record as an attempt.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal, Protocol
from urllib.parse import urlsplit

from herald_server.config import ConfigError, Settings, redact

ChannelName = Literal["email", "push", "sms", "webhook"]
# Where Twilio reports the fate of each text (herald_server.api.sms_status serves it).
SMS_STATUS_PATH = "/api/sms/status"
CHANNEL_NAMES: tuple[ChannelName, ...] = ("email", "push", "sms", "webhook")


@dataclass(frozen=True, slots=True)
class EmailAddress:
    address: str


@dataclass(frozen=True, slots=True)
class PhoneNumber:
    number: str


@dataclass(frozen=True, slots=True)
class PushTarget:
    """A browser's PushSubscription: where to POST, and the keys to encrypt for."""

    subscription_id: int
    endpoint: str
    p256dh: str
    auth: str


@dataclass(frozen=True, slots=True)
class WebhookTarget:
    webhook_id: int
    url: str
    secret: str


Target = EmailAddress | PhoneNumber | PushTarget | WebhookTarget


@dataclass(frozen=True, slots=True)
class EmailContent:
    subject: str
    text: str
    html: str
    # RFC 8058 one-click unsubscribe; None leaves the List-Unsubscribe headers out.
    unsubscribe_url: str | None = None


@dataclass(frozen=True, slots=True)
class PushContent:
    title: str
    body: str
    # Opaque to the channel: what the service worker receives beside title and body.
    data: dict[str, Any] = field(default_factory=dict)
    # RFC 8030 Urgency: very-low, low, normal or high.
    urgency: str = "normal"
    # Seconds the push service keeps the message for an offline browser.
    ttl: int = 86_400


@dataclass(frozen=True, slots=True)
class SmsContent:
    text: str


@dataclass(frozen=True, slots=True)
class WebhookContent:
    """Sent as the Standard Webhooks body `{"type", "timestamp", "data"}`."""

    event_type: str
    data: dict[str, Any]


Content = EmailContent | PushContent | SmsContent | WebhookContent


@dataclass(frozen=True, slots=True)
class Message:
    """One delivery attempt. `key` is the delivery's idempotency key: the same on every retry
    and on a replay from the dead-letter queue, so a provider that honours it sends once."""

    key: str
    user: str
    target: Target
    content: Content


OutcomeStatus = Literal["sent", "delivered", "retry", "failed", "gone"]


@dataclass(frozen=True, slots=True)
class Outcome:
    """What the provider answered.

    - `sent`: accepted for onward delivery (SMTP 250, push service 201, SMS queued);
    - `delivered`: the final recipient has it (a webhook receiver's 2xx);
    - `retry`: a transient failure (timeout, 5xx, 429; `retry_after` when the provider said);
    - `failed`: a permanent refusal that no retry will change (most 4xx);
    - `gone`: the target no longer exists (push 404/410, webhook 410): drop it, do not retry.

    `detail` is the provider's answer in a line, kept with the attempt for operators.
    """

    status: OutcomeStatus
    detail: str
    provider_id: str | None = None
    retry_after: float | None = None


class Channel(Protocol):
    async def send(self, message: Message) -> Outcome:
        """Make one attempt; report every answer as an Outcome, never raise for one."""
        ...

    async def aclose(self) -> None: ...


def configured_channels(settings: Settings) -> frozenset[ChannelName]:
    """The channels these settings turn on. Webhooks always are (users register their own
    endpoints); email, Web Push and SMS once their provider is configured."""
    found: set[ChannelName] = {"webhook"}
    if settings.smtp_url is not None:
        found.add("email")
    if settings.vapid_private_key is not None:
        found.add("push")
    if settings.sms_url is not None:
        found.add("sms")
    return frozenset(found)


def open_channels(settings: Settings) -> dict[str, Channel]:
    """The configured channels, ready to send; the one place their URLs are read."""
    timeout = settings.provider_timeout_seconds
    found: dict[str, Channel] = {}
    if settings.smtp_url is not None:
        from herald_server.channels.email import EmailChannel

        found["email"] = EmailChannel(settings.smtp_url, settings.email_from, timeout)
    if settings.vapid_private_key is not None:
        from herald_server.channels.webpush import WebPushChannel

        found["push"] = WebPushChannel(
            settings.vapid_private_key,
            settings.vapid_subject,
            timeout,
            settings.allow_private_targets,
        )
    if settings.sms_url is not None:
        scheme = urlsplit(settings.sms_url).scheme
        if scheme not in ("twilio", "twilio+http"):
            raise ConfigError(f"HERALD_SMS_URL: unsupported scheme in {redact(settings.sms_url)}")
        from herald_server.channels.sms import TwilioChannel

        callback = settings.base_url + SMS_STATUS_PATH if settings.public_url else None
        found["sms"] = TwilioChannel(settings.sms_url, timeout, callback)
    from herald_server.channels.webhook import WebhookChannel

    found["webhook"] = WebhookChannel(timeout, settings.allow_private_targets)
    return found
