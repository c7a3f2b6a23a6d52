"""GET /docs: the API reference renders this node's /openapi.json with the files Herald serves
itself, and asks nothing of any other host (an air-gapped install shows it the same)."""

from __future__ import annotations

from urllib.parse import urlsplit

import pytest
from playwright.async_api import BrowserContext, Route

from tests.browser.conftest import SCREENSHOTS, Herald, PageErrors

pytestmark = pytest.mark.anyio

LOOPBACK = "127.0.0.1"


async def test_the_api_reference_renders_the_operations_without_leaving_the_node(
    herald: Herald, context: BrowserContext, page_errors: PageErrors
) -> None:
    asked_here: list[str] = []
    asked_elsewhere: list[str] = []

    async def only_loopback(route: Route) -> None:
        url = route.request.url
        if urlsplit(url).hostname == LOOPBACK:
            asked_here.append(urlsplit(url).path)
            await route.continue_()
        else:
            asked_elsewhere.append(url)
            await route.abort()

    await context.route("**/*", only_loopback)
    page = page_errors.watch(await context.new_page())
    await page.goto(herald.url + "/docs")
    publish = page.locator(".opblock", has_text="publishNotification")
    await publish.wait_for()
    assert "Publish a notification" in (await publish.text_content() or "")
    assert await page.locator(".opblock", has_text="listNotifications").count() == 1
    assert "/openapi.json" in asked_here
    assert asked_elsewhere == []
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    await page.screenshot(path=SCREENSHOTS / "api-reference.png")
