"""In Chromium, on `serve --demo`: the marketer's whole story (issue 20), one step a test.

Sign in, look at the audiences, open one and read its charts, dry-run then sync and watch the job
reach completion, open a failed job (a fault injected in the sandbox) and read why, create an
audience, export a segment and download it, revoke a key, sign out — with axe-core on every page
at 1280 and 390 px, and the README's screenshots. The steps run in this order on one server;
each starts from a fresh signed-in tab.

Test ids follow the issue (`chart-size`, `chart-match-rate`, `dry-run`, `sync-now`,
`confirm-sync`, `job-status`) and the dashboard's own (docs/dashboard.md).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
from playwright.sync_api import Browser, Locator, Page, expect

from .conftest import DESKTOP, DemoServer, assert_accessible, sign_in, visit

AUDIENCE_URL = re.compile(r"/audiences/[0-9a-f-]{36}(\?.*)?$")
JOB_URL = re.compile(r"/jobs/[0-9a-f-]{36}$")
Screenshot = Callable[[Page, str], Path]


def open_audience(page: Page, platform: str) -> None:
    """From the Audiences page, follow the demo audience of `platform` by its name."""
    visit(page, "/audiences")
    row = page.locator(f'[data-testid="audience-row"][data-platform="{platform}"]').first
    href = row.get_by_role("link").first.get_attribute("href")
    assert href is not None
    assert AUDIENCE_URL.search(href), href
    visit(page, href)


def chart(page: Page, test_id: str) -> Locator:
    """The canvas of a chart (the test id may be on the canvas or on its figure)."""
    return page.locator(f'canvas[data-testid="{test_id}"], [data-testid="{test_id}"] canvas').first


def sync_now(page: Page) -> Locator:
    """Press "Sync now" (confirming, if the page asks): the job page's status."""
    page.get_by_test_id("sync-now").click()
    confirm, status = page.get_by_test_id("confirm-sync"), page.get_by_test_id("job-status")
    expect(confirm.or_(status).first).to_be_visible()
    if confirm.is_visible():
        confirm.click()
    expect(page).to_have_url(JOB_URL)
    return status


@contextmanager
def sandbox_fault(server: DemoServer, **rule: Any) -> Iterator[None]:
    """A fault in the demo's platform sandbox (docs/sandbox.md, Fault injection), cleared after."""
    sandbox = f"{server.url}/sandbox/_sandbox/faults"
    httpx.post(sandbox, json=rule, timeout=10).raise_for_status()
    try:
        yield
    finally:
        httpx.delete(sandbox, timeout=10).raise_for_status()


def test_sign_in_and_look_at_the_audiences(page: Page) -> None:
    rows = page.get_by_test_id("audience-row")
    expect(rows.first).to_be_visible()
    assert rows.count() >= 4
    expect(page.get_by_test_id("summary-success")).not_to_be_empty()
    assert_accessible(page)


def test_open_an_audience_and_read_its_charts(page: Page, screenshot: Screenshot) -> None:
    open_audience(page, "meta")
    for test_id in ("chart-size", "chart-match-rate"):
        canvas = chart(page, test_id)
        expect(canvas).to_have_attribute("data-drawn", "1")  # app.js drew it with Chart.js
        points = canvas.evaluate("c => Chart.getChart(c).data.datasets.map(d => d.data.length)")
        assert points, "the chart has no data set"
        assert min(points) >= 3, points  # serve --demo: a create, then two updates
    assert_accessible(page)
    screenshot(page, "audience")


def test_dry_run_then_sync_and_watch_the_job_complete(
    page: Page, demo_server: DemoServer, screenshot: Screenshot
) -> None:
    open_audience(page, "meta")
    page.get_by_test_id("dry-run").click()
    expect(page).to_have_url(JOB_URL)
    preview = page.get_by_test_id("preview")  # shown once the dry run completed (live)
    expect(preview).to_contain_text(re.compile(r"adds", re.IGNORECASE), timeout=60_000)
    assert_accessible(page)
    # Meta answers slowly for a few requests: the job page shows it running, then completed.
    with sandbox_fault(demo_server, kind="latency", platform="meta", delay_seconds=1, count=4):
        status = sync_now(page)
        page.evaluate("window.notReloaded = true")
        expect(status).to_have_text(re.compile(r"pending|running", re.IGNORECASE))
        assert_accessible(page, widths=(DESKTOP,))
        expect(status).to_have_text(re.compile(r"completed", re.IGNORECASE), timeout=60_000)
    assert page.evaluate("window.notReloaded") is True  # followed live, never reloaded
    assert_accessible(page)
    screenshot(page, "job")


