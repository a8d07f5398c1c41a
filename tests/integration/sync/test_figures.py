"""The job's figures count members, the same way on every platform and every operation."""

from __future__ import annotations

import dataclasses
from typing import Any

import httpx
import pytest

from audience_sync.domain.models import SyncOperation, SyncPlatform, SyncStatus
from audience_sync.store.db import transaction
from audience_sync.store.repositories import AudienceRepository, ConnectionRepository
from audience_sync.store.tables import AudienceSyncJob
from audience_sync.testing.conformance import corrupt
from audience_sync.testing.support import PREFIXES, SANDBOX_URL

from .world import PLATFORMS, World, row

UNUSABLE = (4, 8, 11)  # no phone, mobile id or name: with a broken email, nothing is usable


def members(platform: SyncPlatform) -> list[dict[str, str]]:
    """Forty members, three of them unusable."""
    return [row(i, "not-an-email" if i in UNUSABLE else None) for i in range(40)]


def assert_adds_up(job: AudienceSyncJob) -> None:
    """sent = added + refused; members = added + failed + unchanged; failed = unusable + refused."""
    assert job.status is SyncStatus.COMPLETED, job.error_message
    figures = job.details["figures"]
    assert job.profiles_sent == job.profiles_added + figures["refused"]
    assert job.profiles_failed == figures["unusable"] + figures["refused"]
    assert figures["members"] == job.profiles_added + job.profiles_failed + figures["unchanged"]


def ads_api(world: World) -> None:
    """Point the Google connection at the Ads API's sandbox (replace: remove-all job, then add)."""
    with transaction(world.factory) as session:
        connections = ConnectionRepository(session, world.tenant_id, world.cipher)
        stored = connections.credentials(SyncPlatform.GOOGLE)
        url = SANDBOX_URL + PREFIXES["googleads"]
        connections.put(SyncPlatform.GOOGLE, "1234567890", stored, base_url=url)


async def ads_requests(world: World) -> list[dict[str, Any]]:
    transport = httpx.ASGITransport(app=world.sandbox)
    async with httpx.AsyncClient(transport=transport, base_url=SANDBOX_URL) as client:
        found: list[dict[str, Any]] = (
            await client.get("/_sandbox/requests", params={"platform": "googleads"})
        ).json()
        return found


async def processed(world: World) -> None:
    """Google's processing time passes: a job still running on a list refuses the next one
    (CONCURRENT_MODIFICATION), as the Ads API does."""
    transport = httpx.ASGITransport(app=world.sandbox)
    async with httpx.AsyncClient(transport=transport, base_url=SANDBOX_URL) as client:
        await client.post("/_sandbox/clock", json={"advance_seconds": 24 * 3600})


ROUTES = [(p, {}) for p in PLATFORMS] + [(SyncPlatform.GOOGLE, {"google_api": "ads"})]


@pytest.mark.parametrize(("platform", "config"), ROUTES, ids=[*(p.value for p in PLATFORMS), "ads"])
async def test_an_update_and_a_replace_of_the_same_members_fail_the_same_members(
    world: World, platform: SyncPlatform, config: dict[str, str]
) -> None:
    world.load(members(platform))
    audience = world.audience(platform, config=config)
    if config:
        ads_api(world)
    created = await world.sync(audience, SyncOperation.CREATE)
    await processed(world)
    updated = await world.sync(audience)
    await processed(world)
    replaced = await world.sync(audience, SyncOperation.REPLACE)
    assert replaced.status is SyncStatus.COMPLETED, replaced.error_message
    assert replaced.profiles_failed == updated.profiles_failed == len(UNUSABLE)
    for job in (created, updated, replaced):
        assert_adds_up(job)
        assert job.profiles_failed == len(UNUSABLE)
    if config:
        assert await ads_requests(world), "the Ads API route was not taken"
    total = len(members(platform))
    assert (updated.profiles_sent, updated.details["figures"]["unchanged"]) == (0, total - 3)
    if platform is SyncPlatform.TIKTOK:  # a replace by difference: nothing left to send
        assert (replaced.profiles_sent, replaced.details["figures"]["unchanged"]) == (0, total - 3)
    else:
        assert replaced.profiles_sent == replaced.profiles_added == total - len(UNUSABLE)


async def add_outside_members(world: World, platform: SyncPlatform, audience: Any, n: int) -> None:
    with transaction(world.factory) as session:
        platform_id = (
            AudienceRepository(session, world.tenant_id).get(audience).platform_audience_id
        )
    transport = httpx.ASGITransport(app=world.sandbox)
    async with httpx.AsyncClient(transport=transport, base_url=SANDBOX_URL) as client:
        answer = await client.patch(
            f"/_sandbox/audiences/{platform.value}/{platform_id}", json={"outside_members": n}
        )
        assert answer.status_code == 200, answer.text
        assert answer.json()["matched"] >= n


@pytest.mark.parametrize("platform", PLATFORMS)
async def test_a_platform_size_above_what_was_sent_comes_with_a_reason(
    world: World, platform: SyncPlatform
) -> None:
    # Emails only: one identifier a member, so the platforms' sizes count the same either way.
    world.load([{**row(i), "phone": "", "mobile_id": "", "mobile_id_kind": ""} for i in range(30)])
    audience = world.audience(platform)
    created = await world.sync(audience, SyncOperation.CREATE)
    assert "warnings" not in created.details or not [
        w for w in created.details["warnings"] if w["code"] == "platform_size_above_sent"
    ]
    await add_outside_members(world, platform, audience, 500)
    updated = await world.sync(audience)
    with transaction(world.factory) as session:
        found = AudienceRepository(session, world.tenant_id).get(audience)
        size, rate = found.platform_size, found.match_rate
    assert size is not None
    assert size > 30
    if platform is SyncPlatform.GOOGLE:  # Google's own rate, over what was uploaded
        assert rate is not None
        assert rate <= 1.0
    else:  # a size over the members synced is no share of them: no rate rather than 100%
        assert rate is None
    (warning,) = [w for w in updated.details["warnings"] if w["code"] == "platform_size_above_sent"]
    assert (warning["platform_size"], warning["members_synced"]) == (size, 30)
    assert "outside Audience Sync" in warning["message"]


async def test_a_member_with_one_of_two_records_refused_is_added_not_failed(world: World) -> None:
    world.load([row(i) for i in range(12)])  # P0: an email and a phone, two Snapchat records
    audience = world.audience(SyncPlatform.SNAPCHAT)
    build = world.connect

    def connect(target: Any) -> Any:
        connector = build(target)
        original = connector.prepared_from_texts

        def spoiled(texts: Any) -> Any:  # the chunk's first record (one of P0's) is malformed
            prepared = original(texts)
            prepared.records[0] = corrupt(prepared.records[0])
            return prepared

        connector.prepared_from_texts = spoiled
        return connector

    world.service = dataclasses.replace(world.service, connect=connect)
    job = await world.sync(audience, SyncOperation.CREATE)
    assert_adds_up(job)
    assert (job.profiles_sent, job.profiles_added, job.profiles_failed) == (12, 12, 0)
