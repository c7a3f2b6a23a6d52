"""POST /api/notifications with `template`, `vars`, `locale` and `channels`: the template is
rendered whole before anything is stored, so every refusal leaves no notification, no inbox
item and no delivery behind.

The node runs its delivery worker in-process on both backends and Alice has a webhook, so a
notification that got stored would show up as a delivery. Each refusal is followed by a
publish that succeeds; once its delivery has arrived, anything stored before it would have
been routed too.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, replace
from typing import Any

import httpx
import pytest

from herald_server.config import Settings
from herald_server.main import create_app
from herald_server.models import SCOPE_ADMIN, SCOPE_PUBLISH
from tests.api.bodies import get_json
from tests.conftest import auth, run_server
from tests.helpers import assert_problem, eventually, inbox_of
from tests.servers.webhook import WebhookReceiver, webhook_receiver

pytestmark = pytest.mark.anyio

WELCOME = {
    "default_locale": "en",
    "locales": {
        "en": {
            "in_app": {"title": "Welcome, {{ name }}", "body": "You joined {{ team }}."},
            "email": {"subject": "Welcome", "text": "Your manager is {{ manager }}."},
        },
        "fr": {"in_app": {"title": "Bienvenue, {{ name }}", "body": "Équipe {{ team }}"}},
    },
}
VARS = {"name": "Alice", "team": "Ops", "manager": "Bob"}


@dataclass
class Node:
    client: httpx.AsyncClient
    settings: Settings
    hooks: WebhookReceiver

    def auth(self, sub: str, *scopes: str) -> dict[str, str]:
        return auth(self.settings, sub, *scopes)


@pytest.fixture
async def node(settings: Settings) -> AsyncIterator[Node]:
    configured = replace(
        settings,
        allow_private_targets=True,
        in_process_worker=True,
        dispatch_interval=0.05,
        delivery_backoff=(0.2,),
        provider_timeout_seconds=2,
        job_visibility_seconds=5,
    )
    async with (
        webhook_receiver() as hooks,
        run_server(create_app(configured)) as live,
        httpx.AsyncClient(base_url=live.url, timeout=10) as client,
    ):
        found = Node(client, configured, hooks)
        stored = await client.put(
            "/api/templates/welcome", headers=found.auth("ops", SCOPE_ADMIN), json=WELCOME
        )
        assert stored.status_code == 201, stored.text
        hook = await client.post(
            "/api/webhooks", headers=found.auth("alice"), json={"url": hooks.url("alice")}
        )
        assert hook.status_code == 201, hook.text
        hooks.set_secret("alice", hook.json()["secret"])
        yield found


async def publish(node: Node, body: dict[str, Any], *scopes: str) -> httpx.Response:
    headers = node.auth("onboarding", *(scopes or (SCOPE_PUBLISH,)))
    return await node.client.post("/api/notifications", headers=headers, json=body)


async def deliveries(node: Node) -> list[dict[str, Any]]:
    page = await get_json(node.client, "/api/admin/deliveries", node.auth("ops", SCOPE_ADMIN))
    items: list[dict[str, Any]] = page["items"]
    return items


async def delivered(node: Node, notification_id: str) -> dict[str, Any]:
    """Alice's webhook delivery of the notification, once delivered."""
    found: list[dict[str, Any]] = []

    async def arrived() -> bool:
        found[:] = [
            item
            for item in await deliveries(node)
            if item["notification_id"] == notification_id and item["status"] == "delivered"
        ]
        return bool(found)

    await eventually(arrived)
    return found[0]


# --- the happy path ------------------------------------------------------------------------


async def test_a_template_is_rendered_into_the_inbox_and_to_the_webhook(node: Node) -> None:
    response = await publish(
        node,
        {
            "recipients": ["alice"],
            "template": "welcome",
            "vars": VARS,
            "type": "onboarding",
            "channels": ["in_app", "webhook"],
        },
    )
    assert response.status_code == 202, response.text
    sent = response.json()
    assert sent["recipients"] == 1

    [item] = (await inbox_of(node.client, node.auth("alice")))["items"]
    assert (item["id"], item["title"], item["body"]) == (
        sent["id"],
        "Welcome, Alice",
        "You joined Ops.",
    )
    assert (item["type"], item["data"]) == ("onboarding", None)
    delivery = await delivered(node, sent["id"])
    assert (delivery["user"], delivery["channel"]) == ("alice", "webhook")
    [arrival] = node.hooks.unique.values()
    assert arrival.payload["data"]["title"] == "Welcome, Alice"


