"""The New audience page: its choices, creating an audience with its first sync, errors beside
their fields, CSRF, another tenant's segment, escaping."""

from __future__ import annotations

import re
import uuid

import httpx
import pytest
from fastapi import FastAPI

from audience_sync.services import audiences

from ..conftest import Api, Tenant, context
from .conftest import Browser

pytestmark = pytest.mark.parametrize("engine", ["sqlite"], indirect=True)


def platform_options(html: str) -> list[str]:
    select = re.search(r'<select id="platform".*?</select>', html, re.S)
    assert select is not None
    return re.findall(r'<option value="([^"]+)"', select.group(0))


async def test_the_form_offers_segments_with_sizes_and_only_connected_enabled_platforms(
    client: httpx.AsyncClient, alice: Tenant, alice_browser: Browser
) -> None:
    api = Api(client, alice)
    vip = await api.segment("VIP", profiles=20)
    await api.connect("meta")
    await api.connect("tiktok")
    off = await api.call(
        "PUT", "/api/v1/feature-flags", json={"flags": {"audience_sync_tiktok": False}}
    )
    assert off.status_code == 200
    page = await alice_browser.get("/audiences/new")
    assert page.status_code == 200
    assert 'data-testid="new-audience-form"' in page.text
    assert "VIP — 20 members" in page.text
    assert platform_options(page.text) == ["meta"]
    assert "TikTok (turned off by the feature flag audience_sync_tiktok)" in page.text
    assert "Google (not connected)" in page.text
    assert 'value="1234567890"' in page.text  # the connection's ad account, prefilled
    assert 'data-testid="create-audience"' in page.text
    chosen = await alice_browser.get(f"/audiences/new?segment={vip}")  # from the Segments page
    assert f'<option value="{vip}" selected>' in chosen.text


async def test_without_a_usable_platform_the_page_says_so_and_links_connections(
    client: httpx.AsyncClient, alice: Tenant, alice_browser: Browser
) -> None:
    await Api(client, alice).segment("VIP", profiles=2)
    page = await alice_browser.get("/audiences/new")
    assert 'data-testid="no-platform"' in page.text
    assert 'href="/connections"' in page.text
    assert 'data-testid="new-audience-form"' not in page.text


async def test_creating_an_audience_queues_its_first_sync_and_opens_it(
    app: FastAPI, client: httpx.AsyncClient, alice: Tenant, alice_browser: Browser
) -> None:
    api = Api(client, alice)
    segment = await api.segment("VIP", profiles=5)
    await api.connect("google")
    answer = await alice_browser.post(
        "/audiences/new",
        {
            "segment_id": segment,
            "platform": "google",
            "ad_account_id": "123-456-7890",
            "name": "Buyers",
            "auto_sync": "on",
            "interval": "6",
            "identifier_types": "email",
            "google.membership_days": "30",
            "google.consent_ad_user_data": "granted",
        },
    )
    assert answer.status_code == 303, answer.text
    audience_id = answer.headers["location"].removeprefix("/audiences/").split("?")[0]
    made = (await api.call("GET", f"/api/v1/audiences/{audience_id}")).json()
    assert made["platform_audience_name"] == "Buyers"
    assert made["sync_interval_hours"] == 6
    assert made["auto_sync"] is True
    await context(app).launcher.drain()
    jobs = (await api.call("GET", f"/api/v1/audiences/{audience_id}/jobs")).json()
    assert [job["operation"] for job in jobs] == ["create"]
    assert jobs[0]["status"] == "completed", jobs[0]
    stored = audiences.get(context(app).service, alice.id, uuid.UUID(audience_id))
    assert stored.config == {
        "membership_days": 30,
        "consent_ad_user_data": "granted",
        "identifier_types": ["email"],
    }


async def test_errors_sit_beside_their_fields_and_the_values_stay(
    client: httpx.AsyncClient, alice: Tenant, alice_browser: Browser
) -> None:
    api = Api(client, alice)
    segment = await api.segment("VIP", profiles=2)
    await api.connect("google")
    answer = await alice_browser.post(
        "/audiences/new",
        {
            "segment_id": segment,
            "platform": "google",
            "ad_account_id": "act 1/2",
            "name": "",
            "description": "kept text",
            "interval": "3",
            "google.membership_days": "999",
        },
    )
    assert answer.status_code == 422
    html = answer.text
    for field in ("ad_account_id", "name", "interval", "google-membership_days"):
        assert f'id="{field}-error"' in html, field
    assert 'aria-invalid="true" aria-describedby="name-error"' in html
    assert re.search(
        r'aria-describedby="ad_account_id-note ad_account_id-error" aria-invalid="true"', html
    )
    assert "letters, digits" in html  # the API's ad account rule, in its words
    assert "A whole number from 1 to 540." in html
    assert "kept text" in html
    assert 'value="act 1/2"' in html
    assert 'value="999"' in html
    assert (await api.call("GET", "/api/v1/audiences")).json() == []


async def test_an_interval_under_the_minimum_is_refused_beside_the_schedule(
    app: FastAPI, client: httpx.AsyncClient, alice: Tenant, alice_browser: Browser
) -> None:
    context(app).settings.min_interval_hours = 12
    api = Api(client, alice)
    segment = await api.segment("VIP", profiles=2)
    await api.connect("meta")
    page = await alice_browser.get("/audiences/new")
    assert '<option value="6"' not in page.text  # not offered
    answer = await alice_browser.post(
        "/audiences/new",
        {
            "segment_id": segment,
            "platform": "meta",
            "ad_account_id": "1",
            "name": "A",
            "interval": "6",
        },
    )
    assert answer.status_code == 422
    assert 'id="interval-error"' in answer.text
    assert "must be one of 12, 24, 168" in answer.text


async def test_a_form_without_its_csrf_token_is_refused(
    client: httpx.AsyncClient, alice: Tenant, alice_browser: Browser
) -> None:
    api = Api(client, alice)
    segment = await api.segment("VIP", profiles=2)
    await api.connect("meta")
    form = {"segment_id": segment, "platform": "meta", "ad_account_id": "1", "name": "A"}
    answer = await alice_browser.client.post("/audiences/new", data=form)
    assert answer.status_code == 403
    assert (await api.call("GET", "/api/v1/audiences")).json() == []


async def test_another_tenants_segment_is_neither_listed_nor_usable(
    client: httpx.AsyncClient, alice: Tenant, bob: Tenant, alice_browser: Browser
) -> None:
    theirs = await Api(client, bob).segment("Bob's list", profiles=2)
    api = Api(client, alice)
    await api.segment("Mine", profiles=2)
    await api.connect("meta")
    page = await alice_browser.get("/audiences/new")
    assert theirs not in page.text
    assert "Bob&#39;s list" not in page.text
    answer = await alice_browser.post(
        "/audiences/new",
        {"segment_id": theirs, "platform": "meta", "ad_account_id": "1", "name": "A"},
    )
    assert answer.status_code == 422
    assert 'id="segment_id-error"' in answer.text
    assert (await api.call("GET", "/api/v1/audiences")).json() == []


async def test_a_segment_named_like_a_script_is_shown_as_text(
    client: httpx.AsyncClient, alice: Tenant, alice_browser: Browser
) -> None:
    api = Api(client, alice)
    await api.segment("<script>alert(1)</script>", profiles=2)
    await api.connect("meta")
    page = (await alice_browser.get("/audiences/new")).text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "<script>alert(1)</script>" not in page
