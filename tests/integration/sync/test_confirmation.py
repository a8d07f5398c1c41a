"""Google's asynchronous processing: a sync ends at acceptance, the tick confirms it later on
Google's schedule (wait 30 minutes, then back off) within its own budget of status reads."""

from __future__ import annotations

import uuid
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import Engine, text
from sqlalchemy.orm import Session, sessionmaker

from audience_sync.config import Settings
from audience_sync.domain.models import SyncOperation, SyncPlatform, SyncStatus, TriggeredBy
from audience_sync.sandbox import SandboxSettings, create_app
from audience_sync.scheduler.tick import process_audience_sync_queue
from audience_sync.store.db import transaction
from audience_sync.store.repositories import AudienceRepository, SyncJobRepository
from audience_sync.store.tables import AudienceSyncJob, PlatformAudience
from audience_sync.sync.confirm import due_confirmations
from audience_sync.testing.support import SANDBOX_URL

from .world import World, row

GOOGLE = SyncPlatform.GOOGLE
MINUTE = 60


async def control(world: World, method: str, path: str, **kwargs: Any) -> Any:
    transport = httpx.ASGITransport(app=world.sandbox)
    async with httpx.AsyncClient(transport=transport, base_url=SANDBOX_URL) as client:
        answer = await client.request(method, path, **kwargs)
        assert answer.status_code < 300, answer.text
        return answer.json()


async def advance(world: World, seconds: int) -> None:
    """Move our clock and the sandbox's together."""
    world.clock += timedelta(seconds=seconds)
    await control(world, "POST", "/_sandbox/clock", json={"advance_seconds": seconds})


async def status_reads(world: World) -> int:
    log = await control(world, "GET", "/_sandbox/requests", params={"platform": "google"})
    return sum(1 for entry in log if "requestStatus:retrieve" in entry["path"])


async def remove_alls(world: World) -> int:
    log = await control(world, "GET", "/_sandbox/requests", params={"platform": "google"})
    return sum(1 for entry in log if "removeAll" in entry["path"])


def job_of(world: World, job_id: uuid.UUID) -> AudienceSyncJob:
    with transaction(world.factory) as session:
        job = SyncJobRepository(session, world.tenant_id).get(job_id)
        session.expunge(job)
        return job


def audience_of(world: World, audience_id: uuid.UUID) -> PlatformAudience:
    with transaction(world.factory) as session:
        audience = AudienceRepository(session, world.tenant_id).get(audience_id)
        session.expunge(audience)
        return audience


async def test_a_30000_member_google_sync_ends_at_acceptance_and_the_tick_confirms_it(
    world: World,
) -> None:
    world.load([row(i) for i in range(30_000)])
    audience = world.audience(GOOGLE)
    job = await world.sync(audience, SyncOperation.CREATE)
    assert job.status is SyncStatus.COMPLETED
    # The connector's sleeps run on fake time: a sync that waited on Google's 30 minutes would
    # show them here (the old connector polled every 2 s up to 15 minutes a request).
    assert sum(world.time.sleeps) == 0
    assert job.confirmation == "processing"
    assert len(job.confirmation_requests or []) == 3  # 30,000 members in batches of 10,000
    assert job.confirmation_next_at == world.clock + timedelta(minutes=30)
    assert await status_reads(world) == 0

    await advance(world, 29 * MINUTE)
    early = await process_audience_sync_queue(world.service)
    assert (early.confirmations, early.status_reads) == (0, 0)  # Google says: wait 30 minutes

    await advance(world, 1 * MINUTE)
    tick = await process_audience_sync_queue(world.service)
    assert (tick.confirmations, tick.status_reads) == (1, 3)
    assert await status_reads(world) == 3 <= world.service.settings.confirmation_reads_per_tick
    done = job_of(world, job.id)
    assert (done.confirmation, done.confirmation_requests) == ("confirmed", [])
    assert done.confirmation_next_at is None
    assert done.match_rate is not None
    assert sum(done.details["confirmation"]["match_ranges"].values()) == 3
    held = audience_of(world, audience)
    assert held.match_rate == done.match_rate
    assert held.platform_size is not None
    assert held.last_sync_status is SyncStatus.COMPLETED
    assert (await process_audience_sync_queue(world.service)).status_reads == 0


async def test_status_reads_stay_within_the_budget_of_a_tick(world: World) -> None:
    world.load([row(i) for i in range(25)])
    audience = world.audience(GOOGLE)
    world.service.settings = Settings(confirmation_reads_per_tick=2, max_batch_size=10)
    job = await world.sync(audience, SyncOperation.CREATE)
    assert len(job.confirmation_requests or []) == 3
    await advance(world, 30 * MINUTE)
    first = await process_audience_sync_queue(world.service)
    assert first.status_reads == 2
    assert job_of(world, job.id).confirmation == "processing"
    assert len(job_of(world, job.id).confirmation_requests or []) == 1
    await advance(world, 30 * MINUTE)
    second = await process_audience_sync_queue(world.service)
    assert second.status_reads == 1
    assert job_of(world, job.id).confirmation == "confirmed"
    assert await status_reads(world) == 3


