"""Connecting by OAuth against the in-process sandbox, at HTTP level: the dashboard's Connect
button → the platform's consent page → Allow → our callback → connected, with expiry, scopes and
the ad accounts; every refused callback; the connection test's reasons; revocation on
disconnect; and no token in any page, response or log record."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography.fernet import Fernet
from fastapi import FastAPI
from sqlalchemy.orm import Session, sessionmaker

from audience_sync.config import Settings
from audience_sync.crypto import CredentialCipher
from audience_sync.domain.models import SyncPlatform
from audience_sync.store.db import transaction
from audience_sync.store.repositories import ConnectionRepository
from audience_sync.sync.context import SyncService
from audience_sync.testing.support import SANDBOX_URL

from ..conftest import Api, Tenant, connection_body
from .conftest import Browser, browser_for

PUBLIC = "http://127.0.0.1:8000"  # a loopback address: the sandbox's demo apps accept it
PLATFORMS = ("meta", "google", "tiktok", "snapchat")
DATA_MANAGER = "https://www.googleapis.com/auth/datamanager"
ADWORDS = "https://www.googleapis.com/auth/adwords"


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    """The API tests' settings, with the sandbox's demo OAuth apps and every platform address
    (consent pages, token endpoints, APIs) on the in-process sandbox."""
    sandbox = SANDBOX_URL
    apps: dict[str, Any] = {}
    for name in PLATFORMS:
        apps[f"{name}_client_id"] = f"sandbox-{name}-app"
        apps[f"{name}_client_secret"] = f"sandbox-{name}-secret"
    return Settings(
        environment="test",
        var_dir=tmp_path,
        secret_key=Fernet.generate_key().decode(),
        max_removal_share=1.0,
        allow_connection_base_url=True,
        public_url=PUBLIC,
        google_developer_token="demo-developer-token",
        meta_authorize_url=f"{sandbox}/meta/v26.0/dialog/oauth",
        meta_token_url=f"{sandbox}/meta/v26.0/oauth/access_token",
        google_authorize_url=f"{sandbox}/google/o/oauth2/v2/auth",
        google_token_url=f"{sandbox}/google/token",
        google_revoke_url=f"{sandbox}/google/revoke",
        tiktok_authorize_url=f"{sandbox}/tiktok/portal/auth",
        tiktok_token_url=f"{sandbox}/tiktok/open_api/v1.3/oauth2/access_token/",
        snapchat_authorize_url=f"{sandbox}/snapchat/login/oauth2/authorize",
        snapchat_token_url=f"{sandbox}/snapchat/login/oauth2/access_token",
        meta_base_url=f"{sandbox}/meta/v26.0",
        google_base_url=f"{sandbox}/google/v1",
        google_ads_base_url=f"{sandbox}/googleads/v26",
        tiktok_base_url=f"{sandbox}/tiktok/open_api/v1.3",
        snapchat_base_url=f"{sandbox}/snapchat/v1",
        **apps,
    )


@pytest.fixture(autouse=True)
def wired(service: SyncService, sandbox: FastAPI) -> None:
    """The code exchanges reach the sandbox too (as the connectors already do)."""
    service.http_transport = lambda: httpx.ASGITransport(app=sandbox)


@pytest.fixture
async def platform_browser(sandbox: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    """The person's browser on the platform's pages (the sandbox)."""
    transport = httpx.ASGITransport(app=sandbox)
    async with httpx.AsyncClient(transport=transport, base_url=SANDBOX_URL) as client:
        yield client


async def consent(platform_browser: httpx.AsyncClient, url: str, decision: str = "allow") -> str:
    """Open the authorization URL, press Allow (or Deny): our callback's path and query."""
    page = await platform_browser.get(url)
    assert page.status_code == 200, page.text
    assert ">Allow</button>" in page.text
    answer = await platform_browser.post(url, data={"decision": decision})
    assert answer.status_code == 302, answer.text
    back = httpx.URL(answer.headers["location"])
    assert str(back).startswith(PUBLIC + "/oauth/")
    return back.raw_path.decode()


