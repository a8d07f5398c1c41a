"""The sandbox's OAuth flows, driven as an app and a browser drive them: the consent page, Allow
and Deny, the code exchange, refresh, revocation, expiry on the sandbox clock, and every refusal
as each platform words it (docs/connections.md)."""

from __future__ import annotations

import base64
import hashlib
from typing import Any

import httpx
import pytest

CALLBACK = "http://127.0.0.1:8000/api/v1/connections/callback"
VERIFIER = "v" * 43 + "-verifier"
CHALLENGE = base64.urlsafe_b64encode(hashlib.sha256(VERIFIER.encode()).digest()).rstrip(b"=")
GOOGLE_SCOPES = (
    "https://www.googleapis.com/auth/datamanager https://www.googleapis.com/auth/adwords"
)
DM = "/google/v1/accountTypes/GOOGLE_ADS/accounts/1234567890/userLists"
META = "/meta/v26.0"
TIKTOK = "/tiktok/open_api/v1.3"
SNAP = "/snapchat/v1"

AUTHORIZE = {
    "meta": (f"{META}/dialog/oauth", "client_id"),
    "google": ("/google/o/oauth2/v2/auth", "client_id"),
    "tiktok": ("/tiktok/portal/auth", "app_id"),
    "snapchat": ("/snapchat/login/oauth2/authorize", "client_id"),
}


def request_params(platform: str, **extra: str) -> dict[str, str]:
    _, client_param = AUTHORIZE[platform]
    params = {client_param: f"sandbox-{platform}-app", "redirect_uri": CALLBACK, "state": "st-1"}
    if platform in ("google", "snapchat"):
        params["response_type"] = "code"
    if platform == "google":
        params.update(scope=GOOGLE_SCOPES, access_type="offline")
    if platform == "snapchat":
        params["scope"] = "snapchat-marketing-api"
    if platform == "meta":
        params["scope"] = "ads_management,business_management"
    return {**params, **extra}


async def decide(
    client: httpx.AsyncClient, platform: str, decision: str = "allow", **extra: str
) -> dict[str, str]:
    """Click a button of the consent page; the query the platform redirects back with."""
    path, _ = AUTHORIZE[platform]
    response = await client.post(
        path, data={**request_params(platform, **extra), "decision": decision}
    )
    assert response.status_code == 302
    location = httpx.URL(response.headers["location"])
    assert str(location).startswith(CALLBACK)
    return dict(location.params)


async def google_code(client: httpx.AsyncClient, **extra: str) -> str:
    return (await decide(client, "google", **extra))["code"]


def google_exchange(code: str, **extra: str) -> dict[str, str]:
    return {
        "grant_type": "authorization_code",
        "code": code,
        "client_id": "sandbox-google-app",
        "client_secret": "sandbox-google-secret",
        "redirect_uri": CALLBACK,
        **extra,
    }


async def advance(client: httpx.AsyncClient, seconds: float) -> None:
    await client.post("/_sandbox/clock", json={"advance_seconds": seconds})


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


# --- every platform -------------------------------------------------------------------------


@pytest.mark.parametrize("platform", ["meta", "google", "tiktok", "snapchat"])
async def test_the_authorize_page_names_the_app_and_scopes_and_has_allow_and_deny(
    client: httpx.AsyncClient, platform: str
) -> None:
    path, _ = AUTHORIZE[platform]
    page = await client.get(path, params=request_params(platform))
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    assert ">Allow</button>" in page.text
    assert ">Deny</button>" in page.text
    assert "Audience Sync (sandbox demo)" in page.text
    assert "<form method='post'>" in page.text


@pytest.mark.parametrize("platform", ["meta", "google", "tiktok", "snapchat"])
async def test_allow_redirects_back_with_a_code_and_the_state(
    client: httpx.AsyncClient, platform: str
) -> None:
    back = await decide(client, platform)
    assert back["state"] == "st-1"
    assert back["auth_code" if platform == "tiktok" else "code"]


@pytest.mark.parametrize("platform", ["meta", "google", "tiktok", "snapchat"])
async def test_a_redirect_uri_not_registered_gets_an_error_page_not_a_redirect(
    client: httpx.AsyncClient, platform: str
) -> None:
    path, _ = AUTHORIZE[platform]
    params = request_params(platform, redirect_uri="https://evil.example/callback")
    for response in (
        await client.get(path, params=params),
        await client.post(path, data={**params, "decision": "allow"}),
    ):
        assert response.status_code == 400
        assert "location" not in response.headers


