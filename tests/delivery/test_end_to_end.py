"""Acceptance 1: email, Web Push, webhook and SMS each deliver end to end through a real local
provider, and what each received is the template's rendering for its channel and locale."""

from __future__ import annotations

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
from tests.helpers import eventually

pytestmark = pytest.mark.anyio

ORDER_SHIPPED = {
    "description": "An order left the warehouse",
    "default_locale": "en",
    "locales": {
        "en": {
            "in_app": {"title": "Order {{ order }} shipped", "body": "Arrives {{ eta }}"},
            "email": {
                "subject": "Your order {{ order }} is on its way",
                "text": "Hello {{ name }}, order {{ order }} arrives {{ eta }}.",
                "html": "<p>Hello <b>{{ name }}</b>, order {{ order }} arrives {{ eta }}.</p>",
            },
            "push": {"title": "Shipped: {{ order }}", "body": "ETA {{ eta }}"},
            "sms": {"text": "Order {{ order }} shipped, ETA {{ eta }}"},
        },
        "fr": {
            "in_app": {"title": "Commande {{ order }} expédiée", "body": "Arrivée {{ eta }}"},
            "sms": {"text": "Commande {{ order }} expédiée, arrivée {{ eta }}"},
        },
    },
}
VARS = {"order": "A-1001", "eta": "Tuesday", "name": "<Alice & co>"}


async def set_up_alice(node: Node, providers: Providers, settings: Settings) -> str:
    """Alice, reachable on every channel: contact, a browser subscription, a webhook."""
    admin = auth(node.settings, "ops", SCOPE_ADMIN)
    publisher = auth(node.settings, "shop", SCOPE_PUBLISH)
    client = node.client
    await call(client, "PUT", "/api/templates/order_shipped", admin, 201, ORDER_SHIPPED)
    await call(
        client,
        "PUT",
        "/api/admin/types/order_shipped",
        admin,
        201,
        {"channels": {"email": True, "sms": True}},
    )
    contact = {"email": "alice@example.com", "phone": "+15551230001"}
    await call(client, "PUT", "/api/contacts/alice", publisher, 201, contact)
    await register_webhook(node, providers, "alice")
    return await subscribe_browser(node, providers, "alice")


async def publish_order(node: Node) -> str:
    fields = {"template": "order_shipped", "vars": VARS, "type": "order_shipped"}
    return await publish(node, ["alice"], **fields)


async def test_a_template_reaches_every_channel_rendered_for_it(
    node: Node, providers: Providers, settings: Settings
) -> None:
    endpoint = await set_up_alice(node, providers, settings)

    published = await publish_order(node)

    (email,) = await providers.smtp.wait_for(1)
    (push,) = await providers.push.wait_for(1)
    await providers.webhooks.wait_for(1)
    (sms,) = await providers.twilio.wait_for(1)

    message = email.message
    assert email.envelope_to == ["alice@example.com"]
    assert message["Subject"] == "Your order A-1001 is on its way"
    text = message.get_body(("plain",))
    html = message.get_body(("html",))
    assert text is not None
    assert html is not None
    assert text.get_content().strip() == "Hello <Alice & co>, order A-1001 arrives Tuesday."
    assert "<b>&lt;Alice &amp; co&gt;</b>" in html.get_content()
    assert message["List-Unsubscribe"].startswith("<https://herald.example.com/api/unsubscribe?")

    assert push.endpoint == endpoint
    assert push.payload["title"] == "Shipped: A-1001"
    assert push.payload["body"] == "ETA Tuesday"
    assert push.payload["data"]["id"] == published

    (arrival,) = providers.webhooks.unique.values()
    assert arrival.payload["type"] == "notification.created"
    assert arrival.payload["data"]["title"] == "Order A-1001 shipped"
    assert arrival.payload["data"]["recipient"] == "alice"

    assert sms["To"] == "+15551230001"
    assert sms["Body"] == "Order A-1001 shipped, ETA Tuesday"

    admin = auth(node.settings, "ops", SCOPE_ADMIN)

    async def all_finished() -> bool:
        page = await call(
            node.client,
            "GET",
            f"/api/admin/deliveries?notification={published}",
            admin,
            200,
        )
        statuses = {item["channel"]: item["status"] for item in page["items"]}
        return statuses == {
            "email": "sent",
            "push": "sent",
            "sms": "sent",
            "webhook": "delivered",
        }

    await eventually(all_finished)


async def test_each_channel_speaks_the_recipients_language_with_fallbacks(
    node: Node, providers: Providers, settings: Settings
) -> None:
    """French has its own SMS; its push and email fall back to the French in-app text."""
    await set_up_alice(node, providers, settings)
    alice = auth(node.settings, "alice")
    await call(node.client, "PUT", "/api/preferences", alice, 200, {"locale": "fr-CA"})

    await publish_order(node)

    (email,) = await providers.smtp.wait_for(1)
    (push,) = await providers.push.wait_for(1)
    (sms,) = await providers.twilio.wait_for(1)
    assert sms["Body"] == "Commande A-1001 expédiée, arrivée Tuesday"
    assert push.payload["title"] == "Commande A-1001 expédiée"
    assert email.message["Subject"] == "Commande A-1001 expédiée"
