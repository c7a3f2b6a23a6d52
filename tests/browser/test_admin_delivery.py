"""The admin page's delivery sections in Chromium: deliveries, the dead-letter queue with its
retry button, and the template editor with its preview."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import replace

import httpx
import pytest
from playwright.async_api import BrowserContext

from herald_server.config import Settings
from herald_server.main import create_app
from tests.browser.conftest import Herald, PageErrors
from tests.browser.test_pages import open_admin
from tests.conftest import auth, run_server
from tests.helpers import eventually
from tests.servers.webhook import WebhookReceiver, webhook_receiver

pytestmark = pytest.mark.anyio

TEMPLATE = {
    "default_locale": "en",
    "locales": {"en": {"in_app": {"title": "Welcome, {{ name }}", "body": "Glad you came"}}},
}


@pytest.fixture
async def receiver() -> AsyncIterator[WebhookReceiver]:
    async with webhook_receiver() as started:
        yield started


@pytest.fixture
async def delivering(browser_settings: Settings) -> AsyncIterator[Herald]:
    settings = replace(
        browser_settings,
        allow_private_targets=True,
        delivery_backoff=(0.1,),
        dispatch_interval=0.05,
    )
    async with (
        run_server(create_app(settings)) as live,
        httpx.AsyncClient(timeout=10) as http,
    ):
        yield Herald(settings, live, http)


async def test_a_dead_letter_is_retried_from_the_admin_page(
    delivering: Herald,
    receiver: WebhookReceiver,
    context: BrowserContext,
    page_errors: PageErrors,
) -> None:
    herald = delivering
    alice = auth(herald.settings, "alice")
    hook = await herald.http.post(
        f"{herald.url}/api/webhooks", json={"url": receiver.url("alice")}, headers=alice
    )
    receiver.set_secret("alice", hook.json()["secret"])
    receiver.fail_always("alice", 500)
    await herald.send("alice", "Invoice ready")

    admin = await open_admin(context, page_errors, herald.url)
    dead_row = admin.locator("#dead-letters tr")

    async def dead_lettered() -> bool:
        await admin.click("#refresh-deliveries")
        return await dead_row.count() == 1

    await eventually(dead_lettered, interval=0.2)
    assert await dead_row.locator("td").nth(2).text_content() == "webhook"
    assert "gave up after 2 tries" in (await dead_row.locator("td").nth(4).text_content() or "")

    receiver.recover("alice")
    await dead_row.locator("button").click()
    await admin.wait_for_function("document.querySelectorAll('#dead-letters tr').length === 0")
    await receiver.wait_for(1)
    await admin.select_option("#delivery-status", "delivered")
    await admin.wait_for_selector("#deliveries tr td.status:has-text('delivered')")


async def test_a_template_is_written_and_previewed_on_the_admin_page(
    herald: Herald, context: BrowserContext, page_errors: PageErrors
) -> None:
    admin = await open_admin(context, page_errors, herald.url)
    await admin.fill("#template-name", "welcome")
    await admin.fill("#template-document", json.dumps(TEMPLATE))
    await admin.click("#template-save")
    await admin.wait_for_selector("#template-result:has-text('Saved welcome, version 1')")
    assert await admin.locator("#template-key").input_value() == "welcome"

    await admin.fill("#template-vars", json.dumps({"name": "<Ada>"}))
    await admin.click("#template-preview")
    await admin.wait_for_selector("#template-rendering:not([hidden])")
    rendering = json.loads(await admin.locator("#template-rendering").text_content() or "{}")
    assert rendering["title"] == "Welcome, <Ada>"

    await admin.fill("#template-vars", "{}")
    await admin.click("#template-preview")
    await admin.wait_for_selector("#template-result:has-text('Cannot render')")
    assert "name" in (await admin.locator("#template-result").text_content() or "")