async def start(browser: Browser, platform: str) -> str:
    started = await browser.post(f"/connections/{platform}/authorize")
    assert started.status_code == 303, started.text
    url: str = started.headers["location"]
    assert url.startswith(SANDBOX_URL)
    return url


async def connect(browser: Browser, platform_browser: httpx.AsyncClient, platform: str) -> str:
    """The whole flow from the Connections page; the page we land on."""
    back = await consent(platform_browser, await start(browser, platform))
    landed = await browser.get(back)
    assert landed.status_code == 303, landed.text
    assert landed.headers["location"] == f"/connections?connected={platform}"
    page = await browser.get(landed.headers["location"])
    assert page.status_code == 200
    return page.text


def stored_token(factory: sessionmaker[Session], cipher: CredentialCipher, tenant: Tenant) -> Any:
    with transaction(factory) as session:
        repo = ConnectionRepository(session, tenant.id, cipher)
        return {
            p: repo.credentials(SyncPlatform(p)) for p in PLATFORMS if repo.find(SyncPlatform(p))
        }


LIFETIMES = {
    "meta": timedelta(days=60),
    "google": timedelta(hours=1),
    "snapchat": timedelta(minutes=30),
}


@pytest.mark.parametrize("platform", PLATFORMS)
async def test_each_platform_connects_by_oauth_with_expiry_scopes_and_ad_accounts(
    platform: str,
    client: httpx.AsyncClient,
    alice: Tenant,
    alice_browser: Browser,
    platform_browser: httpx.AsyncClient,
    service: SyncService,
    factory: sessionmaker[Session],
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    before = datetime.now(UTC)
    page = await connect(alice_browser, platform_browser, platform)
    assert f'data-testid="ad-accounts-{platform}"' in page
    assert page.count('data-testid="ad-account-option"') == 2
    assert 'value="1234567890"' in page  # the first account reached is the connection's
    api = Api(client, alice)
    listed = (await api.call("GET", "/api/v1/connections")).json()
    (connection,) = [c for c in listed if c["platform"] == platform]
    assert connection["ad_account_id"] == "1234567890"
    assert connection["scopes"]
    if platform in LIFETIMES:
        expires = datetime.fromisoformat(connection["token_expires_at"])
        assert abs(expires - (before + LIFETIMES[platform])) < timedelta(minutes=2)
    else:  # TikTok's advertiser tokens do not expire
        assert connection["token_expires_at"] is None
    if platform == "google":
        assert set(connection["scopes"]) == {DATA_MANAGER, ADWORDS}
    if platform == "meta":
        assert "ads_management" in connection["scopes"]
    accounts = (await api.call("GET", f"/api/v1/connections/{platform}/ad-accounts")).json()
    assert accounts[0]["id"] == "1234567890"
    assert len(accounts) == 2
    tested = (await api.call("POST", f"/api/v1/connections/{platform}/test")).json()
    assert tested["ok"] is True, tested
    # No token anywhere: pages, answers, log records.
    token = stored_token(factory, service.cipher, alice)[platform]["access_token"]
    for shown in (page, str(listed), str(accounts), str(tested), caplog.text):
        assert token not in shown


async def test_the_picker_sets_the_connections_ad_account(
    client: httpx.AsyncClient,
    alice: Tenant,
    alice_browser: Browser,
    platform_browser: httpx.AsyncClient,
    sandbox: FastAPI,
) -> None:
    await connect(alice_browser, platform_browser, "meta")
    accounts = await Api(client, alice).call("GET", "/api/v1/connections/meta/ad-accounts")
    other = accounts.json()[1]["id"]
    chosen = await alice_browser.post("/connections/meta/ad-account", {"ad_account_id": other})
    assert chosen.status_code == 303
    got = (await Api(client, alice).call("GET", "/api/v1/connections/meta")).json()
    assert got["ad_account_id"] == other
    unknown = await alice_browser.post("/connections/meta/ad-account", {"ad_account_id": "999"})
    assert unknown.status_code == 422
    assert "This token does not reach that ad account." in unknown.text


async def test_an_oauth_connection_then_syncs_an_audience(
    app: FastAPI,
    client: httpx.AsyncClient,
    alice: Tenant,
    alice_browser: Browser,
    platform_browser: httpx.AsyncClient,
) -> None:
    await connect(alice_browser, platform_browser, "meta")
    api = Api(client, alice)
    segment = await api.segment("VIP", profiles=5)
    audience = await api.audience(segment)
    from ..conftest import context

    await context(app).launcher.drain()
    got = (await api.call("GET", f"/api/v1/audiences/{audience['id']}")).json()
    assert got["platform_audience_id"], got


async def test_a_flow_started_from_the_api_connects_the_keys_tenant(
    client: httpx.AsyncClient, alice: Tenant, platform_browser: httpx.AsyncClient, app: FastAPI
) -> None:
    api = Api(client, alice)
    started = await api.call("POST", "/api/v1/connections/snapchat/authorize")
    assert started.status_code == 200, started.text
    back = await consent(platform_browser, started.json()["authorization_url"])
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url=PUBLIC) as anyone:
        landed = await anyone.get(back)  # a browser not signed in to the dashboard
    assert landed.status_code == 303
    got = (await api.call("GET", "/api/v1/connections/snapchat")).json()
    assert got["ad_account_id"] == "1234567890"
    assert got["credentials"]["refresh_token"].startswith("****")