@pytest.mark.parametrize("platform", ["meta", "google", "tiktok", "snapchat"])
async def test_an_unknown_app_gets_an_error_page(client: httpx.AsyncClient, platform: str) -> None:
    path, client_param = AUTHORIZE[platform]
    page = await client.get(path, params=request_params(platform, **{client_param: "nobody"}))
    assert page.status_code == 401
    assert "Allow" not in page.text


async def test_deny_sends_each_platforms_error_parameters(client: httpx.AsyncClient) -> None:
    meta = await decide(client, "meta", "deny")
    assert meta == {
        "error_reason": "user_denied",
        "error": "access_denied",
        "error_description": "Permissions error.",
        "state": "st-1",
    }
    for platform in ("google", "tiktok", "snapchat"):
        assert await decide(client, platform, "deny") == {"error": "access_denied", "state": "st-1"}


async def test_the_fixed_sandbox_tokens_still_work_everywhere(client: httpx.AsyncClient) -> None:
    """The whole suite uses `sandbox-token`: OAuth apps, revocation and deauthorization leave
    it alone."""
    await client.post("/google/revoke", data={"token": "sandbox-token"})
    await client.delete(f"{META}/me/permissions", params={"access_token": "sandbox-token"})
    meta = await client.get(
        f"{META}/act_1/customaudiences", params={"access_token": "sandbox-token"}
    )
    assert meta.status_code == 200
    google = await client.get(DM, headers=bearer("sandbox-token"))
    assert google.status_code == 200
    tiktok = await client.get(
        f"{TIKTOK}/dmp/custom_audience/list/",
        params={"advertiser_id": "1"},
        headers={"Access-Token": "sandbox-token"},
    )
    assert tiktok.json()["code"] == 0
    snap = await client.get(f"{SNAP}/adaccounts/acc/segments", headers=bearer("sandbox-token"))
    assert snap.status_code == 200
    refreshed = await client.post(
        "/google/token",
        data={
            "grant_type": "refresh_token",
            "client_id": "anything",
            "client_secret": "anything",
            "refresh_token": "sandbox-refresh-token",
        },
    )
    assert refreshed.status_code == 200


# --- Google ---------------------------------------------------------------------------------


async def test_google_code_exchange_gives_tokens_the_apis_accept(client: httpx.AsyncClient) -> None:
    code = await google_code(
        client, code_challenge=CHALLENGE.decode(), code_challenge_method="S256"
    )
    response = await client.post(
        "/google/token", data=google_exchange(code, code_verifier=VERIFIER)
    )
    body = response.json()
    assert response.status_code == 200
    assert body["token_type"] == "Bearer"
    assert body["expires_in"] == 3600
    assert body["scope"] == GOOGLE_SCOPES
    assert body["refresh_token"]
    assert (await client.get(DM, headers=bearer(body["access_token"]))).status_code == 200
    customers = await client.get(
        "/googleads/v26/customers:listAccessibleCustomers",
        headers={**bearer(body["access_token"]), "developer-token": "dev"},
    )
    assert customers.json() == {"resourceNames": ["customers/1234567890", "customers/2345678901"]}


async def test_google_client_credentials_may_come_as_http_basic(client: httpx.AsyncClient) -> None:
    code = await google_code(client)
    form = google_exchange(code)
    del form["client_id"], form["client_secret"]
    response = await client.post(
        "/google/token", data=form, auth=("sandbox-google-app", "sandbox-google-secret")
    )
    assert response.status_code == 200


async def test_google_refuses_a_reused_or_expired_code(client: httpx.AsyncClient) -> None:
    code = await google_code(client)
    assert (await client.post("/google/token", data=google_exchange(code))).status_code == 200
    again = await client.post("/google/token", data=google_exchange(code))
    assert (again.status_code, again.json()) == (
        400,
        {"error": "invalid_grant", "error_description": "Bad Request"},
    )
    late = await google_code(client)
    await advance(client, 601)
    expired = await client.post("/google/token", data=google_exchange(late))
    assert expired.json()["error"] == "invalid_grant"


