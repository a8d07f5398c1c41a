"""Settings → Alerts: channels (add a webhook or e-mail channel, send a test alert to a real
local receiver, delete after a confirmation), rules (switches and thresholds, an error beside
its field), recent alerts; the Audience page's open alerts and the Job page's refreshed figure.
CSRF, tenant isolation, escaping, and the webhook secret never shown after it was typed."""

from __future__ import annotations

import hashlib
import hmac
import re
import uuid
from collections.abc import Iterator

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy.orm import Session, sessionmaker

from audience_sync.config import Settings
from audience_sync.domain.models import SyncStatus
from audience_sync.services import alerts
from audience_sync.store.db import transaction
from audience_sync.store.repositories import SyncJobRepository
from audience_sync.testing.receiver import Receiver, receiving

from ..conftest import Api, Tenant, context
from .conftest import Browser

pytestmark = pytest.mark.parametrize("engine", ["sqlite"], indirect=True)

SECRET = "whsec-dashboard-0123456789"
SCRIPT = "<script>alert(1)</script>"
ESCAPED = "&lt;script&gt;alert(1)&lt;/script&gt;"
RULES = [rule.value for rule in alerts.Rule]


@pytest.fixture
def settings(settings: Settings) -> Settings:
    """The API tests' settings, letting webhooks reach the loopback receiver (the operator's
    switch: `AUDIENCE_SYNC_ALERT_ALLOW_PRIVATE_WEBHOOKS`)."""
    return settings.model_copy(update={"alert_allow_private_webhooks": True})


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with receiving() as found:
        yield found


async def add_webhook(browser: Browser, url: str, name: str = "") -> httpx.Response:
    return await browser.post(
        "/settings/alerts/channels",
        {"kind": "webhook", "url": url, "secret": SECRET, "name": name},
    )


def channel_ids(page: str) -> list[int]:
    return [
        int(found)
        for found in re.findall(r'data-testid="channel-row" data-channel-id="(\d+)"', page)
    ]


def outcome(page: str, channel_id: int) -> str:
    found = re.search(rf'id="test-outcome-{channel_id}-text">(.*?)</span>\s*</span>', page, re.S)
    assert found is not None, page
    return re.sub(r"<[^>]+>", "", found.group(1)).strip()


def verified(received: httpx.Headers | dict[str, str], body: bytes) -> bool:
    header = {k.lower(): v for k, v in received.items()}["x-audience-sync-signature"]
    parts = dict(item.split("=", 1) for item in header.split(","))
    signed = parts["t"].encode() + b"." + body
    expected = hmac.new(SECRET.encode(), signed, hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected, parts["v1"])


async def test_a_webhook_is_added_tested_and_deleted(
    client: httpx.AsyncClient, alice: Tenant, alice_browser: Browser, receiver: Receiver
) -> None:
    page = (await alice_browser.get("/settings")).text
    assert 'href="/settings/alerts"' in page
    assert 'data-testid="no-channels"' in (await alice_browser.get("/settings/alerts")).text
    added = await add_webhook(alice_browser, receiver.url, name=f"Ops {SCRIPT}")
    assert added.status_code == 303
    assert added.headers["location"] == "/settings/alerts?done=added"
    page = (await alice_browser.get(added.headers["location"])).text
    (channel_id,) = channel_ids(page)
    port = receiver.url.split(":")[2].split("/")[0]
    assert f"<code>http://127.0.0.1:{port}/…</code>" in page  # scheme and host only
    assert "/hooks/alerts" not in page
    assert '<code data-testid="secret-hint">****6789</code>' in page
    assert SECRET not in page
    assert f"Ops {ESCAPED}" in page
    assert SCRIPT not in page

    tested = await alice_browser.post(f"/settings/alerts/channels/{channel_id}/test")
    assert tested.status_code == 200
    assert outcome(tested.text, channel_id) == "sent Test alert delivered."
    assert SECRET not in tested.text
    (arrived,) = receiver.received
    assert arrived.json["type"] == "alert.test"
    assert verified(arrived.headers, arrived.body)

    asked = await alice_browser.post(f"/settings/alerts/channels/{channel_id}/delete")
    assert asked.status_code == 200
    assert 'data-testid="confirm-delete-channel"' in asked.text
    assert channel_ids((await alice_browser.get("/settings/alerts")).text) == [channel_id]
    deleted = await alice_browser.post(
        f"/settings/alerts/channels/{channel_id}/delete", {"confirm": "yes"}
    )
    assert deleted.headers["location"] == "/settings/alerts?done=deleted"
    assert channel_ids((await alice_browser.get("/settings/alerts")).text) == []
    listed = await Api(client, alice).call("GET", "/api/v1/alerts/channels")
    assert listed.json()["channels"] == []