async def refused(browser: Browser | httpx.AsyncClient, back: str) -> str:
    answer = await browser.get(back)
    assert answer.status_code == 400, answer.text
    assert 'data-testid="oauth-refused"' in answer.text
    return answer.text


async def test_a_state_we_did_not_start_is_refused(alice_browser: Browser) -> None:
    page = await refused(alice_browser, "/oauth/meta/callback?code=abc&state=made-up")
    assert "not one we started" in page
    page = await refused(alice_browser, "/oauth/meta/callback?code=abc")
    assert "not one we started" in page


async def test_a_used_state_is_refused(
    alice_browser: Browser, platform_browser: httpx.AsyncClient
) -> None:
    back = await consent(platform_browser, await start(alice_browser, "google"))
    assert (await alice_browser.get(back)).status_code == 303
    assert "was used already" in await refused(alice_browser, back)


async def test_a_state_for_another_platform_is_refused(
    alice_browser: Browser, platform_browser: httpx.AsyncClient
) -> None:
    back = await consent(platform_browser, await start(alice_browser, "meta"))
    assert "not one we started" in await refused(alice_browser, back.replace("/meta/", "/tiktok/"))


async def test_a_state_from_another_session_or_tenant_is_refused(
    app: FastAPI,
    client: httpx.AsyncClient,
    alice: Tenant,
    alice_browser: Browser,
    bob_browser: Browser,
    platform_browser: httpx.AsyncClient,
) -> None:
    back = await consent(platform_browser, await start(alice_browser, "meta"))
    assert "another browser session" in await refused(bob_browser, back)
    async for second in browser_for(app, alice):  # alice again, in another session
        assert "another browser session" in await refused(second, back)
    # A flow started with alice's key, finished in bob's signed-in browser.
    started = await Api(client, alice).call("POST", "/api/v1/connections/meta/authorize")
    back = await consent(platform_browser, started.json()["authorization_url"])
    assert "another account" in await refused(bob_browser, back)
    listed = (await Api(client, alice).call("GET", "/api/v1/connections")).json()
    assert listed == []  # nobody was connected by the refused callbacks


async def test_a_refused_stranger_does_not_spend_the_owners_flow(
    alice_browser: Browser, bob_browser: Browser, platform_browser: httpx.AsyncClient
) -> None:
    back = await consent(platform_browser, await start(alice_browser, "tiktok"))
    assert "another browser session" in await refused(bob_browser, back)
    assert (await alice_browser.get(back)).status_code == 303


