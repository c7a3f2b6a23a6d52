"""What each channel shows (app/core/content.py): the template's rendering in the user's best
locale, or what follows from the in-app title and body."""

from __future__ import annotations

from typing import Any

import pytest

from herald_server.channels import EmailContent, PushContent, SmsContent, WebhookContent
from herald_server.core.content import MAX_SMS_CHARS, PUSH_TTL_SECONDS, channel_content
from herald_server.core.templates import render
from herald_server.models import (
    EVERY_TYPE,
    Delivery,
    DeliveryTask,
    Notification,
    Priority,
    Template,
)

NOW = 1_750_000_000_000
TEMPLATE = Template(
    "order_shipped",
    1,
    {
        "default_locale": "en",
        "locales": {
            "en": {
                "in_app": {"title": "Order {{ order }} shipped", "body": "Arrives {{ eta }}"},
                "email": {
                    "subject": "Your order {{ order }}",
                    "html": "<p>Hi <b>{{ name }}</b></p>",
                },
                "push": {"title": "Shipped: {{ order }}", "body": "ETA {{ eta }}"},
                "sms": {"text": "Order {{ order }} shipped, ETA {{ eta }}"},
            },
            "fr": {
                "in_app": {"title": "Commande {{ order }} expédiée", "body": "Arrivée {{ eta }}"},
                "sms": {"text": "Commande {{ order }}, arrivée {{ eta }}"},
            },
            "de": {
                "in_app": {"title": "Bestellung {{ order }} versandt", "body": "Ankunft {{ eta }}"}
            },
        },
    },
    0,
    "ops",
)
VARS = {"order": "A-1", "eta": "Tuesday", "name": "Alice & co"}


def unsubscribe(user: str, notification_type: str) -> str:
    return f"https://herald.example.com/unsubscribe/{user}/{notification_type}"


def notification(
    title: str = "Invoice ready",
    body: str = "€42 due\n\nPay by Friday",
    *,
    id: int = 7,
    priority: Priority = "normal",
    expires_at: int | None = None,
    data: Any = None,
) -> Notification:
    return Notification(
        id=id,
        type="invoice",
        title=title,
        body=body,
        data={} if data is None else data,
        priority=priority,
        topic=None,
        collapse_key=None,
        created_at=NOW - 1000,
        expires_at=expires_at,
    )


def task(
    channel: str,
    item: Notification | None = None,
    *,
    content: str | None = None,
    locale: str | None = None,
    digest: tuple[Notification, ...] = (),
) -> DeliveryTask:
    delivery = Delivery(
        id=1,
        notification_id=None if item is None else item.id,
        user="alice",
        channel=channel,
        target="t",
        status="sending",
        reason=None,
        attempts=1,
        due_at=NOW,
        created_at=NOW,
        updated_at=NOW,
        last_error=None,
        provider_id=None,
        digest_id=None,
    )
    return DeliveryTask(delivery, 1, item, content, locale, digest=digest)


def templated(channel: str, locale: str | None, publish_locale: str | None = "en") -> Any:
    """The content of `channel` for a user in `locale`, published by template in
    `publish_locale` (whose in-app text becomes the notification's own title and body)."""
    rendered = render(TEMPLATE, VARS, publish_locale)
    item = notification(rendered.title, rendered.body)
    return channel_content(
        task(channel, item, content=rendered.content, locale=locale), unsubscribe, NOW
    )


# --- with a template ------------------------------------------------------------------------


def test_each_channel_gets_its_own_part_in_the_users_locale() -> None:
    email = templated("email", "en")
    assert isinstance(email, EmailContent)
    assert email.subject == "Your order A-1"
    assert email.html == "<p>Hi <b>Alice &amp; co</b></p>"
    assert email.text == "Hi Alice & co"  # derived from the HTML part
    assert email.unsubscribe_url == unsubscribe("alice", "invoice")
    assert templated("push", "en") == PushContent(
        "Shipped: A-1", "ETA Tuesday", {"id": "7", "type": "invoice"}, "normal", PUSH_TTL_SECONDS
    )
    assert templated("sms", "en-GB") == SmsContent("Order A-1 shipped, ETA Tuesday")


def test_the_users_locale_part_is_used_case_insensitively() -> None:
    assert templated("sms", "FR-ca") == SmsContent("Commande A-1, arrivée Tuesday")


def test_a_locale_with_only_in_app_wins_over_a_later_locales_channel_part() -> None:
    """French has no push or email part: the French in-app text beats the English push."""
    push = templated("push", "fr")
    assert isinstance(push, PushContent)
    assert (push.title, push.body) == ("Commande A-1 expédiée", "Arrivée Tuesday")
    email = templated("email", "fr")
    assert isinstance(email, EmailContent)
    assert email.subject == "Commande A-1 expédiée"
    assert email.text == "Arrivée Tuesday"
    assert email.html == "<p>Arrivée Tuesday</p>"