async def test_a_failed_test_alert_says_why_in_plain_words(
    alice_browser: Browser, receiver: Receiver
) -> None:
    await add_webhook(alice_browser, receiver.url)
    added = await alice_browser.post(
        "/settings/alerts/channels", {"kind": "email", "to": "ops@example.com, oncall@example.com"}
    )
    assert added.status_code == 303
    page = (await alice_browser.get("/settings/alerts")).text
    webhook, email = channel_ids(page)
    assert "ops@example.com, oncall@example.com" in page
    receiver.up = False
    down = (await alice_browser.post(f"/settings/alerts/channels/{webhook}/test")).text
    assert outcome(down, webhook) == "failed the receiver answered HTTP 503"
    no_smtp = (await alice_browser.post(f"/settings/alerts/channels/{email}/test")).text
    assert outcome(no_smtp, email) == "failed no SMTP server is set (AUDIENCE_SYNC_SMTP_HOST)"
    assert outcome(no_smtp, webhook) == ""  # only the channel tested shows an outcome


@pytest.mark.parametrize(
    ("form", "field", "words"),
    [
        ({"kind": "webhook", "url": "https://ops.example.com/h"}, "secret", "needs a secret"),
        (
            {"kind": "webhook", "url": "https://ops.example.com/h", "secret": "short-secret"},
            "secret",
            "16 to 200 characters",
        ),
        ({"kind": "webhook", "url": "ftp://ops.example.com/h", "secret": SECRET}, "url", "http"),
        ({"kind": "email", "to": "ops@example.com, not an address"}, "to", "name@domain"),
        ({"kind": "email", "to": "a@example.com", "name": "n" * 201}, "name", "at most 200"),
        ({"kind": "email", "to": " ".join(f"a{i}@example.com" for i in range(21))}, "to", "20"),
    ],
)
async def test_a_channel_error_is_beside_its_field_and_the_secret_is_not_kept(
    alice_browser: Browser, form: dict[str, str], field: str, words: str
) -> None:
    answer = await alice_browser.post("/settings/alerts/channels", form)
    assert answer.status_code == 422
    kind = form["kind"]
    error = re.search(
        rf'<small class="field-error" id="{kind}-{field}-error">([^<]+)<', answer.text
    )
    assert error is not None, answer.text
    assert words in error.group(1)
    field_input = re.search(rf'<input id="{kind}-{field}"[^>]*>', answer.text)
    assert field_input is not None
    assert 'aria-invalid="true"' in field_input.group(0)
    assert f"{kind}-{field}-error" in field_input.group(0)
    if "secret" in form:
        assert form["secret"] not in answer.text
    if "url" in form:
        assert f'value="{form["url"]}"' in answer.text  # kept for the next try
    assert channel_ids(answer.text) == []


def rules_form(**changes: str) -> dict[str, str]:
    """Every rule on at its default threshold (as the page's form posts it), with changes."""
    form = {f"{rule}.enabled": "on" for rule in RULES}
    return {**form, **changes}