async def test_an_expired_state_is_refused(
    alice_browser: Browser, platform_browser: httpx.AsyncClient, service: SyncService
) -> None:
    back = await consent(platform_browser, await start(alice_browser, "meta"))
    later = datetime.now(UTC) + timedelta(seconds=service.settings.oauth_state_ttl_seconds + 1)
    service.clock = lambda: later
    assert "has expired" in await refused(alice_browser, back)


async def test_deny_on_the_platforms_page_is_said_in_plain_words(
    client: httpx.AsyncClient,
    alice: Tenant,
    alice_browser: Browser,
    platform_browser: httpx.AsyncClient,
) -> None:
    for platform in ("meta", "google"):
        url = await start(alice_browser, platform)
        back = await consent(platform_browser, url, decision="deny")
        page = await refused(alice_browser, back)
        assert "access was denied" in page
        assert "choose Allow" in page
    assert (await Api(client, alice).call("GET", "/api/v1/connections")).json() == []


async def test_a_redirect_uri_the_app_did_not_register_never_comes_back(
    alice_browser: Browser, platform_browser: httpx.AsyncClient
) -> None:
    app = {
        "client_secret": "sandbox-meta-secret",
        "redirect_uris": ["https://elsewhere/cb"],
        "allow_loopback": False,
    }
    put = await platform_browser.put("/_sandbox/oauth/apps/meta/sandbox-meta-app", json=app)
    assert put.status_code in (200, 201), put.text
    page = await platform_browser.get(await start(alice_browser, "meta"))
    assert page.status_code == 400  # the platform's error page: never a redirect to us
    assert "URL Blocked" in page.text


async def test_a_code_the_platform_refuses_is_said_plainly(
    alice_browser: Browser, platform_browser: httpx.AsyncClient
) -> None:
    back = await consent(platform_browser, await start(alice_browser, "snapchat"))
    tampered = back.replace("code=", "code=x")
    page = await refused(alice_browser, tampered)
    assert "Snapchat refused to finish the connection: invalid_grant" in page


async def test_an_unconfigured_platform_cannot_start_a_flow(
    client: httpx.AsyncClient, alice: Tenant, service: SyncService, alice_browser: Browser
) -> None:
    service.settings.tiktok_client_id = ""
    answer = await Api(client, alice).call("POST", "/api/v1/connections/tiktok/authorize")
    assert answer.status_code == 422
    assert "AUDIENCE_SYNC_TIKTOK_CLIENT_ID" in answer.text
    page = (await alice_browser.get("/connections")).text
    assert 'data-testid="oauth-connect-tiktok"' not in page
    assert 'data-testid="oauth-connect-meta"' in page


# --- the connection test's reasons -------------------------------------------------------


async def test_saving_a_wrong_token_says_the_test_failed(
    client: httpx.AsyncClient, alice: Tenant
) -> None:
    body = connection_body("meta")
    body["credentials"] = {"access_token": "WRONG-token"}
    put = await Api(client, alice).call("PUT", "/api/v1/connections/meta", json=body)
    assert put.status_code == 200
    assert put.json()["test"]["reason"] == "bad_token"
    assert "WRONG-token" not in put.text


async def test_an_expired_token_is_named_expired(
    client: httpx.AsyncClient,
    alice: Tenant,
    alice_browser: Browser,
    platform_browser: httpx.AsyncClient,
) -> None:
    await connect(alice_browser, platform_browser, "meta")
    await platform_browser.post("/_sandbox/clock", json={"advance_seconds": 61 * 86400})
    tested = (await Api(client, alice).call("POST", "/api/v1/connections/meta/test")).json()
    assert tested["reason"] == "expired", tested


async def test_a_missing_scope_is_named(
    client: httpx.AsyncClient,
    alice: Tenant,
    alice_browser: Browser,
    platform_browser: httpx.AsyncClient,
) -> None:
    """The person granted only the Data Manager scope (Google's granular consent), on a
    reconnect: the connection keeps its account, and the test names the missing scope."""
    api = Api(client, alice)
    await api.connect("google")
    url = httpx.URL(await start(alice_browser, "google"))
    narrowed = str(url.copy_set_param("scope", DATA_MANAGER))
    back = await consent(platform_browser, narrowed)
    assert (await alice_browser.get(back)).status_code == 303
    got = (await api.call("GET", "/api/v1/connections/google")).json()
    assert got["scopes"] == [DATA_MANAGER]
    tested = (await api.call("POST", "/api/v1/connections/google/test")).json()
    assert tested["reason"] == "missing_scope"
    assert ADWORDS in tested["message"]


