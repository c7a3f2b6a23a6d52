"""Stream tokens are short-lived; herald.js renews them before they expire, losing nothing."""

from __future__ import annotations

from dataclasses import replace
from urllib.parse import urlsplit

import anyio
import pytest
from playwright.async_api import BrowserContext, Request

from herald_server.config import Settings
from tests.browser.conftest import Herald, OpenPage, wait_for_titles

pytestmark = pytest.mark.anyio


@pytest.fixture
def browser_settings(browser_settings: Settings) -> Settings:
    """Stream tokens that live 4 s and are renewed 2 s before they expire."""
    return replace(browser_settings, stream_token_ttl=4, stream_token_notice=2)


async def test_the_stream_token_is_renewed_before_it_expires_without_loss(
    herald: Herald, context: BrowserContext, open_demo: OpenPage
) -> None:
    renewals: list[Request] = []
    context.on(
        "request",
        lambda request: (
            renewals.append(request) if urlsplit(request.url).path == "/api/stream/token" else None
        ),
    )
    page = await open_demo(herald.url)
    sent = []
    for n in range(20):
        sent.append(f"n{n:02}")
        await herald.send("alice", sent[-1])
        await anyio.sleep(0.4)
    await wait_for_titles(page, list(reversed(sent)))
    assert len(renewals) >= 3
    assert await page.locator("herald-bell").get_attribute("state") == "live"