async def test_google_refuses_another_redirect_uri(client: httpx.AsyncClient) -> None:
    code = await google_code(client)
    response = await client.post(
        "/google/token", data=google_exchange(code, redirect_uri="http://127.0.0.1:9/other")
    )
    assert (response.status_code, response.json()["error"]) == (400, "redirect_uri_mismatch")


async def test_google_refuses_a_bad_secret_and_an_unknown_client(client: httpx.AsyncClient) -> None:
    code = await google_code(client)
    bad = await client.post("/google/token", data=google_exchange(code, client_secret="wrong"))
    assert (bad.status_code, bad.json()) == (
        401,
        {"error": "invalid_client", "error_description": "Unauthorized"},
    )
    unknown = await client.post("/google/token", data=google_exchange(code, client_id="nobody"))
    assert (unknown.status_code, unknown.json()["error_description"]) == (
        401,
        "The OAuth client was not found.",
    )
    # Refused exchanges do not spend the code.
    assert (await client.post("/google/token", data=google_exchange(code))).status_code == 200


async def test_google_pkce_needs_the_right_verifier(client: httpx.AsyncClient) -> None:
    pkce = {"code_challenge": CHALLENGE.decode(), "code_challenge_method": "S256"}
    missing = await client.post(
        "/google/token", data=google_exchange(await google_code(client, **pkce))
    )
    assert missing.json() == {
        "error": "invalid_grant",
        "error_description": "Missing code verifier.",
    }
    wrong = await client.post(
        "/google/token",
        data=google_exchange(await google_code(client, **pkce), code_verifier="w" * 43),
    )
    assert wrong.json() == {"error": "invalid_grant", "error_description": "Invalid code verifier."}


async def test_google_gives_a_refresh_token_on_first_consent_or_prompt_consent(
    client: httpx.AsyncClient,
) -> None:
    async def exchange(**extra: str) -> dict[str, Any]:
        code = await google_code(client, **extra)
        return dict((await client.post("/google/token", data=google_exchange(code))).json())

    assert "refresh_token" in await exchange()
    assert "refresh_token" not in await exchange()
    assert "refresh_token" in await exchange(prompt="consent")
    assert "refresh_token" not in await exchange(access_type="online", prompt="consent")


async def test_google_tokens_expire_on_the_clock_and_refresh(client: httpx.AsyncClient) -> None:
    tokens = (
        await client.post("/google/token", data=google_exchange(await google_code(client)))
    ).json()
    await advance(client, 3600)
    expired = await client.get(DM, headers=bearer(tokens["access_token"]))
    assert expired.status_code == 401
    assert expired.json()["error"]["details"][0]["reason"] == "ACCESS_TOKEN_EXPIRED"
    refreshed = await client.post(
        "/google/token",
        data={
            "grant_type": "refresh_token",
            "client_id": "sandbox-google-app",
            "client_secret": "sandbox-google-secret",
            "refresh_token": tokens["refresh_token"],
        },
    )
    body = refreshed.json()
    assert "refresh_token" not in body  # Google keeps the refresh token unchanged
    assert body["scope"] == GOOGLE_SCOPES
    assert (await client.get(DM, headers=bearer(body["access_token"]))).status_code == 200


async def test_google_refuses_a_refresh_token_of_another_app_or_unknown(
    client: httpx.AsyncClient,
) -> None:
    tokens = (
        await client.post("/google/token", data=google_exchange(await google_code(client)))
    ).json()
    await client.put(
        "/_sandbox/oauth/apps/google/other-app", json={"client_secret": "other-secret"}
    )
    form = {"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"]}
    other = await client.post(
        "/google/token", data={**form, "client_id": "other-app", "client_secret": "other-secret"}
    )
    assert other.json()["error"] == "invalid_grant"
    bad_secret = await client.post(
        "/google/token", data={**form, "client_id": "sandbox-google-app", "client_secret": "x"}
    )
    assert bad_secret.json()["error"] == "invalid_client"
    unknown = await client.post(
        "/google/token",
        data={**form, "refresh_token": "1//nope", "client_id": "c", "client_secret": "s"},
    )
    assert unknown.json() == {
        "error": "invalid_grant",
        "error_description": "Token has been expired or revoked.",
    }