def test_an_sms_falls_back_to_the_users_in_app_text_not_the_publish_locales() -> None:
    assert templated("sms", "de", publish_locale="en") == SmsContent(
        "Bestellung A-1 versandt\nAnkunft Tuesday"
    )


def test_an_unknown_locale_gets_the_default_locales_parts() -> None:
    assert templated("sms", "it") == SmsContent("Order A-1 shipped, ETA Tuesday")
    assert templated("sms", None) == SmsContent("Order A-1 shipped, ETA Tuesday")


def test_a_webhook_gets_the_notification_as_served_and_its_recipient() -> None:
    item = notification(data={"invoice": 42})
    content = channel_content(task("webhook", item), unsubscribe, NOW)
    assert isinstance(content, WebhookContent)
    assert content.event_type == "notification.created"
    assert content.data["id"] == "7"
    assert content.data["title"] == "Invoice ready"
    assert content.data["data"] == {"invoice": 42}
    assert content.data["recipient"] == "alice"


# --- without a template ---------------------------------------------------------------------


def test_email_without_a_template_is_derived_from_title_and_body_escaped() -> None:
    item = notification("<b>Invoice</b> ready", "Total: <€42> & more\nline two\n\nnext")
    email = channel_content(task("email", item), unsubscribe, NOW)
    assert email == EmailContent(
        "<b>Invoice</b> ready",
        "Total: <€42> & more\nline two\n\nnext",
        "<p>Total: &lt;€42&gt; &amp; more<br>line two</p><p>next</p>",
        unsubscribe("alice", "invoice"),
    )


def test_email_without_a_body_repeats_the_subject() -> None:
    email = channel_content(task("email", notification(body="")), unsubscribe, NOW)
    assert isinstance(email, EmailContent)
    assert (email.text, email.html) == ("Invoice ready", "<p>Invoice ready</p>")


def test_push_without_a_template_carries_title_body_link_and_urgency() -> None:
    item = notification(priority="urgent", data={"url": "https://app.example.com/i/7", "n": 1})
    push = channel_content(task("push", item), unsubscribe, NOW)
    assert push == PushContent(
        "Invoice ready",
        "€42 due\n\nPay by Friday",
        {"id": "7", "type": "invoice", "url": "https://app.example.com/i/7"},
        "high",
        PUSH_TTL_SECONDS,
    )


def test_a_link_that_is_not_a_string_is_left_out_of_push_data() -> None:
    push = channel_content(task("push", notification(data={"url": 5})), unsubscribe, NOW)
    assert isinstance(push, PushContent)
    assert "url" not in push.data
    push = channel_content(task("push", notification(data=["url"])), unsubscribe, NOW)
    assert isinstance(push, PushContent)
    assert push.urgency == "normal"


@pytest.mark.parametrize(
    ("expires_in_ms", "ttl"),
    [(None, PUSH_TTL_SECONDS), (90_500, 90), (3 * 86_400_000, PUSH_TTL_SECONDS), (-5000, 0)],
)
def test_push_ttl_is_the_time_left_before_expiry_within_a_day(
    expires_in_ms: int | None, ttl: int
) -> None:
    expires_at = None if expires_in_ms is None else NOW + expires_in_ms
    push = channel_content(task("push", notification(expires_at=expires_at)), unsubscribe, NOW)
    assert isinstance(push, PushContent)
    assert push.ttl == ttl


def test_sms_without_a_template_joins_title_and_body() -> None:
    assert channel_content(task("sms", notification()), unsubscribe, NOW) == SmsContent(
        "Invoice ready\n€42 due\n\nPay by Friday"
    )
    assert channel_content(task("sms", notification(body="")), unsubscribe, NOW) == SmsContent(
        "Invoice ready"
    )


def test_sms_is_capped_at_1600_characters() -> None:
    content = channel_content(task("sms", notification("t", "é" * 5000)), unsubscribe, NOW)
    assert isinstance(content, SmsContent)
    assert len(content.text) == MAX_SMS_CHARS == 1600
    assert content.text.startswith("t\né")


# --- digests --------------------------------------------------------------------------------


def test_a_digest_email_lists_every_notification_escaped_with_an_unsubscribe_for_all() -> None:
    items = (
        notification("<Invoice> ready", "€42", id=1),
        notification("Comment & reply", "", id=2),
    )
    email = channel_content(task("email", None, digest=items), unsubscribe, NOW)
    assert isinstance(email, EmailContent)
    assert email.subject == "2 new notifications"
    assert email.text == "<Invoice> ready\n€42\n\nComment & reply"
    assert email.html == (
        "<ul><li><strong>&lt;Invoice&gt; ready</strong><br>€42</li>"
        "<li><strong>Comment &amp; reply</strong></li></ul>"
    )
    assert email.unsubscribe_url == unsubscribe("alice", EVERY_TYPE)


def test_a_digest_of_one_says_so_in_the_singular() -> None:
    email = channel_content(task("email", None, digest=(notification(),)), unsubscribe, NOW)
    assert isinstance(email, EmailContent)
    assert email.subject == "1 new notification"
