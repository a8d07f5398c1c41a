"""Signing in and out of the dashboard, its cookie, CSRF, tenant isolation and escaping."""

from __future__ import annotations

import httpx
import pytest
from fastapi import FastAPI

from ..conftest import Api, Tenant
from .conftest import Browser, csrf_of

pytestmark = pytest.mark.parametrize("engine", ["sqlite"], indirect=True)


async def test_pages_need_a_session_and_redirect_to_sign_in(client: httpx.AsyncClient) -> None:
    answer = await client.get("/audiences?state=failing")
    assert answer.status_code == 303
    assert answer.headers["location"] == "/login?next=%2Faudiences%3Fstate%3Dfailing"
    assert (await client.get("/")).status_code == 303


async def test_sign_in_sets_a_safe_session_cookie_never_the_key(
    client: httpx.AsyncClient, alice: Tenant
) -> None:
    page = await client.get("/login")
    assert page.status_code == 200
    assert "httponly" in page.headers["set-cookie"].lower()
    answer = await client.post(
        "/login", data={"api_key": alice.key, "csrf_token": csrf_of(page.text), "next": "/x"}
    )
    assert answer.status_code == 303
    assert answer.headers["location"] == "/x"
    cookie = next(c for c in answer.headers.get_list("set-cookie") if c.startswith("as_session="))
    assert "HttpOnly" in cookie
    assert "SameSite=lax" in cookie
    assert alice.key not in cookie
    assert "Secure" not in cookie  # plain http here; https gets Secure


async def test_a_wrong_key_or_a_missing_form_token_is_refused(
    client: httpx.AsyncClient, alice: Tenant
) -> None:
    page = await client.get("/login")
    wrong = await client.post(
        "/login", data={"api_key": "as_wrong", "csrf_token": csrf_of(page.text)}
    )
    assert wrong.status_code == 401
    assert "not valid" in wrong.text
    assert "as_wrong" not in wrong.text
    forged = await client.post("/login", data={"api_key": alice.key, "csrf_token": "guess"})
    assert forged.status_code == 403
    assert "as_session" not in forged.headers.get("set-cookie", "")


async def test_next_never_leaves_the_site(client: httpx.AsyncClient, alice: Tenant) -> None:
    for target in ("https://evil.example/", "//evil.example/", "/\\evil.example"):
        client.cookies.clear()
        page = await client.get("/login")
        answer = await client.post(
            "/login",
            data={"api_key": alice.key, "csrf_token": csrf_of(page.text), "next": target},
        )
        assert answer.headers["location"] == "/audiences"


async def test_sign_out_ends_the_session_for_good(alice_browser: Browser) -> None:
    cookie = alice_browser.client.cookies.get("as_session")
    assert (await alice_browser.get("/audiences")).status_code == 200
    assert (await alice_browser.client.post("/logout")).status_code == 403  # no CSRF token
    assert (await alice_browser.post("/logout")).status_code == 303
    alice_browser.client.cookies.set("as_session", cookie or "")
    replayed = await alice_browser.client.get("/audiences")
    assert replayed.status_code == 303  # the stolen cookie is dead too


async def test_revoking_the_key_ends_its_sessions(
    alice_browser: Browser, factory: object, alice: Tenant
) -> None:
    from audience_sync.services import tenants
    from audience_sync.store.types import utcnow

    tenants.revoke_key(factory, "alice", alice.key[:10], utcnow())  # type: ignore[arg-type]
    assert (await alice_browser.get("/audiences")).status_code == 303


async def test_another_tenants_audience_is_not_found_and_names_are_escaped(
    app: FastAPI, client: httpx.AsyncClient, alice: Tenant, bob_browser: Browser
) -> None:
    api = Api(client, alice)
    segment = await api.segment(name="<script>alert(1)</script>", profiles=3)
    await api.connect("meta")
    made = await api.audience(segment, sync_now=False, platform_audience_name="<b>bold</b>")
    mine = await Api(client, alice).call("GET", "/api/v1/audiences")
    assert mine.status_code == 200
    listed = await bob_browser.get("/audiences")
    assert made["id"] not in listed.text
    assert (await bob_browser.get(f"/audiences/{made['id']}")).status_code == 404
    alice_browser = Browser(
        bob_browser.client.__class__(transport=httpx.ASGITransport(app=app), base_url="http://dash")
    )
    async with alice_browser.client:
        await alice_browser.sign_in(alice.key)
        page = (await alice_browser.get("/audiences")).text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "<script>alert(1)</script>" not in page
    assert "&lt;b&gt;bold&lt;/b&gt;" in page


async def test_pages_carry_security_headers(alice_browser: Browser) -> None:
    page = await alice_browser.get("/audiences")
    assert "script-src 'self'" in page.headers["content-security-policy"]
    assert page.headers["x-frame-options"] == "DENY"
    assert page.headers["cache-control"] == "no-store"


async def test_a_large_form_is_refused_before_it_is_read(alice_browser: Browser) -> None:
    answer = await alice_browser.post("/logout", data={"filler": "x" * 100_000})
    assert answer.status_code == 413
    assert (await alice_browser.get("/audiences")).status_code == 200  # still signed in