async def test_google_revocation_ends_the_refresh_token_and_its_access_tokens(
    client: httpx.AsyncClient,
) -> None:
    tokens = (
        await client.post("/google/token", data=google_exchange(await google_code(client)))
    ).json()
    revoked = await client.post("/google/revoke", params={"token": tokens["refresh_token"]})
    assert revoked.status_code == 200
    refused = await client.get(DM, headers=bearer(tokens["access_token"]))
    assert refused.status_code == 401
    again = await client.post("/google/revoke", data={"token": tokens["refresh_token"]})
    assert (again.status_code, again.json()["error"]) == (400, "invalid_token")
    refresh = await client.post(
        "/google/token",
        data={
            "grant_type": "refresh_token",
            "client_id": "sandbox-google-app",
            "client_secret": "sandbox-google-secret",
            "refresh_token": tokens["refresh_token"],
        },
    )
    assert refresh.json()["error"] == "invalid_grant"


async def test_a_google_token_without_the_apis_scope_is_403_insufficient_scope(
    client: httpx.AsyncClient,
) -> None:
    code = await google_code(client, scope="https://www.googleapis.com/auth/adwords")
    token = (await client.post("/google/token", data=google_exchange(code))).json()["access_token"]
    refused = await client.get(DM, headers=bearer(token))
    assert refused.status_code == 403
    error = refused.json()["error"]
    assert error["status"] == "PERMISSION_DENIED"
    assert error["details"][0]["reason"] == "ACCESS_TOKEN_SCOPE_INSUFFICIENT"
    ads = await client.get(
        "/googleads/v26/customers:listAccessibleCustomers",
        headers={**bearer(token), "developer-token": "dev"},
    )
    assert ads.status_code == 200


async def test_google_revoking_an_access_token_revokes_its_refresh_token(
    client: httpx.AsyncClient,
) -> None:
    tokens = (
        await client.post("/google/token", data=google_exchange(await google_code(client)))
    ).json()
    assert (
        await client.post("/google/revoke", data={"token": tokens["access_token"]})
    ).status_code == 200
    refresh = await client.post(
        "/google/token",
        data={
            "grant_type": "refresh_token",
            "client_id": "sandbox-google-app",
            "client_secret": "sandbox-google-secret",
            "refresh_token": tokens["refresh_token"],
        },
    )
    assert refresh.json()["error"] == "invalid_grant"


# --- Meta -----------------------------------------------------------------------------------


def meta_exchange(code: str, **extra: str) -> dict[str, str]:
    return {
        "client_id": "sandbox-meta-app",
        "client_secret": "sandbox-meta-secret",
        "redirect_uri": CALLBACK,
        "code": code,
        **extra,
    }


async def meta_token(client: httpx.AsyncClient) -> str:
    code = (await decide(client, "meta"))["code"]
    response = await client.get(f"{META}/oauth/access_token", params=meta_exchange(code))
    return str(response.json()["access_token"])


def meta_error(response: httpx.Response) -> tuple[int, int | None, str]:
    error = response.json()["error"]
    return error["code"], error.get("error_subcode"), error["message"]


async def test_meta_code_then_long_lived_token_both_accepted(client: httpx.AsyncClient) -> None:
    code = (await decide(client, "meta"))["code"]
    short = (await client.get(f"{META}/oauth/access_token", params=meta_exchange(code))).json()
    assert short["token_type"] == "bearer"
    assert short["expires_in"] == 7200
    audiences = f"{META}/act_1234567890/customaudiences"
    ok = await client.get(audiences, params={"access_token": short["access_token"]})
    assert ok.status_code == 200
    long = await client.get(
        f"{META}/oauth/access_token",
        params={
            "grant_type": "fb_exchange_token",
            "client_id": "sandbox-meta-app",
            "client_secret": "sandbox-meta-secret",
            "fb_exchange_token": short["access_token"],
        },
    )
    assert long.json()["expires_in"] == 60 * 24 * 3600
    await advance(client, 7200)
    expired = await client.get(audiences, params={"access_token": short["access_token"]})
    assert meta_error(expired)[:2] == (190, 463)
    still = await client.get(audiences, params={"access_token": long.json()["access_token"]})
    assert still.status_code == 200
    await advance(client, 60 * 24 * 3600)
    gone = await client.get(audiences, params={"access_token": long.json()["access_token"]})
    assert meta_error(gone)[:2] == (190, 463)


