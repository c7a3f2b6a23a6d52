"""What each channel shows: the template's rendering for the user's locale, or, for a part the
template lacks (or a notification sent without one), what follows from the in-app title and
body. Built when the attempt is made, from renderings stored at publish time."""

from __future__ import annotations

import html
from collections.abc import Callable, Mapping
from typing import Any

from herald_server import codec
from herald_server.channels import Content, EmailContent, PushContent, SmsContent, WebhookContent
from herald_server.core.render import notification_body
from herald_server.core.templates import locale_chain, sanitize_html, strip_tags
from herald_server.models import EVERY_TYPE, DeliveryTask, Notification

UnsubscribeLink = Callable[[str, str], str]
"""(user, notification type or EVERY_TYPE) → a one-click unsubscribe URL."""

# Twilio concatenates at most 10 segments: about 1,600 characters.
MAX_SMS_CHARS = 1600
URGENCY = {"urgent": "high", "high": "high", "normal": "normal", "low": "low"}
PUSH_TTL_SECONDS = 86_400
WEBHOOK_EVENT = "notification.created"


def channel_content(task: DeliveryTask, unsubscribe: UnsubscribeLink, now: int) -> Content:
    channel, user = task.delivery.channel, task.delivery.user
    if task.notification is None:
        return digest_email(task.digest, unsubscribe(user, EVERY_TYPE))
    notification = task.notification
    part = _part(task, channel)
    if channel == "email":
        return _email(notification, part, unsubscribe(user, notification.type))
    if channel == "push":
        return _push(notification, part, now)
    if channel == "sms":
        text = part.get("text") or _joined(
            part.get("title", notification.title), part.get("body", notification.body)
        )
        return SmsContent(text[:MAX_SMS_CHARS])
    return WebhookContent(WEBHOOK_EVENT, {**notification_body(notification), "recipient": user})


def _part(task: DeliveryTask, channel: str) -> Mapping[str, str]:
    """The channel's rendering in the best locale that has one; a locale with only an in-app
    part wins over a later locale with this channel's part (the user's language first)."""
    if task.content is None:
        return {}
    content: dict[str, Any] = codec.loads(task.content)
    locales: dict[str, dict[str, dict[str, str]]] = content["locales"]
    for name in locale_chain(task.locale, content["default_locale"], locales):
        parts = locales[name]
        if channel in parts:
            return parts[channel]
        if "in_app" in parts:
            in_app = parts["in_app"]
            return {"title": in_app["title"], "body": in_app.get("body", "")}
    return {}


def _email(
    notification: Notification, part: Mapping[str, str], unsubscribe_url: str
) -> EmailContent:
    subject = part.get("subject") or part.get("title") or notification.title
    text = part.get("text")
    markup = part.get("html")
    if markup is None:
        body = text if text is not None else part.get("body", notification.body)
        text = body or subject
        markup = _paragraphs(text)
    elif text is None:
        text = _plain(markup)
    return EmailContent(subject, text, markup, unsubscribe_url)


def _push(notification: Notification, part: Mapping[str, str], now: int) -> PushContent:
    data: dict[str, Any] = {"id": str(notification.id), "type": notification.type}
    link = notification.data.get("url") if isinstance(notification.data, dict) else None
    if isinstance(link, str):
        data["url"] = link
    ttl = PUSH_TTL_SECONDS
    if notification.expires_at is not None:
        ttl = max(0, min(ttl, (notification.expires_at - now) // 1000))
    return PushContent(
        part.get("title") or notification.title,
        part.get("body", notification.body),
        data,
        URGENCY[notification.priority],
        ttl,
    )


def digest_email(notifications: tuple[Notification, ...], unsubscribe_url: str) -> EmailContent:
    count = len(notifications)
    subject = f"{count} new notification{'s' if count != 1 else ''}"
    text = "\n\n".join(_joined(item.title, item.body) for item in notifications)
    items = "".join(
        f"<li><strong>{html.escape(item.title)}</strong>"
        + (f"<br>{html.escape(item.body)}" if item.body else "")
        + "</li>"
        for item in notifications
    )
    return EmailContent(subject, text, sanitize_html(f"<ul>{items}</ul>"), unsubscribe_url)


def _joined(title: str, body: str) -> str:
    return f"{title}\n{body}" if body else title


def _paragraphs(text: str) -> str:
    return "".join(
        f"<p>{html.escape(paragraph).replace(chr(10), '<br>')}</p>"
        for paragraph in text.split("\n\n")
        if paragraph
    )


def _plain(markup: str) -> str:
    """The text of an HTML part, for clients that show only text."""
    spaced = markup.replace("<br>", "\n").replace("</p>", "\n\n").replace("</li>", "\n")
    return html.unescape(strip_tags(spaced)).strip()
