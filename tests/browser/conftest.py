"""Browser tests: herald.js and <herald-bell> in Debian's Chromium, driven by Playwright.

Chromium is the system's (`apt-get install chromium`), never a downloaded one. Without it the
tests skip, unless `--require-backends` (CI) makes a missing browser a failure.
"""

from __future__ import annotations

import shutil
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

import anyio
import httpx
import pytest
from playwright.async_api import Browser, BrowserContext, Page, async_playwright
from playwright.async_api import TimeoutError as PlaywrightTimeout

from herald_server.config import Settings
from herald_server.main import create_app
from herald_server.models import SCOPE_ADMIN, SCOPE_PUBLISH
from tests.conftest import SECRET, LiveServer, auth, run_server

CHROMIUM = "/usr/bin/chromium"
# Flags from the machine notes: without the networking ones Chromium keeps calling home and
# this sandbox refuses it, noisily.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
SCREENSHOTS = Path(__file__).resolve().parents[2] / "build" / "screenshots"
# How long to let leadership or a connection settle before counting streams on the server.
SETTLE_SECONDS = 10
# Playwright's own wait for a condition in the page; each test's waits are bounded by it.
WAIT_MS = 15_000


@pytest.fixture(scope="session")
async def browser(request: pytest.FixtureRequest) -> AsyncIterator[Browser]:
    if shutil.which(CHROMIUM) is None:
        message = f"{CHROMIUM} is missing: apt-get install chromium"
        if request.config.getoption("--require-backends"):
            pytest.fail(message)
        pytest.skip(message)
    async with async_playwright() as playwright:
        launched = await playwright.chromium.launch(
            executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS
        )
        yield launched
        await launched.close()


@dataclass
class PageErrors:
    """Uncaught exceptions and dialogs (an `alert` means injected script ran): a test that
    saw any fails, whatever it asserted."""

    errors: list[str] = field(default_factory=list)
    dialogs: list[str] = field(default_factory=list)

    def watch(self, page: Page) -> Page:
        page.on("pageerror", lambda error: self.errors.append(str(error)))

        async def on_dialog(dialog: object) -> None:
            self.dialogs.append(getattr(dialog, "message", "?"))
            await dialog.dismiss()  # type: ignore[attr-defined]

        page.on("dialog", on_dialog)
        return page


@dataclass
class Herald:
    """One Herald node for the browser, and what a test does to it from outside."""

    settings: Settings
    live: LiveServer
    http: httpx.AsyncClient

    @property
    def url(self) -> str:
        return self.live.url

    async def send(self, to: str, title: str, **fields: object) -> dict[str, object]:
        headers = auth(self.settings, "billing-service", SCOPE_PUBLISH)
        body = {"recipients": [to], "title": title, **fields}
        response = await self.http.post(f"{self.url}/api/notifications", json=body, headers=headers)
        assert response.status_code == 202, response.text
        result: dict[str, object] = response.json()
        return result

    async def connections(self) -> int:
        headers = auth(self.settings, "ops", SCOPE_ADMIN)
        response = await self.http.get(f"{self.url}/api/admin/stats", headers=headers)
        assert response.status_code == 200, response.text
        count: int = response.json()["connections"]
        return count

    async def wait_for_connections(self, expected: int) -> None:
        """Streams open on the server settle to `expected` (a closed tab's may linger)."""
        with anyio.move_on_after(SETTLE_SECONDS):
            while await self.connections() != expected:  # noqa: ASYNC110 - polls the server
                await anyio.sleep(0.1)
        assert await self.connections() == expected


@pytest.fixture
def browser_settings(tmp_path: Path) -> Settings:
    """The embedded default, as `make run` serves it."""
    return Settings(
        database_url=f"sqlite:///{tmp_path}/herald.db",
        jwt_secret=SECRET,
        dev_secret_file=str(tmp_path / "dev-secret"),
        scheduler_interval=0.05,
    )


@pytest.fixture
async def herald(browser_settings: Settings) -> AsyncIterator[Herald]:
    async with (
        run_server(create_app(browser_settings)) as live,
        httpx.AsyncClient(timeout=10) as http,
    ):
        yield Herald(browser_settings, live, http)


@pytest.fixture
async def page_errors() -> AsyncIterator[PageErrors]:
    seen = PageErrors()
    yield seen
    assert seen.errors == [], f"uncaught errors in the page: {seen.errors}"
    assert seen.dialogs == [], f"the page opened dialogs: {seen.dialogs}"


@pytest.fixture
async def context(browser: Browser) -> AsyncIterator[BrowserContext]:
    opened = await browser.new_context(viewport={"width": 1280, "height": 800})
    opened.set_default_timeout(WAIT_MS)
    yield opened
    await opened.close()


OpenPage = Callable[..., Awaitable[Page]]


@pytest.fixture
def open_demo(context: BrowserContext, page_errors: PageErrors) -> OpenPage:
    """A new tab on the demo page, signed in as `user`, its bell live."""

    async def open_page(base_url: str, user: str = "alice", *, live: bool = True) -> Page:
        page = page_errors.watch(await context.new_page())
        await page.add_init_script(f"localStorage.setItem('herald-demo-user', {user!r})")
        await page.goto(base_url + "/")
        if live:
            await page.wait_for_selector("herald-bell[state=live]")
        return page

    return open_page


async def badge(page: Page) -> str:
    """The badge's text, or "" while it is hidden (nothing unread)."""
    locator = page.locator("herald-bell .badge")
    return "" if await locator.is_hidden() else (await locator.text_content() or "")


async def titles(page: Page) -> list[str]:
    return await page.locator("herald-bell .item .title").all_text_contents()


async def wait_for_badge(page: Page, expected: str) -> None:
    try:
        await page.wait_for_function(
            """expected => {
                const root = document.querySelector('herald-bell').shadowRoot;
                const badge = root.querySelector('.badge');
                return (badge.hidden ? '' : badge.textContent) === expected;
            }""",
            arg=expected,
        )
    except PlaywrightTimeout:
        assert await badge(page) == expected


async def wait_for_titles(page: Page, expected: list[str]) -> None:
    """The panel's titles, newest first, are exactly these (the panel need not be open)."""
    try:
        await page.wait_for_function(
            """expected => {
                const root = document.querySelector('herald-bell').shadowRoot;
                const shown = [...root.querySelectorAll('.item .title')].map(e => e.textContent);
                return JSON.stringify(shown) === JSON.stringify(expected);
            }""",
            arg=expected,
        )
    except PlaywrightTimeout:
        assert await titles(page) == expected