def test_a_failed_job_says_why(page: Page, demo_server: DemoServer, screenshot: Screenshot) -> None:
    with sandbox_fault(demo_server, kind="expired_token", platform="tiktok", count=None):
        open_audience(page, "tiktok")
        status = sync_now(page)
        expect(status).to_have_text(re.compile(r"failed", re.IGNORECASE), timeout=60_000)
    why = page.get_by_test_id("job-error")
    expect(why).to_contain_text(re.compile(r"token|reconnect|expired", re.IGNORECASE))
    assert "sandbox-token" not in page.content()  # no token in any page
    assert_accessible(page)
    screenshot(page, "job-failed")


def test_create_an_audience(page: Page, screenshot: Screenshot) -> None:
    visit(page, "/audiences/new")
    form = page.get_by_test_id("new-audience-form")
    segment = form.get_by_label(re.compile(r"^segment", re.IGNORECASE))
    value = segment.locator("option", has_text="High Value Customers").first.get_attribute("value")
    segment.select_option(value)
    form.get_by_label(re.compile(r"^platform", re.IGNORECASE)).select_option("snapchat")
    form.get_by_label(re.compile(r"ad account", re.IGNORECASE)).fill("1234567890")
    form.get_by_label(re.compile(r"name", re.IGNORECASE)).first.fill("HV on Snapchat (browser)")
    assert_accessible(page)
    screenshot(page, "new-audience")
    page.get_by_test_id("create-audience").click()
    expect(page).to_have_url(AUDIENCE_URL)
    expect(page.get_by_role("heading", level=1)).to_contain_text("HV on Snapchat (browser)")
    assert_accessible(page)


def test_export_a_segment_and_download_it(page: Page, screenshot: Screenshot) -> None:
    visit(page, "/segments")
    row = page.get_by_test_id("segment-row").filter(has_text="Newsletter Subscribers")
    expect(row).to_be_visible()
    assert_accessible(page)
    screenshot(page, "segments")
    segment_id = row.get_attribute("data-segment-id")
    row.get_by_test_id(f"open-export-{segment_id}").click()  # the export's options
    row.get_by_label("Hash identifiers (SHA-256)").uncheck()
    row.get_by_test_id(f"export-{segment_id}").click()
    link = page.get_by_test_id("download-link")
    expect(link).to_be_visible(timeout=30_000)
    assert_accessible(page)
    with page.expect_download() as downloading:
        link.click()
    lines = Path(downloading.value.path()).read_text().splitlines()
    assert lines[0].startswith('"profile_id"')  # every field quoted (formula-safe CSV)
    assert len(lines) > 1_000


def test_revoke_a_key(
    page: Page, demo_server: DemoServer, browser: Browser, screenshot: Screenshot
) -> None:
    made = demo_server.cli("tenants", "keys", "create", "demo", "--name", "to revoke", "--json")
    key = json.loads(made)["api_key"]
    visit(page, "/settings")
    rows = page.get_by_test_id("key-row")
    row = rows.filter(has_text=key[:10])  # a key is shown by its prefix, never whole
    expect(row).to_be_visible()
    assert_accessible(page)
    screenshot(page, "settings")
    row.get_by_test_id("revoke-key").click()
    page.get_by_test_id("confirm-revoke").click()  # a confirmation page first
    still_active = rows.filter(has_text=key[:10]).filter(
        has_not_text=re.compile(r"revoked", re.IGNORECASE)
    )
    expect(still_active).to_have_count(0)
    other = browser.new_context(base_url=demo_server.url)
    try:
        tab = other.new_page()
        sign_in(tab, key)
        expect(tab.locator("#login-error")).to_be_visible()  # the revoked key signs in no more
    finally:
        other.close()


def test_the_connections_page_shows_each_platform(page: Page, screenshot: Screenshot) -> None:
    visit(page, "/connections")
    main = page.locator("main")
    for platform in ("Meta", "Google", "TikTok", "Snapchat"):
        expect(main.get_by_text(platform).first).to_be_visible()
    assert "sandbox-token" not in page.content()  # a token hint at most, never the token
    assert_accessible(page)
    screenshot(page, "connections")


def test_sign_out(page: Page) -> None:
    page.get_by_test_id("sign-out").click()
    expect(page).to_have_url(re.compile(r"/login$"))
    page.goto("/audiences")
    expect(page).to_have_url(re.compile(r"/login\?next="))