async def test_meta_refuses_bad_codes_with_graph_subcodes(client: httpx.AsyncClient) -> None:
    exchange = f"{META}/oauth/access_token"
    code = (await decide(client, "meta"))["code"]
    mismatch = await client.get(exchange, params=meta_exchange(code, redirect_uri=CALLBACK + "/x"))
    assert meta_error(mismatch)[:2] == (100, 36008)
    assert (await client.get(exchange, params=meta_exchange(code))).status_code == 200
    reused = await client.get(exchange, params=meta_exchange(code))
    assert meta_error(reused) == (100, 36009, "This authorization code has been used.")
    late = (await decide(client, "meta"))["code"]
    await advance(client, 601)
    assert meta_error(await client.get(exchange, params=meta_exchange(late)))[:2] == (100, 36007)
    made_up = await client.get(exchange, params=meta_exchange("AQB-made-up"))
    assert meta_error(made_up)[:2] == (100, None)


async def test_meta_refuses_an_unknown_app_and_a_bad_secret(client: httpx.AsyncClient) -> None:
    code = (await decide(client, "meta"))["code"]
    exchange = f"{META}/oauth/access_token"
    unknown = await client.get(exchange, params=meta_exchange(code, client_id="123"))
    assert meta_error(unknown)[0] == 101
    bad = await client.get(exchange, params=meta_exchange(code, client_secret="wrong"))
    assert meta_error(bad) == (1, None, "Error validating client secret.")


async def test_meta_long_lived_exchange_checks_the_app(client: httpx.AsyncClient) -> None:
    token = await meta_token(client)
    await client.put("/_sandbox/oauth/apps/meta/999", json={"client_secret": "other"})
    params = {"grant_type": "fb_exchange_token", "fb_exchange_token": token}
    other = await client.get(
        f"{META}/oauth/access_token",
        params={**params, "client_id": "999", "client_secret": "other"},
    )
    assert meta_error(other)[0] == 190
    bad = await client.get(
        f"{META}/oauth/access_token",
        params={**params, "client_id": "sandbox-meta-app", "client_secret": "nope"},
    )
    assert meta_error(bad)[0] == 1


async def test_meta_pkce_flow(client: httpx.AsyncClient) -> None:
    pkce = {"code_challenge": CHALLENGE.decode(), "code_challenge_method": "S256"}
    exchange = f"{META}/oauth/access_token"
    code = (await decide(client, "meta", **pkce))["code"]
    wrong = await client.get(exchange, params=meta_exchange(code, code_verifier="x" * 43))
    assert meta_error(wrong)[0] == 100
    ok = await client.get(exchange, params=meta_exchange(code, code_verifier=VERIFIER))
    assert ok.status_code == 200


async def test_meta_discovery_and_deauthorization(client: httpx.AsyncClient) -> None:
    token = await meta_token(client)
    auth = {"access_token": token}
    accounts = (await client.get(f"{META}/me/adaccounts", params=auth)).json()["data"]
    assert [a["id"] for a in accounts] == ["act_1234567890", "act_2345678901"]
    account = await client.get(f"{META}/act_1234567890", params={**auth, "fields": "name,currency"})
    assert account.json() == {
        "id": "act_1234567890",
        "name": "Sandbox ad account 7890",
        "currency": "USD",
    }
    assert meta_error(await client.get(f"{META}/act_555", params=auth))[:2] == (100, 33)
    permissions = (await client.get(f"{META}/me/permissions", params=auth)).json()["data"]
    assert {p["permission"] for p in permissions} == {"ads_management", "business_management"}
    me = (await client.get(f"{META}/me", params=auth)).json()
    assert me["name"] == "Sandbox User"
    other = await client.delete(f"{META}/42/permissions", params=auth)
    assert meta_error(other)[:2] == (100, 33)
    gone = await client.delete(f"{META}/{me['id']}/permissions", params=auth)
    assert gone.json() == {"success": True}
    assert meta_error(await client.get(f"{META}/me", params=auth))[0] == 190


# --- TikTok ---------------------------------------------------------------------------------