async def test_a_first_connection_whose_accounts_cannot_be_listed_is_refused_plainly(
    alice_browser: Browser, platform_browser: httpx.AsyncClient
) -> None:
    url = httpx.URL(await start(alice_browser, "google"))
    back = await consent(platform_browser, str(url.copy_set_param("scope", DATA_MANAGER)))
    page = await refused(alice_browser, back)
    assert "Google authorized the connection but refused to list its ad accounts" in page


async def test_an_account_the_token_does_not_reach_is_named(
    client: httpx.AsyncClient,
    alice: Tenant,
    alice_browser: Browser,
    platform_browser: httpx.AsyncClient,
) -> None:
    for platform in ("meta", "tiktok", "snapchat"):
        await connect(alice_browser, platform_browser, platform)
    for platform in ("meta", "tiktok", "snapchat"):
        moved = {"accounts": ["5550000001"]}
        await platform_browser.put(f"/_sandbox/oauth/accounts/{platform}", json=moved)
        tested = await Api(client, alice).call("POST", f"/api/v1/connections/{platform}/test")
        assert tested.json()["reason"] == "unknown_ad_account", (platform, tested.json())


# --- disconnect revokes -------------------------------------------------------------------


async def test_disconnect_revokes_the_token_at_the_platform(
    client: httpx.AsyncClient,
    alice: Tenant,
    alice_browser: Browser,
    platform_browser: httpx.AsyncClient,
    service: SyncService,
    factory: sessionmaker[Session],
) -> None:
    for platform in ("meta", "google", "tiktok"):
        await connect(alice_browser, platform_browser, platform)
    tokens = stored_token(factory, service.cipher, alice)
    reads = {
        "meta": ("/meta/v26.0/me", {"Authorization": f"Bearer {tokens['meta']['access_token']}"}),
        "google": (
            "/googleads/v26/customers:listAccessibleCustomers",
            {
                "Authorization": f"Bearer {tokens['google']['access_token']}",
                "developer-token": "d",
            },
        ),
        "tiktok": (
            "/tiktok/open_api/v1.3/advertiser/info/?advertiser_ids=%5B%221234567890%22%5D",
            {"Access-Token": tokens["tiktok"]["access_token"]},
        ),
    }
    for platform, (path, headers) in reads.items():
        before = await platform_browser.get(path, headers=headers)
        assert before.status_code == 200, platform
        assert before.json().get("code", 0) == 0, platform
    meta = await alice_browser.post("/connections/meta/disconnect", {"confirm": "yes"})
    assert meta.status_code == 303
    api = Api(client, alice)
    for platform in ("google", "tiktok"):
        gone = await api.call("DELETE", f"/api/v1/connections/{platform}")
        assert gone.status_code == 204
    for platform, (path, headers) in reads.items():
        after = await platform_browser.get(path, headers=headers)
        refused_now = after.status_code in (400, 401) or after.json().get("code") == 40105
        assert refused_now, (platform, after.status_code, after.text)
    assert (await api.call("GET", "/api/v1/connections")).json() == []


async def test_starting_a_flow_and_choosing_an_account_need_the_csrf_token(
    alice_browser: Browser,
) -> None:
    raw = alice_browser.client
    assert (await raw.post("/connections/meta/authorize")).status_code == 403
    chosen = await raw.post("/connections/meta/ad-account", data={"ad_account_id": "1"})
    assert chosen.status_code == 403
    assert (await alice_browser.post("/connections/myspace/authorize")).status_code == 404
    assert (await alice_browser.get("/oauth/myspace/callback?state=x")).status_code == 404
