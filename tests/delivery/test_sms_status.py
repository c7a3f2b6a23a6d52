"""Twilio's status callbacks: a text the carrier delivered is `delivered`, one it could not is
dead-lettered with Twilio's error code, and a report without Twilio's signature changes
nothing."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path

import httpx
import pytest

from herald_server.config import Settings
from herald_server.main import create_app
from herald_server.models import SCOPE_ADMIN, SCOPE_PUBLISH
from tests.conftest import auth, run_server
from tests.delivery.conftest import Node, Providers, call, delivery_settings
from tests.helpers import assert_problem, eventually, free_port

pytestmark = pytest.mark.anyio


@pytest.fixture
async def reachable_node(
    settings: Settings, providers: Providers, tmp_path: Path
) -> AsyncIterator[Node]:
    """A node whose public URL is where it listens, so the provider can call it back."""
    port = free_port()
    configured = replace(
        delivery_settings(settings, providers, tmp_path),
        public_url=f"http://127.0.0.1:{port}",
    )
    app = create_app(configured)
    async with (
        run_server(app, port) as live,
        httpx.AsyncClient(base_url=live.url, timeout=10) as client,
    ):
        yield Node(client, configured, app)


async def text_to(node: Node, users: dict[str, str]) -> str:
    publisher = auth(node.settings, "shop", SCOPE_PUBLISH)
    for user, phone in users.items():
        await call(node.client, "PUT", f"/api/contacts/{user}", publisher, 201, {"phone": phone})
        await call(
            node.client, "PUT", "/api/preferences", auth(node.settings, user), 200,
            {"channels": {"sms": True}},
        )  # fmt: skip
    body = {"recipients": list(users), "title": "Your table is ready"}
    published = await call(node.client, "POST", "/api/notifications", publisher, 202, body)
    return str(published["id"])


async def sms_statuses(node: Node, notification_id: str) -> dict[str, tuple[str, str | None]]:
    admin = auth(node.settings, "ops", SCOPE_ADMIN)
    page = await call(
        node.client,
        "GET",
        f"/api/admin/deliveries?notification={notification_id}&channel=sms",
        admin,
        200,
    )
    return {item["user"]: (item["status"], item["last_error"]) for item in page["items"]}


async def test_the_carriers_answer_reaches_the_delivery(
    reachable_node: Node, providers: Providers
) -> None:
    node, twilio = reachable_node, providers.twilio
    twilio.unreachable.add("+15550000002")

    notification = await text_to(node, {"alice": "+15550000001", "bob": "+15550000002"})

    async def reported() -> bool:
        return await sms_statuses(node, notification) == {
            "alice": ("delivered", None),
            "bob": ("failed", "Twilio reports undelivered (error 30003)"),
        }

    await eventually(reported)
    assert {answer for _, _, answer in twilio.reports} == {204}
    callbacks = {url.partition("?")[0] for url, _, _ in twilio.reports}
    assert callbacks == {f"{node.settings.public_url}/api/sms/status"}
    admin = auth(node.settings, "ops", SCOPE_ADMIN)
    letters = await call(node.client, "GET", "/api/admin/dead-letters", admin, 200)
    assert [item["user"] for item in letters["items"]] == ["bob"]


async def test_a_report_without_twilios_signature_changes_nothing(
    reachable_node: Node, providers: Providers
) -> None:
    node, twilio = reachable_node, providers.twilio
    notification = await text_to(node, {"alice": "+15550000001"})

    async def delivered() -> bool:
        return (await sms_statuses(node, notification)).get("alice") == ("delivered", None)

    await eventually(delivered)
    (sid,) = {form["MessageSid"] for _, form, _ in twilio.reports}
    forged = {"MessageSid": sid, "MessageStatus": "undelivered", "ErrorCode": "30003"}
    url = f"{node.settings.public_url}/api/sms/status"
    elsewhere = twilio.signature("https://evil.example.com/api/sms/status", forged)

    for signature in ("", "bm90IGEgc2lnbmF0dXJl", elsewhere):
        response = await node.client.post(
            "/api/sms/status", data=forged, headers={"X-Twilio-Signature": signature}
        )
        assert_problem(response, 403, "forbidden")
    assert (await sms_statuses(node, notification))["alice"] == ("delivered", None)

    signed = await node.client.post(
        "/api/sms/status",
        data=forged,
        headers={"X-Twilio-Signature": twilio.signature(url, forged)},
    )
    assert signed.status_code == 204
    assert (await sms_statuses(node, notification))["alice"] == ("delivered", None)


async def test_a_node_without_sms_has_no_status_callback(client: httpx.AsyncClient) -> None:
    response = await client.post("/api/sms/status", data={"MessageSid": "SM1"})
    assert_problem(response, 404, "not-found")