async def test_members_refused_in_processing_and_warnings_reach_the_job(world: World) -> None:
    rule = {
        "errors": {"PROCESSING_ERROR_REASON_DENIED_CONSENT": 2},
        "warnings": {"PROCESSING_WARNING_REASON_INTERNAL_ERROR": 1},
        "field_warnings": [{"reason": "WARNING_REASON_UNSPECIFIED", "field": "x"}],
    }
    await control(world, "POST", "/_sandbox/google/outcomes", json=rule)
    world.load([row(i) for i in range(10)])
    audience = world.audience(GOOGLE)
    job = await world.sync(audience, SyncOperation.CREATE)
    assert job.details["field_warnings"] == {"WARNING_REASON_UNSPECIFIED": 1}
    added = job.profiles_added
    await advance(world, 30 * MINUTE)
    await process_audience_sync_queue(world.service)
    done = job_of(world, job.id)
    assert done.confirmation == "confirmed"
    assert done.profiles_added == added - 2
    assert done.profiles_failed == job.profiles_failed + 2
    seen = done.details["confirmation"]
    assert seen["errors"] == {"PROCESSING_ERROR_REASON_DENIED_CONSENT": 2}
    assert seen["warnings"] == {"PROCESSING_WARNING_REASON_INTERNAL_ERROR": 1}


async def test_a_request_failed_without_error_counts_fails_the_job_and_the_audience(
    world: World,
) -> None:
    await control(world, "POST", "/_sandbox/google/outcomes", json={"failed": True})
    world.load([row(i) for i in range(10)])
    audience = world.audience(GOOGLE)
    job = await world.sync(audience, SyncOperation.CREATE)
    assert job.status is SyncStatus.COMPLETED
    await advance(world, 30 * MINUTE)
    await process_audience_sync_queue(world.service)
    done = job_of(world, job.id)
    assert (done.status, done.confirmation) == (SyncStatus.FAILED, "failed")
    assert "no reason given" in (done.error_message or "")
    held = audience_of(world, audience)
    assert held.last_sync_status is SyncStatus.FAILED
    assert held.last_sync_error == done.error_message


async def test_a_request_still_processing_is_read_again_at_doubling_intervals(
    engine: Engine, factory: sessionmaker[Session], tmp_path: Path
) -> None:
    slow = create_app(SandboxSettings(google_processing_seconds=5 * 3600))
    world = World(engine, factory, slow, tmp_path)
    await control(world, "PUT", "/_sandbox/rate_limits", json={"family": "google", "limit": None})
    world.load([row(i) for i in range(5)])
    audience = world.audience(GOOGLE)
    job = await world.sync(audience, SyncOperation.CREATE)
    waits = []
    due = job_of(world, job.id).confirmation_next_at
    while job_of(world, job.id).confirmation == "processing":
        assert due is not None
        await advance(world, int((due - world.clock).total_seconds()))
        await process_audience_sync_queue(world.service)
        after = job_of(world, job.id).confirmation_next_at
        if after is not None:
            waits.append(int((after - world.clock).total_seconds()) // MINUTE)
        due = after
    assert waits == [30, 60, 120, 240]  # read at 30, 60, 120, 240 min; at 480 it has ended
    assert job_of(world, job.id).confirmation == "confirmed"
    assert job_of(world, job.id).confirmation_checks == 5


async def test_a_google_replace_removes_the_old_members_once_the_ingest_is_processed(
    world: World,
) -> None:
    world.load([row(i) for i in range(10)])
    audience = world.audience(GOOGLE)
    await world.sync(audience, SyncOperation.CREATE)
    await advance(world, 30 * MINUTE)
    await process_audience_sync_queue(world.service)
    world.leave("P0", "P1", "P2")
    world.load([row(i) for i in range(10, 13)])
    job = await world.sync(audience, SyncOperation.REPLACE, force=True)
    assert sum(world.time.sleeps) == 0
    assert (job.status, job.confirmation) == (SyncStatus.COMPLETED, "processing")
    assert await remove_alls(world) == 0  # not before the ingest has been processed
    assert await world.held(GOOGLE, audience) != world.expected(GOOGLE)

    await advance(world, 30 * MINUTE)
    await process_audience_sync_queue(world.service)
    sent = job_of(world, job.id)
    assert sent.confirmation == "processing"
    assert await remove_alls(world) == 1
    assert sent.confirmation_requests == [sent.details["remove_all_request"]]
    assert await world.held(GOOGLE, audience) == world.expected(GOOGLE)

    await advance(world, 30 * MINUTE)
    await process_audience_sync_queue(world.service)
    assert job_of(world, job.id).confirmation == "confirmed"
    assert await remove_alls(world) == 1
    assert await world.held(GOOGLE, audience) == world.expected(GOOGLE)


def test_the_due_read_walks_its_index_without_statistics(world: World) -> None:
    if world.engine.dialect.name != "postgresql":
        return  # the planner in question is PostgreSQL's (autovacuum off: never analyzed)
    world.load([row(0)])
    audience = world.audience(GOOGLE)
    with transaction(world.factory) as session:
        for i in range(3_000):  # ended jobs, none of them waiting for a confirmation
            session.add(
                AudienceSyncJob(
                    tenant_id=world.tenant_id,
                    platform_audience_id=audience,
                    operation=SyncOperation.UPDATE,
                    status=SyncStatus.COMPLETED,
                    triggered_by=TriggeredBy.SCHEDULED,
                    confirmation="processing" if i % 1000 == 0 else "confirmed",
                    confirmation_next_at=world.clock,
                )
            )
    statement = due_confirmations(world.clock, 500).with_for_update(skip_locked=True)
    compiled = statement.compile(world.engine, compile_kwargs={"literal_binds": True})
    with world.engine.connect() as connection:
        plan = "\n".join(r[0] for r in connection.execute(text(f"EXPLAIN {compiled}")))
    assert "ix_audience_sync_jobs_confirmation_due" in plan, plan
