"""In Chromium: signing in and out, the Audiences page, its filters, the keyboard, axe-core."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

from playwright.sync_api import Page, expect

from .conftest import DemoServer, assert_accessible, at_desktop_width, at_phone_width


def test_a_wrong_key_is_refused_beside_the_field(anonymous_page: Page) -> None:
    page = anonymous_page
    page.goto("/login")
    assert_accessible(page)
    page.get_by_label("API key").fill("as_not-a-key-of-anyone")
    page.get_by_test_id("sign-in").click()
    error = page.locator("#login-error")
    expect(error).to_have_text(re.compile("not valid"))
    field = page.get_by_label("API key")
    expect(field).to_have_attribute("aria-invalid", "true")
    expect(field).to_have_attribute("aria-describedby", "login-error")
    expect(page).to_have_url(re.compile(r"/login"))
    assert_accessible(page)


def test_the_audiences_page_lists_the_four_demo_audiences(
    page: Page, screenshot: Callable[[Page, str], Path]
) -> None:
    rows = page.get_by_test_id("audience-row")
    expect(rows).to_have_count(4)
    for platform in ("Meta", "Google", "TikTok", "Snapchat"):
        expect(rows.filter(has_text=platform)).to_have_count(1)
    expect(page.get_by_test_id("summary-audiences")).to_have_text("4")
    assert_accessible(page)
    screenshot(page, "audiences")
    at_phone_width(page)
    screenshot(page, "audiences-390")
    at_desktop_width(page)


def test_the_platform_filter_swaps_the_table_in_place_and_keeps_the_url(page: Page) -> None:
    page.evaluate("window.notReloaded = true")  # gone if the page were loaded again
    page.get_by_test_id("filter-platform").select_option("meta")
    rows = page.get_by_test_id("audience-row")
    expect(rows).to_have_count(1)
    expect(rows).to_have_attribute("data-platform", "meta")
    expect(page).to_have_url(re.compile(r"/audiences\?platform=meta"))
    assert page.evaluate("window.notReloaded") is True
    page.get_by_test_id("filter-platform").select_option("")
    expect(rows).to_have_count(4)
    assert_accessible(page)
    page.reload()  # the URL alone shows the same filtered table
    page.goto("/audiences?platform=snapchat")
    expect(rows).to_have_count(1)
    expect(page.get_by_test_id("filter-platform")).to_have_value("snapchat")


def test_the_keyboard_reaches_the_skip_link_then_the_navigation(page: Page) -> None:
    page.keyboard.press("Tab")
    expect(page.get_by_role("link", name="Skip to content")).to_be_focused()
    reached = []
    for _ in range(12):  # the brand, the page links, then Sign out
        page.keyboard.press("Tab")
        reached.append(page.evaluate("document.activeElement.textContent.trim()"))
        if reached[-1] == "Sign out":
            break
    assert reached[0] == "Audience Sync", reached
    links = ["Audiences", "Segments", "Connections", "Settings", "Sign out"]
    assert [text for text in reached if text in links] == links, reached
    expect(page.get_by_test_id("sign-out")).to_be_focused()
    page.goto("/audiences")
    page.keyboard.press("Tab")
    page.keyboard.press("Enter")  # the skip link moves focus to the page's content
    expect(page.locator("main")).to_be_focused()


def test_signing_out_ends_the_session(page: Page, demo_server: DemoServer) -> None:
    page.get_by_test_id("sign-out").click()
    expect(page).to_have_url(re.compile(r"/login$"))
    page.goto("/audiences")
    expect(page).to_have_url(re.compile(r"/login\?next=%2Faudiences$"))
    expect(page.get_by_test_id("sign-in")).to_be_visible()
