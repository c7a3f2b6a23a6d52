"""herald.js's connection: resume across a restart, fallbacks, one stream for many tabs, and
stream-token renewal, each checked by what the page finally shows (every notification, once)."""

from __future__ import annotations

import re
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest
from playwright.async_api import BrowserContext, Page, Route, WebSocketRoute
from sse_starlette.sse import AppStatus

from herald_server.config import Settings
from herald_server.main import create_app
from tests.browser.conftest import (
    Herald,
    OpenPage,
    PageErrors,
    wait_for_badge,
    wait_for_titles,
)
from tests.conftest import run_server

pytestmark = pytest.mark.anyio

README = Path(__file__).resolve().parents[2] / "README.md"


async def bell_attribute(page: Page, name: str) -> str | None:
    return await page.locator("herald-bell").get_attribute(name)


async def test_a_restarted_server_misses_nothing_and_repeats_nothing(
    settings: Settings, open_demo: OpenPage
) -> None:
    """Notifications sent through another node while the page's server is down show up once
    it is back: the client resumes from its cursor. Without the resume they would be lost."""
    async with httpx.AsyncClient(timeout=10) as http:
        async with run_server(create_app(settings)) as live:
            port = urlsplit(live.url).port
            assert port is not None
            page = await open_demo(live.url)
            before = Herald(settings, live, http)
            await before.send("alice", "a")
            await before.send("alice", "b")
            await wait_for_titles(page, ["b", "a"])
        # sse-starlette flags every stream to end once a server shuts down (a process-global flag).
        AppStatus.should_exit = False
        await page.wait_for_selector("herald-bell[state=offline]")

        async with run_server(create_app(settings)) as other:
            meanwhile = Herald(settings, other, http)
            for title in ("c", "d", "e"):
                await meanwhile.send("alice", title)
        AppStatus.should_exit = False

        async with run_server(create_app(settings), port) as restarted:
            await page.wait_for_selector("herald-bell[state=live]")
            await wait_for_titles(page, ["e", "d", "c", "b", "a"])
            await Herald(settings, restarted, http).send("alice", "f")
            await wait_for_titles(page, ["f", "e", "d", "c", "b", "a"])
            await wait_for_badge(page, "6")


async def test_blocked_eventsource_falls_back_to_the_websocket(
    herald: Herald, context: BrowserContext, open_demo: OpenPage
) -> None:
    blocked: list[str] = []

    async def abort(route: Route) -> None:
        blocked.append(route.request.url)
        await route.abort()

    await context.route(lambda url: urlsplit(url).path == "/api/stream", abort)
    page = await open_demo(herald.url)
    assert await bell_attribute(page, "transport") == "ws"
    assert len(blocked) >= 2
    await herald.send("alice", "over the websocket")
    await wait_for_titles(page, ["over the websocket"])
    await wait_for_badge(page, "1")


@pytest.fixture
def open_blank(herald: Herald, context: BrowserContext, page_errors: PageErrors) -> OpenPage:
    """A page of the test's own HTML at Herald's origin: everything else it loads is real."""

    async def open_page(html: str) -> Page:
        async def serve(route: Route) -> None:
            await route.fulfill(body=html, content_type="text/html")

        await context.route(f"{herald.url}/blank.html", serve)
        page = page_errors.watch(await context.new_page())
        await page.goto(f"{herald.url}/blank.html")
        return page

    return open_page


async def test_with_eventsource_and_websocket_blocked_it_polls(
    herald: Herald, context: BrowserContext, open_blank: OpenPage
) -> None:
    async def close(socket: WebSocketRoute) -> None:
        await socket.close(code=1011, reason="blocked by the test")

    await context.route(lambda url: urlsplit(url).path == "/api/stream", lambda r: r.abort())
    await context.route_web_socket(re.compile(r".*/api/ws.*"), close)
    polls: list[str] = []
    context.on(
        "request",
        lambda request: polls.append(request.url) if "after=" in request.url else None,
    )
    page = await open_blank(
        '<script type="module" src="/static/herald.js"></script>'
        '<herald-bell token-url="/api/dev/login?sub=alice" poll-interval="0.3"></herald-bell>'
    )
    await page.wait_for_selector("herald-bell[state=polling]")
    await herald.send("alice", "polled 1")
    await herald.send("alice", "polled 2")
    await wait_for_titles(page, ["polled 2", "polled 1"])
    await wait_for_badge(page, "2")
    assert polls, "the client never polled with after="


async def test_eight_tabs_hold_one_stream_and_a_new_leader_resumes_without_loss(
    herald: Herald, open_demo: OpenPage
) -> None:
    pages = [await open_demo(herald.url) for _ in range(8)]
    await herald.wait_for_connections(1)
    await herald.send("alice", "to all eight")
    for page in pages:
        await wait_for_titles(page, ["to all eight"])

    leaders = [page for page in pages if await _leading(page)]
    assert len(leaders) == 1
    await leaders[0].close()
    others = [page for page in pages if page is not leaders[0]]
    sent = [f"after {n}" for n in range(5)]
    for title in sent:
        await herald.send("alice", title)

    for page in others:
        await wait_for_titles(page, [*reversed(sent), "to all eight"])
        await wait_for_badge(page, "6")
    assert sum([await _leading(page) for page in others]) == 1
    await herald.wait_for_connections(1)


async def _leading(page: Page) -> bool:
    leading: bool = await page.evaluate("document.querySelector('herald-bell').client.leading")
    return leading


async def test_the_readme_snippet_works_as_written(herald: Herald, open_blank: OpenPage) -> None:
    snippet = re.search(r"<!-- snippet -->\n```html\n(.*?)```", README.read_text(), re.S)
    assert snippet is not None, "README has no <!-- snippet --> block"
    page = await open_blank(f"<!doctype html><title>blank</title><body>{snippet[1]}</body>")
    await page.wait_for_selector("herald-bell[state=live]")
    await herald.send("alice", "from the snippet")
    await wait_for_titles(page, ["from the snippet"])
    await wait_for_badge(page, "1")
