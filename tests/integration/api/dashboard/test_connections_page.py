"""The Connections page: statuses and hints, connect and reconnect (the token never shown),
disconnect after a confirmation, the connection test, CSRF and tenant isolation."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import update
from sqlalchemy.orm import Session, sessionmaker

from audience_sync.store.db import transaction
from audience_sync.store.tables import PlatformConnection

from ..conftest import Api, Tenant
from .conftest import Browser

pytestmark = pytest.mark.parametrize("engine", ["sqlite"], indirect=True)

TYPED_TOKEN = "typed-Token-9f8e7d6c5b4a3210"
PAGES = ("/connections", "/audiences", "/audiences/new", "/segments", "/settings")


def row_of(html: str, platform: str) -> str:
    start = f'data-testid="connection-row" data-platform="{platform}"'
    found = re.search(rf"{start}.*?</article>", html, re.S)
    assert found is not None, platform
    return found.group(0)


def status_of(html: str, platform: str) -> str:
    found = re.search(r'data-testid="connection-status">([^<]+)<', row_of(html, platform))
    assert found is not None
    return found.group(1)


async def test_each_platform_shows_its_status_account_and_token_hint(
    client: httpx.AsyncClient,
    alice: Tenant,
    alice_browser: Browser,
    factory: sessionmaker[Session],
) -> None:
    api = Api(client, alice)
    await api.connect("meta")
    await api.connect("google")
    with transaction(factory) as session:
        session.execute(
            update(PlatformConnection)
            .where(PlatformConnection.platform == "google")
            .values(status="needs_reconnect", status_message="The token expired.")
        )
    page = (await alice_browser.get("/connections")).text
    assert page.count('data-testid="connection-row"') == 4
    assert status_of(page, "meta") == "connected"
    assert status_of(page, "google") == "needs reconnect"
    assert status_of(page, "tiktok") == "not connected"
    meta = row_of(page, "meta")
    assert "1234567890" in meta
    assert "****" in meta  # the stored hint, never the token
    assert "sandbox-token" not in page
    assert "The token expired." in row_of(page, "google")
    assert 'data-testid="test-connection-meta"' in meta
    assert 'data-testid="disconnect-meta"' in meta
    assert 'data-testid="connect-tiktok"' in row_of(page, "tiktok")
    assert 'data-testid="disconnect-tiktok"' not in page
    assert 'type="password" autocomplete="off"' in row_of(page, "tiktok")


async def test_connecting_with_the_form_stores_the_token_and_never_shows_it(
    client: httpx.AsyncClient, alice: Tenant, alice_browser: Browser
) -> None:
    answer = await alice_browser.post(
        "/connections/tiktok",
        {"ad_account_id": "7000000001", "access_token": TYPED_TOKEN},
    )
    assert answer.status_code == 303
    # Saved, then tested: the typed token reaches nothing (no sandbox address here).
    location = answer.headers["location"]
    assert location.startswith("/connections?done=connected&test=")
    assert "test=ok" not in location
    stored = (await Api(client, alice).call("GET", "/api/v1/connections/tiktok")).json()
    assert stored["ad_account_id"] == "7000000001"
    assert stored["credentials"]["access_token"].endswith(TYPED_TOKEN[-4:])
    page = (await alice_browser.get(answer.headers["location"])).text
    assert status_of(page, "tiktok") == "connected"
    assert "Connected, but the test failed" in page
    for url in PAGES:
        shown = await alice_browser.get(url)
        assert shown.status_code == 200, url
        assert TYPED_TOKEN not in shown.text, url
        assert TYPED_TOKEN[:12] not in shown.text, url


async def test_a_refused_form_shows_errors_beside_fields_and_drops_the_token(
    alice_browser: Browser,
) -> None:
    answer = await alice_browser.post(
        "/connections/meta",
        {"ad_account_id": "act 1/2", "access_token": TYPED_TOKEN, "app_secret": "s3cr3t-app-x"},
    )
    assert answer.status_code == 422
    row = row_of(answer.text, "meta")
    assert 'id="meta-ad_account_id-error"' in row
    assert 'aria-invalid="true" aria-describedby="meta-ad_account_id-error"' in row
    assert 'value="act 1/2"' in row  # the account is kept...
    assert TYPED_TOKEN not in answer.text  # ...never a secret
    assert "s3cr3t-app-x" not in answer.text
    assert "<details open>" in row
    missing = await alice_browser.post("/connections/meta", {"ad_account_id": "act_1"})
    assert missing.status_code == 422
    assert 'id="meta-access_token-error"' in missing.text
    assert "Paste the access token." in missing.text


async def test_google_settings_are_stored_with_the_connection(
    client: httpx.AsyncClient, alice: Tenant, alice_browser: Browser
) -> None:
    answer = await alice_browser.post(
        "/connections/google",
        {
            "ad_account_id": "123-456-7890",
            "access_token": TYPED_TOKEN,
            "login_account_id": "999-000-1111",
            "customer_match_terms_accepted": "on",
            "consent_ad_user_data": "granted",
        },
    )
    assert answer.status_code == 303, answer.text
    stored = (await Api(client, alice).call("GET", "/api/v1/connections/google")).json()
    assert stored["settings"] == {
        "login_account_id": "9990001111",  # stored without its dashes, as the API does
        "customer_match_terms_accepted": True,
        "consent_ad_user_data": "granted",
    }


async def test_disconnecting_asks_first_then_forgets_the_account(
    client: httpx.AsyncClient, alice: Tenant, alice_browser: Browser
) -> None:
    api = Api(client, alice)
    await api.connect("meta")
    asked = await alice_browser.post("/connections/meta/disconnect")
    assert asked.status_code == 200
    assert 'data-testid="confirm-disconnect"' in asked.text
    assert (await api.call("GET", "/api/v1/connections/meta")).status_code == 200
    done = await alice_browser.post("/connections/meta/disconnect", {"confirm": "yes"})
    assert done.status_code == 303
    assert (await api.call("GET", "/api/v1/connections/meta")).status_code == 404
    page = (await alice_browser.get("/connections")).text
    assert status_of(page, "meta") == "not connected"


async def test_the_connection_test_reads_the_ad_account_with_the_stored_token(
    app: FastAPI, client: httpx.AsyncClient, alice: Tenant, alice_browser: Browser
) -> None:
    api = Api(client, alice)
    await api.connect("meta")
    passed = await alice_browser.post("/connections/meta/test")
    assert passed.status_code == 200
    assert 'data-outcome="ok"' in passed.text
    assert "Meta answered: the token reaches ad account 1234567890" in passed.text
    # A reconnect with a token the platform does not know keeps the sandbox address.
    typed = {"ad_account_id": "1234567890", "access_token": TYPED_TOKEN}
    assert (await alice_browser.post("/connections/meta", typed)).status_code == 303
    failed = await alice_browser.post("/connections/meta/test")
    assert 'data-outcome="bad_token"' in failed.text
    assert "Meta refused the token (invalid or revoked)" in failed.text
    assert TYPED_TOKEN not in failed.text


async def test_actions_need_the_csrf_token_and_a_known_platform(
    client: httpx.AsyncClient, alice: Tenant, alice_browser: Browser
) -> None:
    await Api(client, alice).connect("meta")
    raw = alice_browser.client
    typed = {"ad_account_id": "1", "access_token": TYPED_TOKEN}
    assert (await raw.post("/connections/tiktok", data=typed)).status_code == 403
    assert (await raw.post("/connections/meta/test")).status_code == 403
    assert (
        await raw.post("/connections/meta/disconnect", data={"confirm": "yes"})
    ).status_code == 403
    assert (await alice_browser.post("/connections/myspace", typed)).status_code == 404
    assert (await alice_browser.post("/connections/tiktok/test")).status_code == 404


async def test_another_tenants_connection_is_not_shown_nor_touched(
    client: httpx.AsyncClient, bob: Tenant, alice_browser: Browser
) -> None:
    await Api(client, bob).connect("meta")
    page = (await alice_browser.get("/connections")).text
    assert status_of(page, "meta") == "not connected"
    gone = await alice_browser.post("/connections/meta/disconnect", {"confirm": "yes"})
    assert gone.status_code == 404
    assert (await Api(client, bob).call("GET", "/api/v1/connections/meta")).status_code == 200


async def test_a_meta_token_shows_its_days_left_then_needs_reconnect(
    client: httpx.AsyncClient,
    alice: Tenant,
    alice_browser: Browser,
    factory: sessionmaker[Session],
) -> None:
    api = Api(client, alice)
    await api.connect("meta")
    await api.connect("google")  # refreshed by the service: no countdown
    expires = datetime.now(UTC) + timedelta(days=30, hours=2)
    with transaction(factory) as session:
        session.execute(update(PlatformConnection).values(token_expires_at=expires))
    page = (await alice_browser.get("/connections")).text
    assert 'data-testid="token-expiry">expires in 30 days<' in row_of(page, "meta")
    assert "token-expiry" not in row_of(page, "google")
    shown = (await api.call("GET", "/api/v1/connections/meta")).json()
    assert (shown["expires_in_days"], shown["status"]) == (30, "connected")
    assert shown["token_expires_at"].startswith(expires.isoformat()[:19])
    google = (await api.call("GET", "/api/v1/connections/google")).json()
    assert google["expires_in_days"] is None
    with transaction(factory) as session:
        session.execute(
            update(PlatformConnection)
            .where(PlatformConnection.platform == "meta")
            .values(token_expires_at=datetime.now(UTC) - timedelta(days=1))
        )
    page = (await alice_browser.get("/connections")).text
    assert status_of(page, "meta") == "needs reconnect"
    assert "access token expired on" in row_of(page, "meta")
    assert "token-expiry" not in row_of(page, "meta")
    assert (await api.call("GET", "/api/v1/connections/meta")).json()["status"] == (
        "needs_reconnect"
    )
