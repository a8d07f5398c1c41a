"""The runner's rules: dry runs send nothing, guard rails, narrowing, failures people can fix."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import httpx
import pytest

from audience_sync.config import FeatureFlag, Settings
from audience_sync.domain.models import SyncOperation, SyncPlatform, SyncStatus
from audience_sync.exceptions import ValidationError
from audience_sync.store.db import transaction
from audience_sync.store.repositories import (
    AudienceRepository,
    ConnectionRepository,
    FeatureFlagRepository,
    SegmentRepository,
    SyncJobRepository,
)
from audience_sync.store.snapshot import SnapshotRepository
from audience_sync.sync.health import audience_health
from audience_sync.sync.jobs import cancel_job
from audience_sync.testing.conformance import corrupt
from audience_sync.testing.support import SANDBOX_URL

from .world import World, row

SNAP = SyncPlatform.SNAPCHAT


async def test_a_dry_run_reports_the_plan_and_sends_nothing(world: World) -> None:
    world.load([row(i) for i in range(50)])
    audience = world.audience(SNAP)
    await world.sync(audience, SyncOperation.CREATE)
    world.leave("P0", "P1")
    world.load([row(i) for i in range(50, 53)])
    before = await world.held(SNAP, audience)
    dry = await world.sync(audience, dry_run=True)
    assert dry.status is SyncStatus.COMPLETED
    assert dry.details["plan"]["members_to_add"] == 3
    assert dry.details["plan"]["removes"] > 0
    assert await world.held(SNAP, audience) == before
    with transaction(world.factory) as session:
        assert AudienceRepository(session, world.tenant_id).get(audience).last_sync_status is (
            SyncStatus.COMPLETED
        )


@pytest.mark.parametrize(("list_type", "members"), [("contact", 8), ("mobile", 2)])
async def test_a_dry_run_of_a_google_list_never_created_plans_for_its_key_type(
    world: World, list_type: str, members: int
) -> None:
    world.load([row(i) for i in range(8)])  # everyone has an email; P1 and P5 a mobile id
    config = {"list_type": list_type, "app_id": "com.example.app"}
    audience = world.audience(SyncPlatform.GOOGLE, config=config)
    dry = await world.sync(audience, SyncOperation.CREATE, dry_run=True)
    assert dry.status is SyncStatus.COMPLETED, dry.error_message
    assert dry.details["plan"]["members_to_add"] == members
    assert await world.sandbox_audiences(SyncPlatform.GOOGLE) == []


@pytest.mark.parametrize("platform", [SyncPlatform.GOOGLE, SNAP])
async def test_a_refreshed_token_is_stored_for_the_next_runs(
    world: World, platform: SyncPlatform
) -> None:
    world.load([row(i) for i in range(10)])
    audience = world.audience(platform)
    await world.sync(audience, SyncOperation.CREATE)
    await world.fault(platform, "expired_token")
    world.load([row(i) for i in range(10, 12)])
    done = await world.sync(audience)
    assert done.status is SyncStatus.COMPLETED, done.error_message
    with transaction(world.factory) as session:
        stored = ConnectionRepository(session, world.tenant_id, world.cipher).credentials(platform)
    assert stored["access_token"] != "sandbox-token"
    assert stored["refresh_token"] == "sandbox-refresh-token"
    world.load([row(i) for i in range(12, 14)])
    assert (await world.sync(audience)).status is SyncStatus.COMPLETED


async def refresh_while(world: World, change: Callable[[ConnectionRepository], object]) -> Any:
    """A Snapchat update whose token expires and is refreshed, while `change` is done to the
    connection between the run reading it and the run ending; the finished job."""
    world.load([row(i) for i in range(10)])
    audience = world.audience(SNAP)
    await world.sync(audience, SyncOperation.CREATE)
    await world.fault(SNAP, "expired_token")
    world.load([row(i) for i in range(10, 12)])
    connect = world.service.connect

    def meanwhile(target: Any) -> Any:
        with transaction(world.factory) as session:
            change(ConnectionRepository(session, world.tenant_id, world.cipher))
        return connect(target)

    world.service.connect = meanwhile
    return await world.sync(audience)


async def test_a_token_set_again_during_a_run_is_not_overwritten(world: World) -> None:
    token = {"access_token": "set-by-the-user"}
    await refresh_while(world, lambda connections: connections.put(SNAP, "1234567890", token))
    with transaction(world.factory) as session:
        stored = ConnectionRepository(session, world.tenant_id, world.cipher).credentials(SNAP)
    assert stored == token


async def test_a_connection_removed_during_a_run_is_not_brought_back(world: World) -> None:
    done = await refresh_while(world, lambda connections: connections.delete(SNAP))
    assert done.status is SyncStatus.COMPLETED, done.error_message
    with transaction(world.factory) as session:
        assert ConnectionRepository(session, world.tenant_id, world.cipher).find(SNAP) is None


async def test_members_whose_records_straddle_two_chunks_are_counted_once(world: World) -> None:
    # One record per batch, 25 batches a checkpoint: members with two or three records
    # (email, phone, mobile id) are cut between chunks.
    world.service = dataclasses.replace(world.service, settings=Settings(max_batch_size=1))
    world.load([row(i) for i in range(30)])
    audience = world.audience(SyncPlatform.SNAPCHAT)
    job = await world.sync(audience, SyncOperation.CREATE)
    assert job.status is SyncStatus.COMPLETED, job.error_message
    assert (job.profiles_sent, job.profiles_added) == (30, 30)
    assert await world.held(SyncPlatform.SNAPCHAT, audience) == world.expected(
        SyncPlatform.SNAPCHAT
    )


def on_upload(world: World, nth: int, act: Callable[[], object]) -> None:
    """Connectors whose `nth` upload (counted over the test) is followed by `act`."""
    build, calls = world.connect, [0]

    def connect(target: Any) -> Any:
        connector = build(target)
        upload = connector.upload

        async def counted(*args: Any) -> Any:
            result = await upload(*args)
            calls[0] += 1
            if calls[0] == nth:
                act()
            return result

        connector.upload = counted
        return connector

    world.service = dataclasses.replace(
        world.service, connect=connect, settings=Settings(max_batch_size=1)
    )


def snapshot_count(world: World, audience: Any) -> int:
    with transaction(world.factory) as session:
        return SnapshotRepository(session, world.tenant_id).count(audience)


async def snapshot_matches_platform(world: World, audience: Any) -> int:
    """The snapshot holds exactly what the platform holds (one identifier a Snapchat record);
    how many records that is."""
    held = await world.held(SNAP, audience)
    count = snapshot_count(world, audience)
    assert count == sum(map(len, held.values()))
    return count


async def test_a_cancelled_run_stops_at_a_chunk_with_every_accepted_chunk_confirmed(
    world: World,
) -> None:
    # Chunks of 10 to 25 records; each is checkpointed while the next is sent (Checkpoints.confirm),
    # so the cancel is seen a chunk or two later: what was sent by then must be confirmed.
    world.load([row(i) for i in range(60)])
    audience = world.audience(SNAP)

    def cancel() -> None:
        with transaction(world.factory) as session:
            jobs = SyncJobRepository(session, world.tenant_id).for_audience(audience)
            (job,) = [j for j in jobs if j.status is SyncStatus.RUNNING]
        cancel_job(world.factory, world.tenant_id, job.id, world.clock)

    on_upload(world, 2, cancel)
    job = await world.sync(audience, SyncOperation.CREATE)
    assert job.status is SyncStatus.CANCELLED
    confirmed = await snapshot_matches_platform(world, audience)
    assert 0 < confirmed < sum(map(len, world.expected(SNAP).values()))
    assert job.profiles_sent > 0
    assert (await world.sync(audience)).status is SyncStatus.COMPLETED
    assert await world.held(SNAP, audience) == world.expected(SNAP)


async def test_a_run_failing_mid_way_keeps_the_chunk_confirming_in_the_background(
    world: World,
) -> None:
    world.load([row(i) for i in range(60)])
    audience = world.audience(SNAP)

    def refuse() -> None:
        raise ValidationError("the platform refused the request")

    on_upload(world, 3, refuse)
    job = await world.sync(audience, SyncOperation.CREATE)
    assert job.status is SyncStatus.FAILED
    assert "refused" in (job.error_message or "")
    # The third chunk was accepted, then the run failed before its checkpoint: the snapshot
    # holds the first two chunks (the second confirmed in the background while the third was
    # sent), fewer records than the platform; the next run sends the rest again.
    held = await world.held(SNAP, audience)
    assert 0 < snapshot_count(world, audience) < sum(map(len, held.values()))
    assert (await world.sync(audience)).status is SyncStatus.COMPLETED
    assert await world.held(SNAP, audience) == world.expected(SNAP)


async def test_a_record_the_platform_refuses_stays_out_of_the_snapshot(world: World) -> None:
    world.load([row(i) for i in range(12)])
    audience = world.audience(SyncPlatform.SNAPCHAT)
    build = world.connect

    def connect(target: Any) -> Any:
        connector = build(target)
        original = connector.prepared_from_texts

        def spoiled(texts: Any) -> Any:  # the chunk's third record is malformed
            prepared = original(texts)
            prepared.records[2] = corrupt(prepared.records[2])
            return prepared

        connector.prepared_from_texts = spoiled
        return connector

    world.service = dataclasses.replace(world.service, connect=connect)
    job = await world.sync(audience, SyncOperation.CREATE)
    assert job.status is SyncStatus.COMPLETED, job.error_message
    planned = job.details["plan"]["adds"]
    with transaction(world.factory) as session:
        held = SnapshotRepository(session, world.tenant_id).count(audience)
    assert held == planned - 1
    assert job.profiles_failed == 1


async def test_a_mass_removal_is_refused_unless_forced(world: World) -> None:
    world.load([row(i) for i in range(20)])
    audience = world.audience(SNAP)
    await world.sync(audience, SyncOperation.CREATE)
    world.leave(*[f"P{i}" for i in range(15)])
    refused = await world.sync(audience)
    assert refused.status is SyncStatus.FAILED
    assert "above the 50% guard rail" in (refused.error_message or "")
    forced = await world.sync(audience, force=True)
    assert forced.status is SyncStatus.COMPLETED
    assert await world.held(SNAP, audience) == world.expected(SNAP)


async def test_a_replace_with_an_empty_segment_is_refused(world: World) -> None:
    world.load([row(0)])
    audience = world.audience(SNAP)
    await world.sync(audience, SyncOperation.CREATE)
    world.leave("P0")
    refused = await world.sync(audience, SyncOperation.REPLACE)
    assert refused.status is SyncStatus.FAILED
    assert "would be emptied" in (refused.error_message or "")


async def test_the_audience_config_narrows_what_is_sent(world: World) -> None:
    world.load([row(i) for i in range(12)])
    audience = world.audience(SNAP)
    with transaction(world.factory) as session:
        AudienceRepository(session, world.tenant_id).get(audience).config = {
            "identifier_types": ["phone"]
        }
    await world.sync(audience, SyncOperation.CREATE)
    held = await world.held(SNAP, audience)
    assert set(held) == {"PHONE_SHA256"}
    assert len(held["PHONE_SHA256"]) == 4  # P0, P3, P6, P9


async def test_an_expired_token_fails_at_once_with_a_reconnect_message(world: World) -> None:
    world.load([row(i) for i in range(5)])
    audience = world.audience(SyncPlatform.TIKTOK)
    await world.fault(SyncPlatform.TIKTOK, "expired_token", count=10)
    failed = await world.sync(audience, SyncOperation.CREATE)
    assert failed.status is SyncStatus.FAILED
    assert failed.error_message == (
        "TikTok access token expired or was revoked — reconnect the TikTok account "
        "(`audience-sync connections set tiktok …` or `PUT /api/v1/connections/tiktok`)."
    )
    assert "sandbox-token" not in (failed.error_message or "")
    with transaction(world.factory) as session:
        connection = ConnectionRepository(session, world.tenant_id, world.cipher).get(
            SyncPlatform.TIKTOK
        )
        assert connection.status == "needs_reconnect"


async def test_a_server_error_that_persists_is_retried_later_not_failed(world: World) -> None:
    world.load([row(i) for i in range(5)])
    audience = world.audience(SNAP)
    await world.fault(SNAP, "server_error", count=50)
    job = await world.sync(audience, SyncOperation.CREATE)
    assert job.status is SyncStatus.PENDING
    assert job.next_retry_at is not None
    assert "retry 1 of 4" in (job.error_message or "")


@pytest.mark.parametrize(
    ("flag", "message"),
    [
        (FeatureFlag.AUDIENCE_SYNC, "'audience_sync' is off"),
        (FeatureFlag.AUDIENCE_SYNC_SNAPCHAT, "'audience_sync_snapchat' is off"),
    ],
)
async def test_a_disabled_feature_flag_fails_the_job(
    world: World, flag: FeatureFlag, message: str
) -> None:
    world.load([row(0)])
    audience = world.audience(SNAP)
    with transaction(world.factory) as session:
        FeatureFlagRepository(session, world.tenant_id).set(flag, False)
    job = await world.sync(audience, SyncOperation.CREATE)
    assert job.status is SyncStatus.FAILED
    assert message in (job.error_message or "")


async def test_an_inactive_segment_fails_the_job(world: World) -> None:
    world.load([row(0)])
    audience = world.audience(SNAP)
    with transaction(world.factory) as session:
        SegmentRepository(session, world.tenant_id).get(world.segment_id).is_active = False
    job = await world.sync(audience, SyncOperation.CREATE)
    assert job.status is SyncStatus.FAILED
    assert "inactive" in (job.error_message or "")


async def test_delete_removes_the_platform_audience_and_keeps_history(world: World) -> None:
    world.load([row(i) for i in range(5)])
    audience = world.audience(SNAP)
    created = await world.sync(audience, SyncOperation.CREATE)
    deleted = await world.sync(audience, SyncOperation.DELETE)
    assert deleted.status is SyncStatus.COMPLETED
    with transaction(world.factory) as session:
        stored = AudienceRepository(session, world.tenant_id).get(audience)
        assert (stored.is_active, stored.auto_sync) == (False, False)
        assert SnapshotRepository(session, world.tenant_id).count(audience) == 0
    assert created.id != deleted.id
    audiences = await world.sandbox_audiences(SNAP)
    assert audiences == []


async def test_health_counts_real_syncs_of_the_last_30_days(world: World) -> None:
    world.load([row(i) for i in range(5)])
    audience = world.audience(SNAP)
    await world.sync(audience, SyncOperation.CREATE)
    await world.sync(audience, dry_run=True)  # not counted
    world.leave(*[f"P{i}" for i in range(5)])
    await world.sync(audience)  # refused by the guard rail: failed
    with transaction(world.factory) as session:
        health = audience_health(session, world.tenant_id, audience, world.clock)
    assert health["sync_success_rate"] == 0.5
    assert health["syncs_30d"] == 2
    assert health["platform_size"] is not None
    with transaction(world.factory) as session:
        later = audience_health(
            session, world.tenant_id, audience, world.clock + timedelta(days=31)
        )
    assert later["sync_success_rate"] is None


def set_google_settings(world: World, **settings: Any) -> None:
    with transaction(world.factory) as session:
        connections = ConnectionRepository(session, world.tenant_id, world.cipher)
        found = connections.get(SyncPlatform.GOOGLE)
        stored = world.cipher.decrypt(found.credentials_encrypted)
        connections.put(
            SyncPlatform.GOOGLE, found.ad_account_id, stored, found.base_url, settings=settings
        )


async def test_a_google_sync_without_the_terms_accepted_fails_before_uploading(
    world: World,
) -> None:
    world.load([row(i) for i in range(5)])
    audience = world.audience(SyncPlatform.GOOGLE)
    set_google_settings(world, customer_match_terms_accepted=None)
    job = await world.sync(audience, SyncOperation.CREATE)
    assert job.status is SyncStatus.FAILED
    assert "audience-sync connections set google" in (job.error_message or "")
    assert "--accept-customer-match-terms" in (job.error_message or "")
    assert await world.sandbox_audiences(SyncPlatform.GOOGLE) == []
    set_google_settings(world, customer_match_terms_accepted=True)
    again = await world.sync(audience, SyncOperation.CREATE)
    assert again.status is SyncStatus.COMPLETED, again.error_message


async def test_a_google_sync_reaches_a_managed_account_through_the_login_account(
    world: World,
) -> None:
    world.load([row(i) for i in range(5)])
    audience = world.audience(SyncPlatform.GOOGLE)
    transport = httpx.ASGITransport(app=world.sandbox)
    async with httpx.AsyncClient(transport=transport, base_url=SANDBOX_URL) as client:
        await client.put("/_sandbox/google/managers/1234567890", json={"manager_id": "777"})
    refused = await world.sync(audience, SyncOperation.CREATE)
    assert refused.status is SyncStatus.FAILED
    set_google_settings(world, login_account_id="777")
    job = await world.sync(audience, SyncOperation.CREATE)
    assert job.status is SyncStatus.COMPLETED, job.error_message
    assert await world.held(SyncPlatform.GOOGLE, audience) == world.expected(SyncPlatform.GOOGLE)
