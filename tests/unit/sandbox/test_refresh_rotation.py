"""Refresh-token rotation, when a test turns it on: a new refresh token per refresh, the old one
refused, and presenting a rotated-out one again revokes its successor (RFC 9700 §4.14.2)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest

from audience_sync.sandbox import SandboxSettings, create_app

TOKEN = "/snapchat/login/oauth2/access_token"


@pytest.fixture
async def rotating() -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(SandboxSettings(rotate_refresh_tokens=("snapchat",)))
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://sandbox") as client:
        yield client


async def refresh(client: httpx.AsyncClient, refresh_token: str) -> httpx.Response:
    form = {"grant_type": "refresh_token", "refresh_token": refresh_token}
    return await client.post(TOKEN, data={**form, "client_id": "c", "client_secret": "s"})


async def me(client: httpx.AsyncClient, access_token: str) -> int:
    headers = {"Authorization": f"Bearer {access_token}"}
    return (await client.get("/snapchat/v1/me", headers=headers)).status_code


async def test_each_refresh_rotates_the_refresh_token(rotating: httpx.AsyncClient) -> None:
    issued = (await rotating.post("/_sandbox/tokens", json={"platform": "snapchat"})).json()
    first = (await refresh(rotating, issued["refresh_token"])).json()
    assert first["refresh_token"] != issued["refresh_token"]
    second = await refresh(rotating, first["refresh_token"])
    assert second.status_code == 200
    assert await me(rotating, second.json()["access_token"]) == 200


async def test_a_rotated_out_refresh_token_presented_again_revokes_its_successor(
    rotating: httpx.AsyncClient,
) -> None:
    issued = (await rotating.post("/_sandbox/tokens", json={"platform": "snapchat"})).json()
    first = (await refresh(rotating, issued["refresh_token"])).json()
    stale = await refresh(rotating, issued["refresh_token"])
    assert (stale.status_code, stale.json()["error"]) == (400, "invalid_grant")
    assert await me(rotating, first["access_token"]) == 401
    assert (await refresh(rotating, first["refresh_token"])).status_code == 400


async def test_without_rotation_snapchat_answers_the_same_refresh_token(
    client: httpx.AsyncClient,
) -> None:
    issued = (await client.post("/_sandbox/tokens", json={"platform": "snapchat"})).json()
    body = (await refresh(client, issued["refresh_token"])).json()
    assert body["refresh_token"] == issued["refresh_token"]
    assert (await refresh(client, issued["refresh_token"])).status_code == 200