TIKTOK_APP = {"app_id": "sandbox-tiktok-app", "secret": "sandbox-tiktok-secret"}


async def tiktok_exchange(client: httpx.AsyncClient, auth_code: str, **app: str) -> dict[str, Any]:
    body = {**TIKTOK_APP, **app, "auth_code": auth_code}
    response = await client.post(f"{TIKTOK}/oauth2/access_token/", json=body)
    assert response.status_code == 200
    return dict(response.json())


async def test_tiktok_auth_code_gives_a_token_that_never_expires(client: httpx.AsyncClient) -> None:
    auth_code = (await decide(client, "tiktok"))["auth_code"]
    answer = await tiktok_exchange(client, auth_code)
    assert answer["code"] == 0
    data = answer["data"]
    assert data["advertiser_ids"] == ["1234567890", "7400000000000000002"]
    await advance(client, 400 * 24 * 3600)
    listed = await client.get(
        f"{TIKTOK}/dmp/custom_audience/list/",
        params={"advertiser_id": "1234567890"},
        headers={"Access-Token": data["access_token"]},
    )
    assert listed.json()["code"] == 0


async def test_tiktok_refuses_reused_expired_and_foreign_codes(client: httpx.AsyncClient) -> None:
    auth_code = (await decide(client, "tiktok"))["auth_code"]
    bad_secret = await tiktok_exchange(client, auth_code, secret="wrong")
    assert bad_secret["code"] == 40001
    unknown_app = await tiktok_exchange(client, auth_code, app_id="nobody")
    assert unknown_app["code"] == 40001
    assert (await tiktok_exchange(client, auth_code))["code"] == 0
    reused = await tiktok_exchange(client, auth_code)
    assert (reused["code"], reused["message"]) == (40002, "auth_code has been used.")
    late = (await decide(client, "tiktok"))["auth_code"]
    await advance(client, 3600)
    expired = await tiktok_exchange(client, late)
    assert (expired["code"], expired["message"]) == (40002, "auth_code has expired.")


async def test_tiktok_discovery_and_revocation(client: httpx.AsyncClient) -> None:
    token = (await tiktok_exchange(client, (await decide(client, "tiktok"))["auth_code"]))["data"][
        "access_token"
    ]
    headers = {"Access-Token": token}
    advertisers = await client.get(
        f"{TIKTOK}/oauth2/advertiser/get/", params=TIKTOK_APP, headers=headers
    )
    assert [a["advertiser_id"] for a in advertisers.json()["data"]["list"]] == [
        "1234567890",
        "7400000000000000002",
    ]
    info = await client.get(
        f"{TIKTOK}/advertiser/info/", params={"advertiser_ids": '["1234567890"]'}, headers=headers
    )
    assert info.json()["data"]["list"][0]["status"] == "STATUS_ENABLE"
    foreign = await client.get(
        f"{TIKTOK}/advertiser/info/", params={"advertiser_ids": '["42"]'}, headers=headers
    )
    assert foreign.json()["code"] == 40001
    revoked = await client.post(
        f"{TIKTOK}/oauth2/revoke_token/", json={**TIKTOK_APP, "access_token": token}
    )
    assert revoked.json()["code"] == 0
    after = await client.get(f"{TIKTOK}/oauth2/advertiser/get/", params=TIKTOK_APP, headers=headers)
    assert after.json()["code"] == 40105


# --- Snapchat -------------------------------------------------------------------------------


def snap_form(**fields: str) -> dict[str, str]:
    return {
        "client_id": "sandbox-snapchat-app",
        "client_secret": "sandbox-snapchat-secret",
        **fields,
    }


async def snap_tokens(client: httpx.AsyncClient) -> dict[str, Any]:
    code = (await decide(client, "snapchat"))["code"]
    form = snap_form(grant_type="authorization_code", code=code, redirect_uri=CALLBACK)
    response = await client.post("/snapchat/login/oauth2/access_token", data=form)
    assert response.status_code == 200
    return dict(response.json())


