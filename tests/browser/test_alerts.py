"""In Chromium, on `serve --demo`: Settings → Alerts. Add a webhook channel pointing at a local
receiver, press "Send test alert", see it sent (htmx swaps the outcome in beside the button) and
the receiver get it; axe-core clean at 1280 and 390 px; then delete the channel (confirmed).

The demo server lets webhooks reach loopback (`AUDIENCE_SYNC_ALERT_ALLOW_PRIVATE_WEBHOOKS`, set
in conftest's `demo_server`)."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

from playwright.sync_api import Page, expect

from audience_sync.testing.receiver import receiving

from .conftest import assert_accessible, visit

SECRET = "whsec-browser-0123456789"
NAME = "Ops on-call (browser)"
Screenshot = Callable[[Page, str], Path]


def test_add_a_webhook_and_send_a_test_alert(page: Page, screenshot: Screenshot) -> None:
    with receiving() as receiver:
        visit(page, "/settings")
        page.get_by_test_id("alerts-settings").click()
        expect(page).to_have_url(re.compile(r"/settings/alerts$"))
        form = page.get_by_test_id("add-webhook-form")
        form.get_by_label("URL").fill(receiver.url)
        form.get_by_label("Signing secret").fill(SECRET)
        form.get_by_label("Name (optional)").fill(NAME)
        form.get_by_test_id("add-webhook").click()
        expect(page).to_have_url(re.compile(r"/settings/alerts\?done=added$"))
        expect(page.get_by_test_id("flash")).to_contain_text("The channel is added")
        row = page.get_by_test_id("channel-row").filter(has_text=NAME)
        expect(row).to_have_count(1)
        assert SECRET not in page.content()

        page.evaluate("window.notReloaded = true")
        row.get_by_test_id("send-test-alert").click()
        expect(row.get_by_test_id("test-alert-outcome")).to_contain_text("sent")
        assert page.evaluate("window.notReloaded") is True  # swapped in by htmx, no reload
        assert [r.json["type"] for r in receiver.received] == ["alert.test"]
        assert_accessible(page)
        screenshot(page, "alerts")

        row.get_by_test_id("delete-channel").click()
        page.get_by_test_id("confirm-delete-channel").click()
        expect(page).to_have_url(re.compile(r"/settings/alerts\?done=deleted$"))
        expect(page.get_by_test_id("channel-row").filter(has_text=NAME)).to_have_count(0)
