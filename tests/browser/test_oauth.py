"""In Chromium, on `serve --demo`: connecting each platform by OAuth as a person does (issue 21).

Sign in → Connections → Connect <platform> → the platform's consent page (the sandbox's) → Allow →
back on Connections: connected, its expiry, the ad accounts listed → test the connection →
create an audience on the account → sync it to completion. The demo configures the sandbox's
OAuth apps, so nothing is set up first.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Page, expect

from .conftest import DemoServer, assert_accessible, visit

AUDIENCE_URL = re.compile(r"/audiences/([0-9a-f-]{36})(\?.*)?$")
# platform: its name on the page, a scope its consent page asks for (docs/connections.md)
PLATFORMS = {
    "meta": ("Meta", "ads_management"),
    "google": ("Google", "datamanager"),
    "tiktok": ("TikTok", "TikTok"),
    "snapchat": ("Snapchat", "snapchat-marketing-api"),
}


@pytest.mark.parametrize("platform", list(PLATFORMS))
def test_connect_by_oauth_then_sync_an_audience(
    page: Page, demo_server: DemoServer, screenshot: Callable[[Page, str], Path], platform: str
) -> None:
    name, scope = PLATFORMS[platform]
    visit(page, "/connections")
    page.get_by_test_id(f"oauth-connect-{platform}").click()
    allow = page.get_by_role("button", name="Allow")
    expect(allow).to_be_visible()  # the platform's own page, asking for the permissions
    expect(page.locator("body")).to_contain_text(scope)
    allow.click()

    expect(page).to_have_url(re.compile(rf"/connections\?connected={platform}$"))
    expect(page.get_by_test_id("flash")).to_contain_text(f"{name} connected")
    row = page.locator(f'[data-testid="connection-row"][data-platform="{platform}"]')
    expect(row.get_by_test_id("connection-status")).to_have_text("connected")
    if platform == "meta":  # the one token nothing renews: its countdown shows
        expiry = row.get_by_test_id("token-expiry")
        expect(expiry).to_have_text(re.compile(r"expires in (59|60) days"))
        expect(row.get_by_test_id("connection-scopes")).to_contain_text(scope)
    expect(row.get_by_test_id("ad-account-option").first).to_be_attached()
    expect(row.get_by_test_id(f"ad-account-picker-{platform}")).to_have_value("1234567890")
    assert f"sbx-{platform}-" not in page.content()  # the new token is never shown
    assert_accessible(page)
    if platform == "meta":
        screenshot(page, "connections-oauth")

    page.get_by_test_id(f"test-connection-{platform}").click()
    expect(page.get_by_test_id("test-result")).to_have_attribute("data-outcome", "ok")

    visit(page, "/audiences/new")
    form = page.get_by_test_id("new-audience-form")
    segment = form.get_by_label(re.compile(r"^segment", re.IGNORECASE))
    value = segment.locator("option", has_text="At Risk Churning").first.get_attribute("value")
    segment.select_option(value)
    form.get_by_label(re.compile(r"^platform", re.IGNORECASE)).select_option(platform)
    form.get_by_label(re.compile(r"ad account", re.IGNORECASE)).fill("1234567890")
    form.get_by_label(re.compile(r"name", re.IGNORECASE)).first.fill(f"At risk ({name}, OAuth)")
    page.get_by_test_id("create-audience").click()
    expect(page).to_have_url(AUDIENCE_URL)

    # Creating it ran its first sync (the create) on the OAuth connection: wait for it.
    status = page.get_by_test_id("job-row-status").first
    for _ in range(60):
        if status.count() and re.search("completed", status.inner_text(), re.IGNORECASE):
            break
        page.wait_for_timeout(500)
        page.reload()
    expect(status).to_have_text(re.compile("completed", re.IGNORECASE))
    remove_audience(demo_server, page.url)


def remove_audience(server: DemoServer, url: str) -> None:
    """Delete the audience again and purge it (the other browser tests count the demo's
    four audiences, deleted ones included)."""
    audience_id = AUDIENCE_URL.search(url)
    assert audience_id is not None, url
    headers = {"Authorization": f"Bearer {server.key}"}
    api = f"{server.url}/api/v1/audiences"
    gone = httpx.delete(f"{api}/{audience_id.group(1)}", headers=headers, timeout=10)
    assert gone.status_code == 202, gone.text
    for _ in range(120):
        if len(httpx.get(api, headers=headers, timeout=10).json()) == 4:
            server.cli("audiences", "purge", audience_id.group(1), "--tenant", "demo")
            return
        time.sleep(0.25)
    raise AssertionError("the audience was not deleted")
