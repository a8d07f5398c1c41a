"""A run's progress reaches its job row while it runs (for the API's process to read), at each
phase and at most once a second between, only under the run's lease; and a dry run whose plan
trips a guard rail completes with a warning and writes nothing."""

from __future__ import annotations

import dataclasses
import uuid
from datetime import timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from audience_sync.config import Settings
from audience_sync.connectors import BaseAudienceConnector
from audience_sync.domain.models import SyncOperation, SyncPlatform, SyncStatus
from audience_sync.domain.progress import Phase
from audience_sync.scheduler.tick import process_audience_sync_queue
from audience_sync.services.jobs import preview_of
from audience_sync.store.db import transaction
from audience_sync.store.repositories import SyncJobRepository
from audience_sync.store.snapshot import SnapshotRepository
from audience_sync.store.tables import AudienceSyncJob, MemberStatePart
from audience_sync.sync.fence import Lease, LeaseLostError, fenced
from audience_sync.sync.jobs import Trigger, start_job, trigger_job
from audience_sync.sync.progress import Mark, ProgressWriter
from audience_sync.sync.runner import Target
from audience_sync.testing.support import SANDBOX_URL

from .world import World, row

SNAP = SyncPlatform.SNAPCHAT
Seen = tuple[str | None, str | None, int, int | None]


def running_progress(world: World) -> Seen:
    """The running job's progress as another process reads it: its own session."""
    with transaction(world.factory) as session:
        job = session.scalars(
            select(AudienceSyncJob).where(
                AudienceSyncJob.tenant_id == world.tenant_id,
                AudienceSyncJob.status == SyncStatus.RUNNING,
            )
        ).one()
        return (job.progress_phase, job.progress_unit, job.progress_done, job.progress_total)


def watch_uploads(world: World, seen: list[Seen]) -> None:
    """Read the job's row from another session before each chunk is uploaded; a platform
    batch of one record, so a chunk (ten batches) is ten records."""

    def connect(target: Target) -> BaseAudienceConnector:
        connector = world.connect(target)
        upload = connector.upload

        async def watched(*args: Any, **kwargs: Any) -> Any:
            seen.append(running_progress(world))
            return await upload(*args, **kwargs)

        connector.upload = watched  # type: ignore[method-assign]
        return connector

    settings = Settings(max_batch_size=1)
    world.service = dataclasses.replace(world.service, connect=connect, settings=settings)


def record_writes(monkeypatch: pytest.MonkeyPatch) -> list[Mark]:
    """The progress writes of their own (a phase change, a throttled count)."""
    marks: list[Mark] = []
    original = ProgressWriter.write

    def write(self: ProgressWriter, mark: Mark) -> None:
        original(self, mark)
        marks.append(mark)

    monkeypatch.setattr(ProgressWriter, "write", write)
    return marks


def ticking(world: World, seconds: float) -> None:
    """A clock that moves `seconds` at each reading."""

    def clock() -> Any:
        world.clock += timedelta(seconds=seconds)
        return world.clock

    world.service = dataclasses.replace(world.service, clock=clock)


async def platform_writes(world: World) -> list[str]:
    """The requests the sandbox answered that could change an audience (not reads)."""
    transport = httpx.ASGITransport(app=world.sandbox)
    async with httpx.AsyncClient(transport=transport, base_url=SANDBOX_URL) as client:
        log = (await client.get("/_sandbox/requests")).json()
    return [f"{e['method']} {e['path']}" for e in log if e["method"] != "GET"]


def stored(world: World, audience: uuid.UUID) -> tuple[int, Any]:
    """The snapshot's records and the member state's parts (what a dry run must not touch)."""
    with transaction(world.factory) as session:
        held = SnapshotRepository(session, world.tenant_id).count(audience)
        parts = session.execute(
            select(MemberStatePart.prepared_at, MemberStatePart.data)
            .where(MemberStatePart.tenant_id == world.tenant_id)
            .where(MemberStatePart.audience_id == audience)
            .order_by(MemberStatePart.part)
        ).all()
    return held, [tuple(p) for p in parts]