async def test_rules_are_saved_and_a_bad_threshold_is_shown_beside_it(
    client: httpx.AsyncClient, alice: Tenant, alice_browser: Browser
) -> None:
    page = (await alice_browser.get("/settings/alerts")).text
    for rule in RULES:
        assert f'data-testid="rule-switch-{rule}" checked' in page
    assert 'data-testid="rule-threshold-inactivity_deletion"' in page
    assert re.search(r'data-testid="rule-threshold-members_dropped"\s+value="20"', page)
    wrong = rules_form(**{"members_dropped.threshold": "150", "connection.threshold": "soon"})
    answer = await alice_browser.post("/settings/alerts/rules", wrong)
    assert answer.status_code == 422
    html = answer.text
    dropped = re.search(r'data-testid="rule-error-members_dropped">([^<]+)<', html)
    assert dropped is not None
    assert "out of range" in dropped.group(1)
    assert 'data-testid="rule-error-connection">Enter a number.<' in html
    assert re.search(
        r'value="150" aria-invalid="true" aria-describedby="rule-members_dropped-error"', html
    )
    assert 'data-testid="rule-error-match_rate_drop"' not in html
    api = Api(client, alice)
    unchanged = (await api.call("GET", "/api/v1/alerts/rules")).json()["rules"]
    assert {r["rule"]: r["threshold"] for r in unchanged}["members_dropped"] == 20  # nothing saved

    good = rules_form(**{"members_dropped.threshold": "40", "inactivity_deletion.threshold": "14"})
    del good["stale_audience.enabled"]  # a switch turned off is absent from the form
    saved = await alice_browser.post("/settings/alerts/rules", good)
    assert saved.headers["location"] == "/settings/alerts?done=rules"
    rules = {r["rule"]: r for r in (await api.call("GET", "/api/v1/alerts/rules")).json()["rules"]}
    assert rules["members_dropped"]["threshold"] == 40
    assert rules["inactivity_deletion"]["threshold"] == 14
    assert rules["stale_audience"]["enabled"] is False
    assert rules["sync_failed"]["enabled"] is True
    page = (await alice_browser.get("/settings/alerts?done=rules")).text
    assert 'data-testid="rule-switch-stale_audience">' in page  # not checked
    assert "The rules are saved." in page


async def failed_audience(
    client: httpx.AsyncClient, app: FastAPI, tenant: Tenant, factory: sessionmaker[Session]
) -> tuple[str, str]:
    """A Meta audience named like a script whose sync failed for good, the job hook run: its
    id and the job's."""
    api = Api(client, tenant)
    await api.connect("meta")
    audience = await api.audience(await api.segment(), platform_audience_name=SCRIPT)
    await context(app).launcher.drain()
    job_id = audience["sync_job"]["id"]
    with transaction(factory) as session:
        job = SyncJobRepository(session, tenant.id).get(uuid.UUID(job_id))
        job.status, job.error_message = SyncStatus.FAILED, f"Meta refused {SCRIPT}"
    alerts.after_job(context(app).service, tenant.id, uuid.UUID(job_id))
    return audience["id"], job_id


async def test_the_audience_page_shows_its_open_alerts_and_recent_alerts_list_them(
    client: httpx.AsyncClient,
    app: FastAPI,
    alice: Tenant,
    alice_browser: Browser,
    bob_browser: Browser,
    factory: sessionmaker[Session],
    receiver: Receiver,
) -> None:
    await add_webhook(alice_browser, receiver.url, name="Ops")
    audience_id, job_id = await failed_audience(client, app, alice, factory)
    page = (await alice_browser.get(f"/audiences/{audience_id}")).text
    panel = re.search(
        r'<section class="flash error" role="alert"[^>]*data-testid="audience-alerts">'
        r"(.*?)</section>",
        page,
        re.S,
    )
    assert panel is not None, page
    text = panel.group(1)
    assert 'data-rule="sync_failed"' in text
    assert "<strong>Sync failed:</strong>" in text
    assert f"Sync of &#39;{ESCAPED}&#39; (meta) failed after its last retry" in text
    assert "since" in text
    assert f'href="/jobs/{job_id}"' in text
    assert "Read why the sync failed" in text
    assert SCRIPT not in page

    events = (await alice_browser.get("/settings/alerts")).text
    row = re.search(
        r'<tr data-testid="event-row" data-rule="sync_failed" data-state="open">(.*?)</tr>',
        events,
        re.S,
    )
    assert row is not None, events
    assert "Ops (raised): <strong>sent</strong>" in row.group(1)
    assert ESCAPED in row.group(1)
    assert SCRIPT not in events
    bobs = (await bob_browser.get("/settings/alerts")).text
    assert 'data-testid="no-events"' in bobs  # another tenant sees none of it

    with transaction(factory) as session:  # a completed sync clears it
        job = SyncJobRepository(session, alice.id).get(uuid.UUID(job_id))
        job.status, job.error_message = SyncStatus.COMPLETED, None
    alerts.after_job(context(app).service, alice.id, uuid.UUID(job_id))
    page = (await alice_browser.get(f"/audiences/{audience_id}")).text
    assert 'data-testid="audience-alerts"' not in page
    events = (await alice_browser.get("/settings/alerts")).text
    assert 'data-rule="sync_failed" data-state="resolved"' in events


