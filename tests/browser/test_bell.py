"""<herald-bell> on the demo page: badge, panel, reads across tabs, and text-only rendering."""

from __future__ import annotations

import pytest
from playwright.async_api import Page

from tests.browser.conftest import (
    Herald,
    OpenPage,
    badge,
    titles,
    wait_for_badge,
    wait_for_titles,
)

pytestmark = pytest.mark.anyio


async def test_the_badge_counts_up_on_publish_and_the_panel_lists_newest_first(
    herald: Herald, open_demo: OpenPage
) -> None:
    await herald.send("alice", "before the page opened")
    page = await open_demo(herald.url)
    await wait_for_badge(page, "1")
    for n in range(3):
        await herald.send("alice", f"live {n}", body=f"body {n}")
        await wait_for_badge(page, str(2 + n))
    await herald.send("bob", "not for alice")

    await page.click("herald-bell .bell")
    assert await page.locator("herald-bell .panel").is_visible()
    await wait_for_titles(page, ["live 2", "live 1", "live 0", "before the page opened"])
    assert await page.locator("herald-bell .item .body").first.text_content() == "body 2"
    assert await page.locator("herald-bell .bell").get_attribute("aria-label") == (
        "Notifications, 4 unread"
    )


async def test_marking_read_in_one_tab_updates_the_other_tab(
    herald: Herald, open_demo: OpenPage
) -> None:
    first = await open_demo(herald.url)
    second = await open_demo(herald.url)
    for n in range(3):
        await herald.send("alice", f"n{n}")
    await wait_for_badge(first, "3")
    await wait_for_badge(second, "3")

    await first.click("herald-bell .bell")
    await first.locator("herald-bell .item", has_text="n1").locator(".open").click()
    await wait_for_badge(second, "2")
    unread = second.locator("herald-bell .item.unread .title")
    assert sorted(await unread.all_text_contents()) == ["n0", "n2"]

    await first.click("herald-bell .read-all")
    await wait_for_badge(second, "")
    await wait_for_badge(first, "")
    assert await second.locator("herald-bell .item.unread").count() == 0


async def test_delete_and_mark_unread_reach_every_tab(herald: Herald, open_demo: OpenPage) -> None:
    first = await open_demo(herald.url)
    second = await open_demo(herald.url)
    await herald.send("alice", "keep")
    await herald.send("alice", "drop")
    await wait_for_titles(second, ["drop", "keep"])

    await first.click("herald-bell .bell")
    await first.locator("herald-bell .item", has_text="drop").locator(".delete").click()
    await wait_for_titles(second, ["keep"])
    await wait_for_badge(second, "1")

    toggle = first.locator("herald-bell .item", has_text="keep").locator(".toggle")
    await toggle.click()
    await wait_for_badge(second, "")
    assert await toggle.get_attribute("aria-label") == "Mark unread"
    await toggle.click()
    await wait_for_badge(second, "1")


async def test_html_in_a_notification_is_shown_as_text_and_never_runs(
    herald: Herald, open_demo: OpenPage
) -> None:
    """If the widget put titles into innerHTML, the <img> would exist and its onerror would
    open an alert, which the page_errors fixture turns into a failure."""
    hostile = "<img src=x onerror=alert(1)>"
    page = await open_demo(herald.url)
    await herald.send("alice", hostile, body="<script>alert(2)</script><b>bold</b>")
    await wait_for_titles(page, [hostile])
    await page.click("herald-bell .bell")
    assert await page.locator("herald-bell .item .body").text_content() == (
        "<script>alert(2)</script><b>bold</b>"
    )
    assert await page.locator("herald-bell .item img").count() == 0
    assert await page.locator("herald-bell .item b").count() == 0
    await page.wait_for_timeout(300)  # an onerror handler would have fired by now


async def test_keyboard_opens_walks_and_closes_the_panel(
    herald: Herald, open_demo: OpenPage
) -> None:
    page = await open_demo(herald.url)
    await herald.send("alice", "first")
    await herald.send("alice", "second")
    await wait_for_titles(page, ["second", "first"])

    await page.locator("herald-bell .bell").focus()
    await page.keyboard.press("Enter")
    assert await page.locator("herald-bell .bell").get_attribute("aria-expanded") == "true"
    await page.keyboard.press("ArrowDown")
    await page.keyboard.press("ArrowDown")
    focused = await _focused_title(page)
    assert focused == "first"
    await page.keyboard.press("Enter")
    await wait_for_badge(page, "1")
    await page.keyboard.press("Escape")
    assert await page.locator("herald-bell .panel").is_hidden()
    assert await page.evaluate(
        "document.querySelector('herald-bell').shadowRoot.activeElement.className"
    ) == ("bell")


async def _focused_title(page: Page) -> str:
    title: str = await page.evaluate(
        """() => document.querySelector('herald-bell').shadowRoot.activeElement
                   .querySelector('.title').textContent"""
    )
    return title


async def test_infinite_scroll_pages_back_with_before(herald: Herald, open_demo: OpenPage) -> None:
    for n in range(45):
        await herald.send("alice", f"n{n:02}")
    page = await open_demo(herald.url)
    await wait_for_badge(page, "45")
    assert len(await titles(page)) == 20
    await page.click("herald-bell .bell")
    for _ in range(10):
        if len(await titles(page)) == 45:
            break
        await page.locator("herald-bell .sentinel").scroll_into_view_if_needed()
        await page.wait_for_timeout(200)
    assert await titles(page) == [f"n{n:02}" for n in reversed(range(45))]
    assert await badge(page) == "45"


async def test_a_bell_moved_in_the_page_reconnects_and_keeps_one_stream(
    herald: Herald, open_demo: OpenPage
) -> None:
    page = await open_demo(herald.url)
    await herald.send("alice", "before the move")
    await wait_for_titles(page, ["before the move"])
    await page.evaluate("document.body.append(document.querySelector('herald-bell'))")
    await page.wait_for_selector("herald-bell[state=live]")
    await herald.send("alice", "after the move")
    await wait_for_titles(page, ["after the move", "before the move"])
    await wait_for_badge(page, "2")
    await herald.wait_for_connections(1)