async def test_uploads_show_their_progress_on_the_job_row_while_the_run_goes(
    world: World,
) -> None:
    world.load([row(i) for i in range(200)])
    audience = world.audience(SNAP)
    seen: list[Seen] = []
    watch_uploads(world, seen)
    job = await world.sync(audience, SyncOperation.CREATE)
    assert job.status is SyncStatus.COMPLETED, job.error_message
    adds = job.details["plan"]["adds"]
    assert len(seen) > 3  # several chunks
    # Planning still, at the first chunk, when the upload's phase waited for a checkpoint.
    seen = [s for s in seen if s != ("planning", None, 0, None)]
    assert {s[:2] for s in seen} == {("uploading", "records")}
    assert {s[3] for s in seen} == {adds}
    done = [s[2] for s in seen]
    # A chunk's count is written with its checkpoint, while the next chunk is sent.
    assert done == sorted(done)
    assert 0 < done[-1] < adds
    assert (job.progress_phase, job.progress_unit) == ("finishing", None)


async def test_each_phase_is_written_once_and_counts_no_more_than_once_a_second(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    world.load([row(i) for i in range(60)])
    audience = world.audience(SNAP)
    world.service = dataclasses.replace(world.service, settings=Settings(max_batch_size=1))
    marks = record_writes(monkeypatch)
    job = await world.sync(audience, SyncOperation.CREATE)  # the clock stands still
    assert job.status is SyncStatus.COMPLETED, job.error_message
    # Six chunks or more, and no write of its own for any of them: their counts ride on
    # their checkpoints. The upload's phase is written by itself unless the member state's
    # save still runs then (it rides on the first checkpoint instead).
    own = [(m.phase, m.unit, m.done, m.total) for m in marks]
    uploading = ("uploading", "records", 0, job.details["plan"]["adds"])
    assert [w for w in own if w != uploading] == [
        ("reading", "members", 0, 60),
        ("planning", None, 0, None),
        ("finishing", None, 0, None),
    ]
    assert own.count(uploading) <= 1


async def test_the_members_read_are_counted_once_a_second_has_passed(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    world.load([row(i) for i in range(30)])
    audience = world.audience(SNAP)
    await world.sync(audience, SyncOperation.CREATE)
    world.leave("P0", "P1")
    world.load([row(i) for i in range(30, 33)])
    marks = record_writes(monkeypatch)
    ticking(world, 2)
    job = await world.sync(audience)
    assert job.status is SyncStatus.COMPLETED, job.error_message
    reading = [(m.done, m.total) for m in marks if m.phase == "reading"]
    # The members taken from the state, then the three that joined (prepared).
    assert reading == [(0, 31), (28, 31), (31, 31)]
    removing = [m for m in marks if m.phase == "removing"]
    assert [(m.done, m.total) for m in removing] == [(0, job.details["plan"]["removes"])]


async def test_a_worker_that_lost_its_job_writes_no_progress(world: World) -> None:
    world.load([row(0)])
    audience = world.audience(SNAP)
    queued, _ = trigger_job(world.factory, world.tenant_id, audience, Trigger(), world.clock)
    assert start_job(world.factory, world.tenant_id, queued.id, world.clock) is not None
    stale = Lease(world.tenant_id, queued.id, "not-the-run-s-token")
    writer = ProgressWriter(
        world.tenant_id,
        queued.id,
        lambda: fenced(world.factory, stale, world.clock),
        lambda: world.clock,
    )
    with pytest.raises(LeaseLostError):
        await writer.begin(Phase.READING)
    with transaction(world.factory) as session:
        assert SyncJobRepository(session, world.tenant_id).get(queued.id).progress_phase is None


async def test_a_dry_run_of_a_mass_removal_completes_with_a_warning_and_writes_nothing(
    world: World,
) -> None:
    world.load([row(i) for i in range(20)])
    audience = world.audience(SNAP)
    await world.sync(audience, SyncOperation.CREATE)
    world.leave(*[f"P{i}" for i in range(15)])
    before, held = await platform_writes(world), await world.held(SNAP, audience)
    state = stored(world, audience)
    dry = await world.sync(audience, dry_run=True)
    assert dry.status is SyncStatus.COMPLETED, dry.error_message
    preview = preview_of(dry)
    assert preview is not None
    assert [w["code"] for w in preview.warnings] == ["mass_removal"]
    assert "above the 50% guard rail" in preview.warnings[0]["message"]
    assert preview.removes is not None
    assert preview.removes > 0
    assert preview.members == 5
    assert await platform_writes(world) == before
    assert await world.held(SNAP, audience) == held
    assert stored(world, audience) == state
    refused = await world.sync(audience)  # the same sync, for real: refused as before
    assert refused.status is SyncStatus.FAILED
    assert "above the 50% guard rail" in (refused.error_message or "")
    assert "warnings" not in refused.details


@pytest.mark.parametrize("platform", [SNAP, SyncPlatform.TIKTOK])
async def test_a_dry_run_replace_that_would_empty_the_audience_completes_with_a_warning(
    world: World, platform: SyncPlatform
) -> None:
    world.load([row(0), row(1)])
    audience = world.audience(platform)
    await world.sync(audience, SyncOperation.CREATE)
    world.leave("P0", "P1")
    before, state = await platform_writes(world), stored(world, audience)
    dry = await world.sync(audience, SyncOperation.REPLACE, dry_run=True)
    assert dry.status is SyncStatus.COMPLETED, dry.error_message
    preview = preview_of(dry)
    assert preview is not None
    assert [w["code"] for w in preview.warnings] == ["empty_replace"]
    assert (preview.adds, preview.removes) == (0, state[0])
    assert await platform_writes(world) == before
    assert stored(world, audience) == state
    refused = await world.sync(audience, SyncOperation.REPLACE)
    assert refused.status is SyncStatus.FAILED
    assert "would be emptied" in (refused.error_message or "")


@pytest.mark.parametrize("platform", [SNAP, SyncPlatform.GOOGLE])
async def test_a_dry_run_create_of_an_audience_not_on_the_platform_plans_and_writes_nothing(
    world: World, platform: SyncPlatform
) -> None:
    world.load([row(i) for i in range(10)])
    audience = world.audience(platform)
    dry = await world.sync(audience, SyncOperation.CREATE, dry_run=True)
    assert dry.status is SyncStatus.COMPLETED, dry.error_message
    preview = preview_of(dry)
    assert preview is not None
    assert preview.warnings == []
    assert preview.adds
    assert preview.members_to_add == 10
    assert (preview.removes, preview.members) == (0, 10)
    assert await platform_writes(world) == []
    assert await world.sandbox_audiences(platform) == []
    assert stored(world, audience) == (0, [])
    assert (dry.progress_phase, dry.confirmation) == ("finishing", "none")


async def test_google_s_processing_shows_as_the_requests_confirmed(world: World) -> None:
    world.load([row(i) for i in range(25)])
    audience = world.audience(SyncPlatform.GOOGLE)
    world.service.settings = Settings(max_batch_size=10)
    job = await world.sync(audience, SyncOperation.CREATE)
    assert (job.progress_phase, job.progress_unit, job.progress_done, job.progress_total) == (
        "confirming",
        "requests",
        0,
        3,
    )
    world.clock += timedelta(minutes=30)
    transport = httpx.ASGITransport(app=world.sandbox)
    async with httpx.AsyncClient(transport=transport, base_url=SANDBOX_URL) as client:
        await client.post("/_sandbox/clock", json={"advance_seconds": 30 * 60})
    await process_audience_sync_queue(world.service)
    with transaction(world.factory) as session:
        done = SyncJobRepository(session, world.tenant_id).get(job.id)
        assert done.confirmation == "confirmed"
        assert (done.progress_done, done.progress_total) == (3, 3)
