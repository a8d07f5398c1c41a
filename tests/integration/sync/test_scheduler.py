"""The scheduler with a controllable clock: due audiences run once, intervals and retry delays
are honoured, manual-only and inactive audiences never run."""

from __future__ import annotations

from datetime import timedelta

from audience_sync.domain.models import SyncOperation, SyncPlatform, SyncStatus, TriggeredBy
from audience_sync.scheduler.tick import process_audience_sync_queue
from audience_sync.store.db import transaction
from audience_sync.store.repositories import AudienceRepository, SyncJobRepository

from .world import World, row

SNAP = SyncPlatform.SNAPCHAT


def jobs(world: World, audience: object) -> list:
    with transaction(world.factory) as session:
        return list(SyncJobRepository(session, world.tenant_id).for_audience(audience))  # type: ignore[arg-type]


async def test_a_due_audience_runs_once_then_waits_its_interval(world: World) -> None:
    world.load([row(i) for i in range(10)])
    audience = world.audience(SNAP, next_sync_at=world.clock, sync_interval_hours=6)
    first = await process_audience_sync_queue(world.service)
    assert (first.queued, first.ran, first.statuses) == (1, 1, {"completed": 1})
    (job,) = jobs(world, audience)
    assert (job.operation, job.triggered_by) == (SyncOperation.CREATE, TriggeredBy.SCHEDULED)
    assert await world.held(SNAP, audience) == world.expected(SNAP)

    world.clock += timedelta(hours=5, minutes=59)
    assert (await process_audience_sync_queue(world.service)).ran == 0
    world.clock += timedelta(minutes=1)
    later = await process_audience_sync_queue(world.service)
    assert (later.queued, later.ran) == (1, 1)
    newest = jobs(world, audience)[0]
    assert newest.operation is SyncOperation.UPDATE


async def test_manual_only_and_inactive_audiences_never_run(world: World) -> None:
    world.load([row(0)])
    world.audience(SNAP, next_sync_at=world.clock, auto_sync=False)
    world.audience(SyncPlatform.TIKTOK, next_sync_at=world.clock, is_active=False)
    for _ in range(3):
        report = await process_audience_sync_queue(world.service)
        assert (report.queued, report.ran) == (0, 0)
        world.clock += timedelta(days=8)


async def test_a_failing_sync_is_retried_at_each_delay_by_later_ticks(world: World) -> None:
    world.load([row(i) for i in range(5)])
    audience = world.audience(SNAP, next_sync_at=world.clock)
    await world.fault(SNAP, "server_error", count=10_000)
    await process_audience_sync_queue(world.service)
    for delay in world.service.settings.retry_delays_seconds:
        (job,) = jobs(world, audience)
        assert job.status is SyncStatus.PENDING
        assert job.next_retry_at == world.clock + timedelta(seconds=delay)
        world.clock += timedelta(seconds=delay - 1)
        assert (await process_audience_sync_queue(world.service)).ran == 0
        world.clock += timedelta(seconds=1)
        assert (await process_audience_sync_queue(world.service)).ran == 1
    (job,) = jobs(world, audience)
    assert job.status is SyncStatus.FAILED
    with transaction(world.factory) as session:
        stored = AudienceRepository(session, world.tenant_id).get(audience)
        assert stored.last_sync_status is SyncStatus.FAILED