@pytest.mark.parametrize(
    ("locale", "title"),
    [("fr", "Bienvenue, Alice"), ("fr-BE", "Bienvenue, Alice"), ("de", "Welcome, Alice")],
)
async def test_the_inbox_gets_the_asked_locale_or_the_default(
    node: Node, locale: str, title: str
) -> None:
    body = {"recipients": ["alice"], "template": "welcome", "vars": VARS, "locale": locale}
    response = await publish(node, body)
    assert response.status_code == 202, response.text
    [item] = (await inbox_of(node.client, node.auth("alice")))["items"]
    assert item["title"] == title


async def test_variables_are_not_markup_in_the_inbox(node: Node) -> None:
    name = "<b>Alice</b> & <i>co</i>"
    body = {"recipients": ["alice"], "template": "welcome", "vars": {**VARS, "name": name}}
    assert (await publish(node, body)).status_code == 202
    [item] = (await inbox_of(node.client, node.auth("alice")))["items"]
    assert item["title"] == f"Welcome, {name}"


# --- refusals ------------------------------------------------------------------------------


REFUSED: dict[str, tuple[dict[str, Any], int, str]] = {
    "unknown-template": (
        {"template": "farewell", "vars": VARS},
        422,
        "unknown-template",
    ),
    "missing-variable": (
        {"template": "welcome", "vars": {"name": "Alice", "manager": "Bob"}},
        422,
        "template-variable-missing",
    ),
    # Rendered whole at publish: a variable only the email part uses is still required.
    "missing-variable-of-another-channel": (
        {"template": "welcome", "vars": {"name": "Alice", "team": "Ops"}},
        422,
        "template-variable-missing",
    ),
    "no-vars-at-all": ({"template": "welcome"}, 422, "template-variable-missing"),
    "title-with-template": (
        {"template": "welcome", "vars": VARS, "title": "Hi"},
        422,
        "validation-failed",
    ),
    "body-with-template": (
        {"template": "welcome", "vars": VARS, "body": "Hi"},
        422,
        "validation-failed",
    ),
    "vars-without-template": ({"title": "Hi", "vars": VARS}, 422, "validation-failed"),
    "locale-without-template": ({"title": "Hi", "locale": "fr"}, 422, "validation-failed"),
    "neither-title-nor-template": ({"vars": VARS}, 422, "validation-failed"),
    "bad-template-key": ({"template": "wel come", "vars": VARS}, 422, "validation-failed"),
    "vars-not-an-object": ({"template": "welcome", "vars": ["Alice"]}, 422, "validation-failed"),
    "bad-locale": (
        {"template": "welcome", "vars": VARS, "locale": "french"},
        422,
        "validation-failed",
    ),
    "unknown-channel": (
        {"template": "welcome", "vars": VARS, "channels": ["fax"]},
        422,
        "validation-failed",
    ),
    "no-channels": (
        {"template": "welcome", "vars": VARS, "channels": []},
        422,
        "validation-failed",
    ),
    "rendered-too-large": (
        {"template": "welcome", "vars": {**VARS, "name": "x" * 11_000}},
        413,
        "notification-too-large",
    ),
}


@pytest.mark.parametrize("case", REFUSED.keys())
async def test_a_refused_templated_publish_stores_and_delivers_nothing(
    node: Node, case: str
) -> None:
    fields, status, slug = REFUSED[case]
    refused = await publish(node, {"recipients": ["alice"], **fields})
    assert_problem(refused, status, slug)

    control = await publish(node, {"recipients": ["alice"], "title": "control"})
    assert control.status_code == 202, control.text
    control_id = control.json()["id"]
    await delivered(node, control_id)
    assert [item["notification_id"] for item in await deliveries(node)] == [control_id]
    inbox = await inbox_of(node.client, node.auth("alice"))
    assert [item["id"] for item in inbox["items"]] == [control_id]
    assert len(node.hooks.unique) == 1


async def test_a_template_the_sandbox_refuses_is_a_422_at_publish(node: Node) -> None:
    admin = node.auth("ops", SCOPE_ADMIN)
    probe = {"locales": {"en": {"in_app": {"title": "{{ ''.__class__.__mro__ }}"}}}}
    stored = await node.client.put("/api/templates/probe", headers=admin, json=probe)
    assert stored.status_code == 201, stored.text
    refused = await publish(node, {"recipients": ["alice"], "template": "probe"})
    assert_problem(refused, 422, "template-error")
    assert (await inbox_of(node.client, node.auth("alice")))["items"] == []


async def test_sending_to_others_by_template_still_needs_the_publish_scope(node: Node) -> None:
    body = {"recipients": ["alice"], "template": "welcome", "vars": VARS}
    refused = await node.client.post("/api/notifications", headers=node.auth("bob"), json=body)
    assert_problem(refused, 403, "forbidden")
    assert (await inbox_of(node.client, node.auth("alice")))["items"] == []
