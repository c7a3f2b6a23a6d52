"""The admin page, the phone-width layout, system notifications, and the screenshots of both
pages (saved under build/screenshots/ as artifacts)."""

from __future__ import annotations

import pytest
from playwright.async_api import BrowserContext, Page, ViewportSize

from tests.browser.conftest import (
    SCREENSHOTS,
    Herald,
    OpenPage,
    PageErrors,
    wait_for_badge,
    wait_for_titles,
)

pytestmark = pytest.mark.anyio

PHONE: ViewportSize = {"width": 390, "height": 844}


async def open_admin(context: BrowserContext, page_errors: PageErrors, url: str) -> Page:
    page = page_errors.watch(await context.new_page())
    await page.goto(url + "/admin")
    await page.click("#dev-login")
    await page.wait_for_selector("#signed-in:not([hidden])")
    return page


async def test_the_admin_page_shows_connections_and_recent_and_broadcasts(
    herald: Herald, context: BrowserContext, page_errors: PageErrors, open_demo: OpenPage
) -> None:
    demo = await open_demo(herald.url)
    await herald.send("alice", "<b>an order</b> shipped")
    await wait_for_titles(demo, ["<b>an order</b> shipped"])

    admin = await open_admin(context, page_errors, herald.url)
    connections = admin.locator("[data-figure=connections] strong")
    assert await connections.text_content() == "1"
    row = admin.locator("#recent tr").first
    assert await row.locator("td.title").text_content() == "<b>an order</b> shipped"
    assert await row.locator("b").count() == 0

    await admin.fill("#broadcast [name=title]", "Maintenance at noon")
    await admin.click("#broadcast button[type=submit]")
    await admin.wait_for_selector("#broadcast-result:has-text('Sent to')")
    await wait_for_titles(demo, ["Maintenance at noon", "<b>an order</b> shipped"])
    await admin.wait_for_selector("#recent tr:first-child td.title:has-text('Maintenance')")


async def test_the_admin_page_refuses_a_token_without_the_admin_scope(
    herald: Herald, context: BrowserContext, page_errors: PageErrors
) -> None:
    response = await herald.http.post(f"{herald.url}/api/dev/login?sub=alice")
    page = page_errors.watch(await context.new_page())
    await page.goto(herald.url + "/admin")
    await page.fill("#token-form [name=token]", response.json()["token"])
    await page.click("#token-form button")
    await page.wait_for_selector("#sign-in-problem:not([hidden])")
    assert "admin" in (await page.locator("#sign-in-problem").text_content() or "")
    assert await page.locator("#signed-in").is_hidden()


async def test_at_phone_width_the_panel_fits_the_screen(
    herald: Herald, context: BrowserContext, open_demo: OpenPage
) -> None:
    page = await open_demo(herald.url)
    await page.set_viewport_size(PHONE)
    await herald.send("alice", "A long title that would overflow a narrow screen " * 3)
    await wait_for_badge(page, "1")
    await page.click("herald-bell .bell")
    box = await page.locator("herald-bell .panel").bounding_box()
    assert box is not None
    assert box["x"] >= 0
    assert box["x"] + box["width"] <= PHONE["width"]


async def test_an_urgent_notification_shows_a_system_notification_while_hidden(
    herald: Herald, context: BrowserContext, open_demo: OpenPage
) -> None:
    """Headless Chromium shows no system notifications, so the page records each one it
    constructs; hiding the tab is emulated the same way, in the page."""
    await context.grant_permissions(["notifications"], origin=herald.url)
    await context.add_init_script(
        """
        window.__shown = [];
        const Real = window.Notification;
        window.Notification = class extends Real {
          constructor(title, options) {
            super(title, options);
            window.__shown.push([title, options.tag]);
          }
        };
        Object.defineProperty(document, 'visibilityState', {
          get: () => window.__visibility || 'visible',
        });
        """
    )
    page = await open_demo(herald.url)
    await herald.send("alice", "urgent while visible", priority="urgent")
    await wait_for_badge(page, "1")
    await page.evaluate("window.__visibility = 'hidden'")
    await herald.send("alice", "routine", priority="normal")
    await herald.send("alice", "server on fire", priority="urgent")
    await wait_for_badge(page, "3")
    shown = await page.evaluate("window.__shown")
    assert [title for title, _ in shown] == ["server on fire"]
    assert shown[0][1].startswith("herald-")


async def test_screenshots_of_the_demo_and_admin_pages(
    herald: Herald, context: BrowserContext, page_errors: PageErrors, open_demo: OpenPage
) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    demo = await open_demo(herald.url)
    for title, body, priority in [
        ("Your invoice #1042 is ready", "€120.00, due 1 December", "normal"),
        ("Deploy finished", "api-server 2.4.1 is live on all nodes", "low"),
        ("Payment failed", "The card ending 4242 was declined", "high"),
    ]:
        await herald.send("alice", title, body=body, priority=priority)
    await wait_for_badge(demo, "3")
    await demo.click("herald-bell .bell")
    await demo.locator("herald-bell .item", has_text="Deploy").locator(".toggle").click()
    await wait_for_badge(demo, "2")
    await demo.screenshot(path=SCREENSHOTS / "demo-desktop.png")
    await demo.set_viewport_size(PHONE)
    await demo.screenshot(path=SCREENSHOTS / "demo-phone.png")

    admin = await open_admin(context, page_errors, herald.url)
    await admin.screenshot(path=SCREENSHOTS / "admin-desktop.png", full_page=True)
    await admin.set_viewport_size(PHONE)
    await admin.screenshot(path=SCREENSHOTS / "admin-phone.png", full_page=True)
    for name in ("demo-desktop", "demo-phone", "admin-desktop", "admin-phone"):
        assert (SCREENSHOTS / f"{name}.png").stat().st_size > 10_000


async def test_the_page_themes_the_bell_with_custom_properties(
    herald: Herald, open_demo: OpenPage
) -> None:
    page = await open_demo(herald.url)
    await page.add_style_tag(
        content="herald-bell { --herald-accent: rgb(1, 2, 3); --herald-badge-bg: rgb(4, 5, 6); }"
    )
    await herald.send("alice", "themed")
    await wait_for_badge(page, "1")
    color = await page.locator("herald-bell .read-all").evaluate("e => getComputedStyle(e).color")
    badge = await page.locator("herald-bell .badge").evaluate(
        "e => getComputedStyle(e).backgroundColor"
    )
    assert (color, badge) == ("rgb(1, 2, 3)", "rgb(4, 5, 6)")
