"""Freshness on a controlled clock: a Google audience's members are re-sent before their
membership lifetime, spread over the syncs, and the emulator never expires one (docs/freshness.md).
Without the refresh, the emulator expires them: the test can fail."""

from __future__ import annotations

import math
import uuid
from datetime import timedelta

import pytest

from audience_sync.config import Settings
from audience_sync.domain.models import SyncOperation, SyncPlatform, SyncStatus
from audience_sync.sandbox.state import SandboxState
from audience_sync.store.db import transaction
from audience_sync.store.repositories import AudienceRepository
from audience_sync.store.tables import AudienceSyncJob

from .test_figures import ads_api
from .world import World, row

GOOGLE = SyncPlatform.GOOGLE
MEMBERS = 240
LIFETIME_DAYS = 40
MARGIN_DAYS = 6
INTERVAL_DAYS = 3  # syncs on schedule: at most every margin
DAYS = 100  # more than twice the lifetime


def sandbox_list(
    world: World, audience: uuid.UUID, platform: SyncPlatform = GOOGLE
) -> tuple[int, int, int]:
    """The list's size, the members the emulator expired, and its membership days."""
    with transaction(world.factory) as session:
        stored = AudienceRepository(session, world.tenant_id).get(audience)
        platform_id = stored.platform_audience_id
    state: SandboxState = world.sandbox.state.sandbox
    found = state.audience(platform.value, str(platform_id))
    assert found is not None
    days = found.attributes["membership_days" if platform is GOOGLE else "retention_in_days"]
    return found.size, found.expired, days


def advance(world: World, days: int) -> None:
    """Both clocks, the engine's and the emulator's, by the same amount."""
    world.clock += timedelta(days=days)
    state: SandboxState = world.sandbox.state.sandbox
    state.clock.advance(days * 86400)


async def on_schedule(world: World, audience: uuid.UUID) -> list[AudienceSyncJob]:
    """An update every `INTERVAL_DAYS` for `DAYS`; the emulator's list checked after each."""
    jobs = []
    for _ in range(DAYS // INTERVAL_DAYS):
        advance(world, INTERVAL_DAYS)
        job = await world.sync(audience)
        assert job.status is SyncStatus.COMPLETED, job.error_message
        jobs.append(job)
    return jobs


async def google_audience(world: World, margin_days: int, **config: object) -> uuid.UUID:
    world.service.settings = Settings(refresh_margin_days=margin_days)
    world.load([row(i) for i in range(MEMBERS)])
    audience = world.audience(GOOGLE, config={"membership_days": LIFETIME_DAYS, **config})
    if config.get("google_api") == "ads":
        ads_api(world)
    created = await world.sync(audience, SyncOperation.CREATE)
    assert created.status is SyncStatus.COMPLETED, created.error_message
    return audience


@pytest.mark.parametrize("api", ["data_manager", "ads"])
async def test_members_are_refreshed_before_their_lifetime_and_never_expire(
    world: World, api: str
) -> None:
    config = {"google_api": "ads"} if api == "ads" else {}
    audience = await google_audience(world, MARGIN_DAYS, **config)
    assert sandbox_list(world, audience) == (MEMBERS, 0, LIFETIME_DAYS)  # set on create
    jobs = await on_schedule(world, audience)
    size, expired, _ = sandbox_list(world, audience)
    assert expired == 0
    assert size == MEMBERS
    assert await world.held(GOOGLE, audience) == world.expected(GOOGLE)
    refreshed = [job.details["figures"]["refreshed"] for job in jobs]
    # Every member was refreshed, most more than once, over more than two lifetimes ...
    assert sum(refreshed) >= 2 * MEMBERS
    # ... and no run re-sent more than its share: each record has a refresh slot every
    # window (lifetime − margin), at a phase of its own, so a run re-sends about
    # interval / window of the audience (twice that allows for the draw of phases).
    window = LIFETIME_DAYS - MARGIN_DAYS
    share = math.ceil(2 * MEMBERS * INTERVAL_DAYS / window)
    assert max(refreshed) <= share < MEMBERS / 2, str(refreshed)
    assert all(refreshed[2:])  # every run does its part, from the first slots on
    # Refreshed members stay unchanged: nothing about them was added.
    assert all(job.profiles_added == 0 for job in jobs)
    assert all(job.details["figures"]["unchanged"] == MEMBERS for job in jobs)
    planned = [job.details["plan"]["refreshes"] for job in jobs]
    assert planned == refreshed


async def test_without_the_refresh_the_platform_expires_the_members(world: World) -> None:
    audience = await google_audience(world, 0)  # a zero margin turns the refresh off
    jobs = await on_schedule(world, audience)
    size, expired, _ = sandbox_list(world, audience)
    assert expired == MEMBERS
    assert size == 0
    assert all(job.details["figures"]["refreshed"] == 0 for job in jobs)


async def test_a_sync_late_past_the_margin_still_refreshes_what_is_overdue(world: World) -> None:
    audience = await google_audience(world, MARGIN_DAYS)
    advance(world, LIFETIME_DAYS - 1)  # the schedule stalled: everyone is past the window
    job = await world.sync(audience)
    assert job.details["figures"]["refreshed"] == MEMBERS
    advance(world, 2)
    assert sandbox_list(world, audience)[:2] == (MEMBERS, 0)


async def test_a_snapchat_segment_with_a_retention_is_refreshed_too(world: World) -> None:
    world.service.settings = Settings(refresh_margin_days=MARGIN_DAYS)
    world.load([row(i) for i in range(MEMBERS)])
    config = {"retention_in_days": LIFETIME_DAYS}
    audience = world.audience(SyncPlatform.SNAPCHAT, config=config)
    created = await world.sync(audience, SyncOperation.CREATE)
    assert created.status is SyncStatus.COMPLETED, created.error_message
    size = sandbox_list(world, audience, SyncPlatform.SNAPCHAT)[0]
    jobs = await on_schedule(world, audience)
    assert sandbox_list(world, audience, SyncPlatform.SNAPCHAT) == (size, 0, LIFETIME_DAYS)
    assert sum(job.details["figures"]["refreshed"] for job in jobs) >= 2 * MEMBERS