async def test_snapchat_code_refresh_and_expiry(client: httpx.AsyncClient) -> None:
    tokens = await snap_tokens(client)
    assert tokens["expires_in"] == 1800
    assert tokens["scope"] == "snapchat-marketing-api"
    segments = f"{SNAP}/adaccounts/1234567890/segments"
    assert (await client.get(segments, headers=bearer(tokens["access_token"]))).status_code == 200
    await advance(client, 1800)
    expired = await client.get(segments, headers=bearer(tokens["access_token"]))
    assert (expired.status_code, expired.text) == (401, "unauthorized")
    refreshed = await client.post(
        "/snapchat/login/oauth2/access_token",
        data=snap_form(grant_type="refresh_token", refresh_token=tokens["refresh_token"]),
    )
    body = refreshed.json()
    assert body["refresh_token"] == tokens["refresh_token"]
    assert (await client.get(segments, headers=bearer(body["access_token"]))).status_code == 200


async def test_snapchat_refusals(client: httpx.AsyncClient) -> None:
    token_url = "/snapchat/login/oauth2/access_token"
    code = (await decide(client, "snapchat"))["code"]
    exchange = {"grant_type": "authorization_code", "code": code, "redirect_uri": CALLBACK}
    mismatch = await client.post(token_url, data=snap_form(**{**exchange, "redirect_uri": "x"}))
    assert (mismatch.status_code, mismatch.json()["error"]) == (400, "invalid_grant")
    bad = await client.post(token_url, data=snap_form(**exchange, client_secret="no"))
    assert (bad.status_code, bad.json()["error"]) == (401, "invalid_client")
    assert (await client.post(token_url, data=snap_form(**exchange))).status_code == 200
    reused = await client.post(token_url, data=snap_form(**exchange))
    assert reused.json()["error"] == "invalid_grant"
    unknown = await client.post(
        token_url, data=snap_form(grant_type="refresh_token", refresh_token="nope")
    )
    assert (unknown.status_code, unknown.json()["error"]) == (400, "invalid_grant")


async def test_snapchat_discovery(client: httpx.AsyncClient) -> None:
    token = (await snap_tokens(client))["access_token"]
    organizations = await client.get(
        f"{SNAP}/me/organizations", params={"with_ad_accounts": "true"}, headers=bearer(token)
    )
    organization = organizations.json()["organizations"][0]["organization"]
    assert [a["id"] for a in organization["ad_accounts"]] == [
        "1234567890",
        "8b5a3c1e-0000-4000-8000-000000000002",
    ]
    listed = await client.get(
        f"{SNAP}/organizations/{organization['id']}/adaccounts", headers=bearer(token)
    )
    assert len(listed.json()["adaccounts"]) == 2
    assert (await client.get(f"{SNAP}/me", headers=bearer(token))).json()["me"]["email"]
    assert (
        await client.get(f"{SNAP}/adaccounts/1234567890", headers=bearer(token))
    ).status_code == 200
    assert (await client.get(f"{SNAP}/adaccounts/other", headers=bearer(token))).status_code == 404


# --- controls -------------------------------------------------------------------------------


async def test_registered_apps_match_their_redirect_uris_exactly(client: httpx.AsyncClient) -> None:
    registered = await client.put(
        "/_sandbox/oauth/apps/google/prod-client",
        json={
            "client_secret": "prod-secret",
            "name": "Acme Audiences",
            "redirect_uris": ["https://app.example/callback"],
            "allow_loopback": False,
        },
    )
    assert "client_secret" not in registered.json()
    params = request_params("google", client_id="prod-client")
    assert (await client.get("/google/o/oauth2/v2/auth", params=params)).status_code == 400
    params["redirect_uri"] = "https://app.example/callback"
    page = await client.get("/google/o/oauth2/v2/auth", params=params)
    assert "Acme Audiences" in page.text
    apps = (await client.get("/_sandbox/oauth/apps")).json()
    assert {a["client_id"] for a in apps} >= {"prod-client", "sandbox-meta-app"}
    assert all("client_secret" not in a for a in apps)
    await client.post("/_sandbox/reset")
    assert (await client.get("/google/o/oauth2/v2/auth", params=params)).status_code == 401


async def test_the_users_ad_accounts_can_be_set(client: httpx.AsyncClient) -> None:
    await client.put("/_sandbox/oauth/accounts/meta", json={"accounts": ["act_42"]})
    token = await meta_token(client)
    accounts = await client.get(f"{META}/me/adaccounts", params={"access_token": token})
    assert [a["id"] for a in accounts.json()["data"]] == ["act_42"]
