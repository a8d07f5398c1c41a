"""Tokens stay valid: refreshed before they expire and written back at once; a 401's refresh
written back; a token that cannot be renewed turns the connection `needs_reconnect`."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from audience_sync.domain.models import SyncOperation, SyncPlatform, SyncStatus
from audience_sync.services.connections import connection_view, token_state
from audience_sync.store.db import transaction
from audience_sync.store.repositories import ConnectionRepository
from audience_sync.testing.support import SANDBOX_URL

from .world import World, row

TTL = {SyncPlatform.GOOGLE: 3600.0, SyncPlatform.SNAPCHAT: 1800.0}
TOKEN_PATHS = ("/google/token", "/snapchat/login/oauth2/access_token")


async def control(world: World, method: str, path: str, **kwargs: Any) -> Any:
    transport = httpx.ASGITransport(app=world.sandbox)
    async with httpx.AsyncClient(transport=transport, base_url=SANDBOX_URL) as client:
        answer = await client.request(method, path, **kwargs)
        assert answer.is_success, answer.text
        return answer.json()


async def issued_token(world: World, platform: SyncPlatform, ttl: float) -> dict[str, str]:
    """An access token of the sandbox that expires after `ttl` seconds, with its refresh token,
    stored on the connection with its expiry; the world's clock set to the sandbox's."""
    body = {"platform": platform.value, "ttl_seconds": ttl}
    tokens: dict[str, str] = await control(world, "POST", "/_sandbox/tokens", json=body)
    world.clock = datetime.now(UTC)
    with transaction(world.factory) as session:
        repo = ConnectionRepository(session, world.tenant_id, world.cipher)
        credentials = {**repo.credentials(platform), **tokens}
        credentials.pop("expires_in", None)
        connection = repo.find(platform)
        assert connection is not None
        repo.put(platform, connection.ad_account_id, credentials, base_url=connection.base_url)
        connection.token_expires_at = world.clock + timedelta(seconds=ttl)
    return tokens


async def advance(world: World, seconds: float) -> None:
    """Time passes on both clocks: the sandbox's and the sync engine's."""
    await control(world, "POST", "/_sandbox/clock", json={"advance_seconds": seconds})
    world.clock += timedelta(seconds=seconds)


async def requests_since(world: World, platform: SyncPlatform, seq: int) -> list[dict[str, Any]]:
    entries = await control(world, "GET", "/_sandbox/requests", params={"platform": platform.value})
    return [e for e in entries if e["seq"] > seq]


async def last_seq(world: World) -> int:
    entries = await control(world, "GET", "/_sandbox/requests")
    return max((e["seq"] for e in entries), default=0)


def stored(world: World, platform: SyncPlatform) -> tuple[dict[str, Any], Any]:
    with transaction(world.factory) as session:
        repo = ConnectionRepository(session, world.tenant_id, world.cipher)
        connection = repo.get(platform)
        return repo.credentials(platform), connection


@pytest.mark.parametrize("platform", [SyncPlatform.GOOGLE, SyncPlatform.SNAPCHAT])
async def test_a_token_about_to_expire_is_refreshed_before_the_first_call(
    world: World, platform: SyncPlatform
) -> None:
    world.load([row(i) for i in range(10)])
    audience = world.audience(platform)
    tokens = await issued_token(world, platform, TTL[platform])
    await advance(world, TTL[platform] + 30)  # expired on the platform, and for us
    seq = await last_seq(world)
    done = await world.sync(audience, SyncOperation.CREATE)
    assert done.status is SyncStatus.COMPLETED, done.error_message
    calls = await requests_since(world, platform, seq)
    assert calls[0]["path"] in TOKEN_PATHS  # the refresh came first...
    assert [c for c in calls if c["status"] == 401] == []  # ...so no call met an expired token
    credentials, connection = stored(world, platform)
    assert credentials["access_token"] != tokens["access_token"]
    assert credentials["refresh_token"] == tokens["refresh_token"]
    assert connection.token_expires_at == world.clock + timedelta(seconds=TTL[platform])
    assert connection.credentials_version == 1
    assert connection_view(connection)["expires_in_days"] is None  # renewed by the service


async def test_a_token_refreshed_after_a_401_is_written_back_with_its_expiry(
    world: World,
) -> None:
    platform = SyncPlatform.GOOGLE
    world.load([row(i) for i in range(10)])
    audience = world.audience(platform)
    await world.sync(audience, SyncOperation.CREATE)
    await world.fault(platform, "expired_token")
    world.load([row(i) for i in range(10, 12)])
    done = await world.sync(audience)
    assert done.status is SyncStatus.COMPLETED, done.error_message
    credentials, connection = stored(world, platform)
    assert credentials["access_token"] != "sandbox-token"
    assert connection.token_expires_at == world.clock + timedelta(seconds=TTL[platform])
    assert connection.credentials_version == 1
    assert connection.status == "connected"


async def test_a_refused_refresh_marks_the_connection_needs_reconnect(world: World) -> None:
    platform = SyncPlatform.SNAPCHAT
    world.load([row(i) for i in range(10)])
    audience = world.audience(platform)
    tokens = await issued_token(world, platform, TTL[platform])
    with transaction(world.factory) as session:  # a refresh token the platform never issued
        repo = ConnectionRepository(session, world.tenant_id, world.cipher)
        credentials = {**repo.credentials(platform), "refresh_token": "revoked-refresh-token"}
        connection = repo.get(platform)
        expires = connection.token_expires_at
        repo.put(platform, connection.ad_account_id, credentials, base_url=connection.base_url)
        connection.token_expires_at = expires
    await advance(world, TTL[platform] + 30)
    done = await world.sync(audience, SyncOperation.CREATE)
    assert done.status is SyncStatus.FAILED
    _, connection = stored(world, platform)
    assert connection.status == "needs_reconnect"
    assert connection.status_message.startswith("Snapchat refused to renew the access token")
    assert tokens["access_token"] not in (connection.status_message or "")


async def test_an_expired_meta_token_fails_at_once_and_needs_reconnect(world: World) -> None:
    platform = SyncPlatform.META
    world.load([row(i) for i in range(10)])
    audience = world.audience(platform)
    sixty_days = 60 * 24 * 3600.0
    await issued_token(world, platform, sixty_days)
    with transaction(world.factory) as session:  # Meta: no refresh grant, no refresh token
        repo = ConnectionRepository(session, world.tenant_id, world.cipher)
        connection = repo.get(platform)
        expires = connection.token_expires_at
        credentials = {"access_token": repo.credentials(platform)["access_token"]}
        repo.put(platform, connection.ad_account_id, credentials, base_url=connection.base_url)
        connection.token_expires_at = expires
    await advance(world, sixty_days - 12 * 24 * 3600 - 60)
    _, connection = stored(world, platform)
    assert token_state(connection, world.clock).expires_in_days == 12  # 12 days and a minute
    created = await world.sync(audience, SyncOperation.CREATE)  # still valid: it syncs
    assert created.status is SyncStatus.COMPLETED, created.error_message

    await advance(world, 13 * 24 * 3600)
    seq = await last_seq(world)
    world.load([row(i) for i in range(10, 12)])
    done = await world.sync(audience)
    assert done.status is SyncStatus.FAILED
    assert "expired on" in (done.error_message or "")
    assert await requests_since(world, platform, seq) == []  # no call to find it out
    _, connection = stored(world, platform)
    assert connection.status == "needs_reconnect"
    assert connection.status_message == (
        f"Meta access token expired on {expires:%Y-%m-%d} and cannot be renewed — reconnect "
        "the Meta account (`audience-sync connections set meta …` or "
        "`PUT /api/v1/connections/meta`)."
    )
