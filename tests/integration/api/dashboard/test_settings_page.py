"""The Settings page: feature flags (the operator's shown disabled), API keys (a new one shown
once; revoke after a confirmation, signing out when it is the session's own); CSRF, isolation."""

from __future__ import annotations

import re

import httpx
import pytest
from fastapi import FastAPI

from audience_sync.config import FeatureFlag, FeatureFlags

from ..conftest import Api, Tenant, context
from .conftest import Browser

pytestmark = pytest.mark.parametrize("engine", ["sqlite"], indirect=True)

NEW_KEY = re.compile(r'<code data-testid="new-api-key">([^<]+)</code>')


def checkbox(page: str, flag: str) -> str:
    found = re.search(rf'<input type="checkbox"[^>]*name="{flag}"[^>]*>', page)
    assert found is not None, flag
    return found.group(0)


async def test_flags_are_shown_and_saved_for_this_account(
    client: httpx.AsyncClient, alice: Tenant, alice_browser: Browser
) -> None:
    page = (await alice_browser.get("/settings")).text
    assert 'data-testid="flags-form"' in page
    assert " checked" in checkbox(page, "audience_export")
    every_but_export = {flag.value: "on" for flag in FeatureFlag if flag.value != "audience_export"}
    saved = await alice_browser.post("/settings/flags", every_but_export)
    assert saved.status_code == 303
    flags = (await Api(client, alice).call("GET", "/api/v1/feature-flags")).json()["flags"]
    assert flags["audience_export"] == {"enabled": False, "source": "tenant"}
    assert flags["audience_sync"] == {"enabled": True, "source": "default"}  # no override
    page = (await alice_browser.get("/settings?done=flags")).text
    assert " checked" not in checkbox(page, "audience_export")
    assert "Feature flags saved." in page


async def test_a_flag_the_operator_turned_off_is_disabled_with_why_and_stays_off(
    app: FastAPI, client: httpx.AsyncClient, alice: Tenant, alice_browser: Browser
) -> None:
    context(app).settings.feature_flags = FeatureFlags(audience_export=False)
    page = (await alice_browser.get("/settings")).text
    box = checkbox(page, "audience_export")
    assert " disabled" in box
    assert " checked" not in box
    assert 'aria-describedby="flag-audience_export-why"' in box
    assert "Turned off by the operator" in page
    forged = await alice_browser.post("/settings/flags", {"audience_export": "on"})
    assert forged.status_code == 303
    flags = (await Api(client, alice).call("GET", "/api/v1/feature-flags")).json()["flags"]
    assert flags["audience_export"] == {"enabled": False, "source": "operator"}


async def test_a_new_key_is_shown_once_and_works(
    client: httpx.AsyncClient, alice_browser: Browser
) -> None:
    made = await alice_browser.post("/settings/keys", {"name": "reporting <script>"})
    assert made.status_code == 200
    keys = NEW_KEY.findall(made.text)
    assert len(keys) == 1
    key = keys[0]
    assert made.text.count(key) == 1
    assert "copy it now, it is not shown again" in made.text
    assert "reporting &lt;script&gt;" in made.text
    answer = await client.get("/api/v1/segments", headers={"Authorization": f"Bearer {key}"})
    assert answer.status_code == 200
    for url in ("/settings", "/audiences", "/segments", "/connections"):
        assert key not in (await alice_browser.get(url)).text, url
    page = (await alice_browser.get("/settings")).text
    assert f"<code>{key[:10]}…</code>" in page  # its prefix only


async def test_a_key_needs_a_name_beside_the_field(alice_browser: Browser) -> None:
    refused = await alice_browser.post("/settings/keys", {"name": "  "})
    assert refused.status_code == 422
    assert 'aria-invalid="true" aria-describedby="key-name-error"' in refused.text
    assert 'id="key-name-error"' in refused.text
    assert 'data-testid="new-api-key"' not in refused.text


async def test_revoking_another_key_asks_first_then_refuses_it(
    client: httpx.AsyncClient, alice_browser: Browser
) -> None:
    made = await alice_browser.post("/settings/keys", {"name": "script"})
    key = NEW_KEY.findall(made.text)[0]
    asked = await alice_browser.post("/settings/keys/revoke", {"prefix": key[:10]})
    assert asked.status_code == 200
    assert 'data-testid="confirm-revoke"' in asked.text
    assert 'data-testid="revoke-own-key"' not in asked.text
    headers = {"Authorization": f"Bearer {key}"}
    assert (await client.get("/api/v1/segments", headers=headers)).status_code == 200
    done = await alice_browser.post("/settings/keys/revoke", {"prefix": key[:10], "confirm": "yes"})
    assert done.status_code == 303
    assert (await client.get("/api/v1/segments", headers=headers)).status_code == 401
    page = (await alice_browser.get("/settings?done=revoked")).text
    assert "The key was revoked." in page
    row = re.search(rf'data-prefix="{key[:10]}".*?</tr>', page, re.S)
    assert row is not None
    assert "revoked" in row.group(0)
    assert 'data-testid="revoke-key"' not in row.group(0)


async def test_revoking_the_sessions_own_key_warns_then_signs_out(
    alice: Tenant, alice_browser: Browser
) -> None:
    asked = await alice_browser.post("/settings/keys/revoke", {"prefix": alice.key[:10]})
    assert 'data-testid="revoke-own-key"' in asked.text
    assert "signs you out" in asked.text
    done = await alice_browser.post(
        "/settings/keys/revoke", {"prefix": alice.key[:10], "confirm": "yes"}
    )
    assert done.status_code == 303
    assert done.headers["location"] == "/login"
    assert (await alice_browser.get("/settings")).status_code == 303  # to the sign-in page


async def test_another_tenants_key_is_neither_listed_nor_revocable(
    client: httpx.AsyncClient, bob: Tenant, alice_browser: Browser
) -> None:
    page = (await alice_browser.get("/settings")).text
    assert bob.key[:10] not in page
    for form in ({"prefix": bob.key[:10]}, {"prefix": bob.key[:10], "confirm": "yes"}, {}):
        assert (await alice_browser.post("/settings/keys/revoke", form)).status_code == 404
    assert (await Api(client, bob).call("GET", "/api/v1/segments")).status_code == 200


async def test_settings_actions_need_the_csrf_token(
    client: httpx.AsyncClient, alice: Tenant, alice_browser: Browser
) -> None:
    raw = alice_browser.client
    assert (await raw.post("/settings/flags", data={})).status_code == 403
    assert (await raw.post("/settings/keys", data={"name": "x"})).status_code == 403
    revoke = {"prefix": alice.key[:10], "confirm": "yes"}
    assert (await raw.post("/settings/keys/revoke", data=revoke)).status_code == 403
    flags = (await Api(client, alice).call("GET", "/api/v1/feature-flags")).json()["flags"]
    assert all(state["enabled"] for state in flags.values())
    assert (await Api(client, alice).call("GET", "/api/v1/segments")).status_code == 200