async def test_the_job_page_shows_refreshed_members_only_when_there_are_some(
    client: httpx.AsyncClient,
    app: FastAPI,
    alice: Tenant,
    alice_browser: Browser,
    factory: sessionmaker[Session],
) -> None:
    api = Api(client, alice)
    await api.connect("meta")
    audience = await api.audience(await api.segment())
    await context(app).launcher.drain()
    job_id = audience["sync_job"]["id"]
    page = (await alice_browser.get(f"/jobs/{job_id}")).text
    assert 'data-testid="job-added"' in page
    assert 'data-testid="job-refreshed"' not in page
    with transaction(factory) as session:
        job = SyncJobRepository(session, alice.id).get(uuid.UUID(job_id))
        job.details = {
            **job.details,
            "figures": {**job.details.get("figures", {}), "refreshed": 1234},
        }
    page = (await alice_browser.get(f"/jobs/{job_id}")).text
    assert re.search(r'data-testid="job-refreshed"[^>]*>1,234<', page)


async def test_every_action_needs_the_csrf_token(
    alice_browser: Browser, receiver: Receiver
) -> None:
    await add_webhook(alice_browser, receiver.url)
    (channel_id,) = channel_ids((await alice_browser.get("/settings/alerts")).text)
    raw = alice_browser.client
    for url, data in [
        ("/settings/alerts/channels", {"kind": "webhook", "url": receiver.url, "secret": SECRET}),
        (f"/settings/alerts/channels/{channel_id}/test", {}),
        (f"/settings/alerts/channels/{channel_id}/delete", {"confirm": "yes"}),
        ("/settings/alerts/rules", rules_form()),
    ]:
        refused = await raw.post(url, data=data)
        assert refused.status_code == 403, url
    assert receiver.received == []
    assert channel_ids((await alice_browser.get("/settings/alerts")).text) == [channel_id]


async def test_another_tenants_channel_is_a_404_page(
    client: httpx.AsyncClient, bob: Tenant, alice_browser: Browser, receiver: Receiver
) -> None:
    made = await Api(client, bob).call(
        "POST",
        "/api/v1/alerts/channels",
        json={"kind": "webhook", "url": receiver.url, "secret": SECRET},
    )
    assert made.status_code == 201, made.text
    bobs = made.json()["id"]
    for url in (
        f"/settings/alerts/channels/{bobs}/test",
        f"/settings/alerts/channels/{bobs}/delete",
        "/settings/alerts/channels/99999999999/test",
    ):
        answer = await alice_browser.post(url, {"confirm": "yes"})
        assert answer.status_code == 404, url
        assert "<h1>" in answer.text
    assert receiver.received == []
    page = (await alice_browser.get("/settings/alerts")).text
    assert channel_ids(page) == []
    listed = await Api(client, bob).call("GET", "/api/v1/alerts/channels")
    assert [c["id"] for c in listed.json()["channels"]] == [bobs]
