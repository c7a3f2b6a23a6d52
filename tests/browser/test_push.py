"""Web Push in Chromium: Herald's service worker shows what Herald's push channel sent.

The chain is real up to the browser's push service: Herald encrypts for a subscription, the
local push service (tests/servers/push.py) verifies VAPID and decrypts, and the plaintext is
handed to Chromium's service worker through the DevTools protocol, as a push service would
hand it over. Subscribing itself needs Google's push service, which this machine cannot reach,
so that step is tested for its failure: the page says why and Herald stores nothing.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.async_api import BrowserContext, Page

from herald_server.config import Settings, with_dev_vapid_key
from herald_server.main import create_app
from tests.browser.conftest import Herald, OpenPage
from tests.conftest import auth, run_server
from tests.servers.push import PushService, push_service

pytestmark = pytest.mark.anyio

SERVICE_WORKER = "/static/herald-sw.js"


@pytest.fixture
async def pushes() -> AsyncIterator[PushService]:
    async with push_service() as service:
        yield service


@pytest.fixture
async def push_herald(
    browser_settings: Settings, tmp_path: Path, pushes: PushService
) -> AsyncIterator[Herald]:
    settings = with_dev_vapid_key(
        replace(
            browser_settings,
            dev_vapid_file=str(tmp_path / "vapid"),
            allow_private_targets=True,
            dispatch_interval=0.05,
        )
    )
    async with (
        run_server(create_app(settings)) as live,
        httpx.AsyncClient(timeout=10) as http,
    ):
        yield Herald(settings, live, http)


async def register_service_worker(page: Page) -> None:
    await page.evaluate(
        """async (script) => {
            const { activated } = await import("/static/herald/client.js");
            await activated(await navigator.serviceWorker.register(script));
        }""",
        SERVICE_WORKER,
    )


async def deliver_to_service_worker(
    context: BrowserContext, page: Page, origin: str, payload: dict[str, Any]
) -> None:
    """Hand a decrypted push message to the page's service worker, as Chromium's push
    service client would."""
    cdp = await context.new_cdp_session(page)
    registrations: list[dict[str, Any]] = []
    cdp.on(
        "ServiceWorker.workerRegistrationUpdated",
        lambda event: registrations.extend(event["registrations"]),
    )
    await cdp.send("ServiceWorker.enable")
    for _ in range(50):
        live = [entry for entry in registrations if not entry.get("isDeleted")]
        if live:
            break
        await page.wait_for_timeout(100)
    (registration,) = [entry for entry in registrations if not entry.get("isDeleted")]
    await cdp.send(
        "ServiceWorker.deliverPushMessage",
        {
            "origin": origin,
            "registrationId": registration["registrationId"],
            "data": json.dumps(payload),
        },
    )


async def shown_notifications(page: Page) -> list[dict[str, str]]:
    found: list[dict[str, str]] = await page.evaluate(
        """async (script) => {
            const registration = await navigator.serviceWorker.getRegistration(script);
            const shown = await registration.getNotifications();
            return shown.map((n) => ({ title: n.title, body: n.body, tag: n.tag }));
        }""",
        SERVICE_WORKER,
    )
    return found


async def test_the_service_worker_shows_what_herald_pushed(
    push_herald: Herald, pushes: PushService, context: BrowserContext, open_demo: OpenPage
) -> None:
    herald = push_herald
    page = await open_demo(herald.url)
    await context.grant_permissions(["notifications"], origin=herald.url)
    await register_service_worker(page)
    alice = auth(herald.settings, "alice")
    channels = (await herald.http.get(f"{herald.url}/api/channels", headers=alice)).json()
    subscription = pushes.subscribe(channels["push_public_key"])
    response = await herald.http.post(
        f"{herald.url}/api/push-subscriptions", json=subscription, headers=alice
    )
    assert response.status_code == 201, response.text

    sent = await herald.send("alice", "Your parcel is here", body="At the front desk")
    (push,) = await pushes.wait_for(1)
    await deliver_to_service_worker(context, page, herald.url, push.payload)

    await page.wait_for_function(
        """async (script) => {
            const registration = await navigator.serviceWorker.getRegistration(script);
            return (await registration.getNotifications()).length > 0;
        }""",
        arg=SERVICE_WORKER,
    )
    assert await shown_notifications(page) == [
        {"title": "Your parcel is here", "body": "At the front desk", "tag": f"herald-{sent['id']}"}
    ]


async def test_enabling_push_without_a_reachable_push_service_says_so_and_stores_nothing(
    push_herald: Herald, context: BrowserContext, open_demo: OpenPage
) -> None:
    herald = push_herald
    page = await open_demo(herald.url)
    await context.grant_permissions(["notifications"], origin=herald.url)

    await page.click("#enable-push")
    await page.wait_for_selector("#push-state:has-text('Web Push is off')")

    state = await page.locator("#push-state").text_content()
    assert state is not None
    assert "Registration failed" in state
    alice = auth(herald.settings, "alice")
    stored = await herald.http.get(f"{herald.url}/api/push-subscriptions", headers=alice)
    assert stored.json()["items"] == []


async def test_a_herald_without_web_push_says_so_before_asking_anything(
    herald: Herald, context: BrowserContext, open_demo: OpenPage
) -> None:
    page = await open_demo(herald.url)
    await page.click("#enable-push")
    await page.wait_for_selector("#push-state:has-text('not configured')")
