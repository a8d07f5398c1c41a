"""Fenced runs (issue 17, finding 2): a run that waits out a `Retry-After` longer than the job's
lease keeps its lease through the wait; a run whose job was reaped while it waited stops at once
and writes nothing, and the job that resumes it ends with exact figures.

The connectors' sleep is the test's: it moves the HTTP client's clock and the engine's, and runs
the scheduler's reaper (`reap_stale_jobs`) during every wait, as a concurrent tick would."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import httpx
import polars as pl
import pytest
from sqlalchemy import event
from sqlalchemy.orm import Session

from audience_sync.config import Settings
from audience_sync.domain.models import SyncOperation, SyncPlatform, SyncStatus
from audience_sync.exceptions import RetryableError
from audience_sync.store import ipc
from audience_sync.store import snapshot as snapshot_module
from audience_sync.store.db import transaction
from audience_sync.store.repositories import AudienceRepository, SyncJobRepository
from audience_sync.store.snapshot import SnapshotRepository
from audience_sync.store.tables import AudienceSyncJob
from audience_sync.sync.confirm import ConfirmReport, confirm_due
from audience_sync.sync.fence import Heartbeat, Lease, LeaseLostError, fenced, heartbeat
from audience_sync.sync.jobs import (
    JobMetrics,
    Trigger,
    complete_job,
    fail_job,
    start_job,
    trigger_job,
)
from audience_sync.sync.reaper import reap_stale_jobs
from audience_sync.sync.runner import run_job
from audience_sync.testing.support import SANDBOX_URL

from .world import World, row

LEASE = 60
RETRY_AFTER = 110  # longer than the lease; under `RetryPolicy.max_retry_after` (120), so slept
MEMBERS, LEAVING, JOINING = 30, 5, 3
CASES = [
    (SyncOperation.UPDATE, SyncPlatform.META),
    (SyncOperation.REPLACE, SyncPlatform.META),  # the platform's own replace
    (SyncOperation.REPLACE, SyncPlatform.TIKTOK),  # a replace by difference
]


@dataclass
class Waits:
    """The connectors' sleep. Every wait moves both clocks and lets the reaper run; with
    `lose_job`, the first wait moves the engine's clock past the lease before the reaper runs
    (the worker stalled), so the job is reaped while its run waits."""

    world: World
    lose_job: bool = False
    slept: list[float] = field(default_factory=list)
    reaped: list[uuid.UUID] = field(default_factory=list)

    async def __call__(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.world.time.now += seconds
        self.world.clock += timedelta(seconds=seconds)
        if self.lose_job and len(self.slept) == 1:
            self.world.clock += timedelta(seconds=LEASE + 1)
        self.reaped += reap_stale_jobs(self.world.factory, self.world.clock, LEASE, 3)


async def prepared(world: World, platform: SyncPlatform) -> uuid.UUID:
    """An audience created with MEMBERS members; then LEAVING leave and JOINING join."""
    world.service.settings = Settings(job_lease_seconds=LEASE)
    world.load([row(i) for i in range(MEMBERS)])
    audience = world.audience(platform)
    created = await world.sync(audience, SyncOperation.CREATE)
    assert created.status is SyncStatus.COMPLETED, created.error_message
    world.leave(*[f"P{i}" for i in range(LEAVING)])
    world.load([row(i) for i in range(MEMBERS, MEMBERS + JOINING)])
    return audience


async def rate_limited(world: World, platform: SyncPlatform, count: int = 3) -> None:
    """The platform's next `count` calls are throttled with a `Retry-After` beyond the lease."""
    transport = httpx.ASGITransport(app=world.sandbox)
    async with httpx.AsyncClient(transport=transport, base_url=SANDBOX_URL) as client:
        body = {
            "kind": "rate_limit",
            "platform": platform.value,
            "count": count,
            "retry_after": RETRY_AFTER,
        }
        assert (await client.post("/_sandbox/faults", json=body)).status_code == 201


async def requests(world: World, platform: SyncPlatform) -> list[dict[str, Any]]:
    transport = httpx.ASGITransport(app=world.sandbox)
    async with httpx.AsyncClient(transport=transport, base_url=SANDBOX_URL) as client:
        params = {"platform": platform.value, "limit": 10_000}
        found: list[dict[str, Any]] = (await client.get("/_sandbox/requests", params=params)).json()
        return found


def assert_exact(job: AudienceSyncJob, operation: SyncOperation, platform: SyncPlatform) -> None:
    """The figures of the sync, counted once: every remaining member sent and accepted by a
    replace (the platform's own replace reports no removal), the joiners added and the leavers
    removed by an update or a replace by difference."""
    assert job.status is SyncStatus.COMPLETED, job.error_message
    assert job.profiles_failed == 0
    remaining = MEMBERS - LEAVING + JOINING
    by_difference = platform is SyncPlatform.TIKTOK
    if operation is SyncOperation.UPDATE or by_difference:
        assert (job.profiles_sent, job.profiles_added) == (JOINING, JOINING)
        assert job.profiles_removed == LEAVING
    else:
        assert (job.profiles_sent, job.profiles_added) == (remaining, remaining)
        assert job.profiles_removed == 0


def job_row(world: World, job_id: uuid.UUID) -> AudienceSyncJob:
    with transaction(world.factory) as session:
        return SyncJobRepository(session, world.tenant_id).get(job_id)


@pytest.mark.parametrize(("operation", "platform"), CASES)
async def test_a_retry_after_longer_than_the_lease_keeps_the_job(
    world: World, operation: SyncOperation, platform: SyncPlatform
) -> None:
    audience = await prepared(world, platform)
    waits = Waits(world)
    world.time.sleep = waits  # type: ignore[method-assign]
    await rate_limited(world, platform)

    job = await world.sync(audience, operation)  # None (lost) fails inside `sync`

    assert sum(waits.slept) >= 3 * RETRY_AFTER  # the three Retry-After waits, slept through
    assert max(waits.slept) <= LEASE / 3  # slept in slices, the lease renewed between them
    assert waits.reaped == []
    assert_exact(job, operation, platform)
    assert await world.held(platform, audience) == world.expected(platform)


@pytest.mark.parametrize(("operation", "platform"), CASES)
async def test_a_run_whose_job_was_reaped_while_it_waited_stops_without_writing(
    world: World, operation: SyncOperation, platform: SyncPlatform
) -> None:
    audience = await prepared(world, platform)
    waits = Waits(world, lose_job=True)
    world.time.sleep = waits  # type: ignore[method-assign]
    await rate_limited(world, platform)
    before = len(await requests(world, platform))
    held = await world.held(platform, audience)
    job, _ = trigger_job(
        world.factory, world.tenant_id, audience, Trigger(operation=operation), world.clock
    )

    assert await run_job(world.service, world.tenant_id, job.id) is None  # stopped: lost

    (resumed,) = waits.reaped
    old = job_row(world, job.id)
    assert old.status is SyncStatus.FAILED
    assert old.error_message is not None
    assert old.error_message.startswith("The sync worker stopped responding")
    figures = (old.profiles_sent, old.profiles_added, old.profiles_removed, old.profiles_failed)
    assert figures == (0, 0, 0, 0)  # nothing from the old run
    sent = (await requests(world, platform))[before:]
    assert [entry["fault"] for entry in sent] == ["rate_limit"]  # no call after the loss
    assert await world.held(platform, audience) == held

    world.time.sleep = Waits(world)  # type: ignore[method-assign]
    done = await run_job(world.service, world.tenant_id, resumed)
    assert done is not None
    assert_exact(done, operation, platform)  # the removals counted once, by the resume
    assert await world.held(platform, audience) == world.expected(platform)


def started(world: World) -> tuple[uuid.UUID, uuid.UUID, str]:
    """A running job of a fresh Meta audience: (audience, job, the run's lease token)."""
    world.load([row(i) for i in range(3)])
    audience = world.audience(SyncPlatform.META)
    job, _ = trigger_job(world.factory, world.tenant_id, audience, Trigger(), world.clock)
    running = start_job(world.factory, world.tenant_id, job.id, world.clock)
    assert running is not None
    assert running.lease_token
    return audience, job.id, running.lease_token


async def test_a_lost_run_cannot_finish_its_job_nor_touch_the_audience(world: World) -> None:
    audience, job_id, token = started(world)
    later = world.clock + timedelta(seconds=LEASE + 1)
    assert len(reap_stale_jobs(world.factory, later, LEASE, 3)) == 1
    metrics = JobMetrics(profiles_sent=3, profiles_added=3, profiles_removed=239)
    tenant = world.tenant_id

    assert heartbeat(world.factory, tenant, job_id, later, token) is Heartbeat.LOST
    with pytest.raises(LeaseLostError):
        complete_job(world.factory, tenant, job_id, metrics, later, lease_token=token)
    error = RetryableError("throttled")
    with pytest.raises(LeaseLostError):
        fail_job(world.factory, tenant, job_id, error, later, [60], metrics, lease_token=token)

    old = job_row(world, job_id)
    assert old.status is SyncStatus.FAILED
    assert old.error_message is not None
    assert old.error_message.startswith("The sync worker stopped")
    assert (old.profiles_sent, old.profiles_added, old.profiles_removed) == (0, 0, 0)
    with transaction(world.factory) as session:
        assert AudienceRepository(session, tenant).get(audience).last_sync_status is None


async def test_a_run_fenced_out_by_a_new_start_of_its_job_writes_nothing(world: World) -> None:
    """A job sent back to pending and started again has a new lease: the first run's writes,
    a snapshot part with them, roll back."""
    audience, job_id, first = started(world)
    tenant = world.tenant_id
    fail_job(world.factory, tenant, job_id, RetryableError("throttled"), world.clock, [0])
    second = start_job(world.factory, tenant, job_id, world.clock)
    assert second is not None
    assert second.lease_token not in (None, first)
    record = pl.DataFrame({"record_hash": ["a" * 64], "record": ["EMAIL_SHA256=" + "a" * 64]})

    def checkpoint(token: str | None) -> None:
        with fenced(world.factory, Lease(tenant, job_id, token), world.clock) as session:
            SnapshotRepository(session, tenant).confirm_records(audience, world.clock, record)

    with pytest.raises(LeaseLostError):
        checkpoint(first)
    assert heartbeat(world.factory, tenant, job_id, world.clock, first) is Heartbeat.LOST
    assert heartbeat(world.factory, tenant, job_id, world.clock, second.lease_token) is (
        Heartbeat.CONTINUE
    )
    with transaction(world.factory) as session:
        assert SnapshotRepository(session, tenant).count(audience) == 0
    checkpoint(second.lease_token)  # the run holding the lease writes
    with transaction(world.factory) as session:
        assert SnapshotRepository(session, tenant).count(audience) == 1


async def test_a_confirmation_waiting_out_a_long_retry_after_keeps_its_claim(
    world: World,
) -> None:
    """Google's status reads of a job are one tick's at a time: a read that waits out a
    `Retry-After` longer than the claim's lease renews the claim, so a second tick at the end of
    the wait neither reads the same statuses nor records them again."""
    world.service.settings = Settings(job_lease_seconds=LEASE)
    world.load([row(i) for i in range(25)])
    audience = world.audience(SyncPlatform.GOOGLE)
    job = await world.sync(audience, SyncOperation.CREATE)
    assert job.confirmation == "processing"
    world.clock += timedelta(minutes=30)
    transport = httpx.ASGITransport(app=world.sandbox)
    async with httpx.AsyncClient(transport=transport, base_url=SANDBOX_URL) as client:
        await client.post("/_sandbox/clock", json={"advance_seconds": 30 * 60})
        fault = {"kind": "rate_limit", "platform": "google", "path": "requestStatus",
                 "retry_after": RETRY_AFTER}  # fmt: skip
        assert (await client.post("/_sandbox/faults", json=fault)).status_code == 201
    other: list[ConfirmReport] = []
    waited: list[float] = []

    async def wait(seconds: float) -> None:
        waited.append(seconds)
        world.time.now += seconds
        world.clock += timedelta(seconds=seconds)
        if sum(waited) >= RETRY_AFTER and not other:  # another tick, at the end of the wait
            other.append(await confirm_due(world.service))

    world.time.sleep = wait  # type: ignore[method-assign]
    first = await confirm_due(world.service)

    assert other[0].jobs == 0  # the claim was renewed through the wait
    assert (first.jobs, first.statuses) == (1, ["confirmed"])
    reads = [e for e in await requests(world, SyncPlatform.GOOGLE) if "requestStatus" in e["path"]]
    assert [e["fault"] for e in reads] == ["rate_limit", None]  # one tick read them
    done = job_row(world, job.id)
    assert (done.confirmation, done.confirmation_checks) == ("confirmed", 1)


async def test_a_checkpoint_checks_its_lease_after_writing_its_part(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A checkpoint's lease check (the fence) is the last statement of its transaction, after
    its part's insert: on PostgreSQL the check locks the job's row until commit, and with the
    check first every other write of the run waited for the part's insert (seconds at a
    million members). What the fence guarantees is unchanged: the tests above."""
    statements: dict[int, list[str]] = {}
    committed: list[list[str]] = []

    def executed(connection: Any, cursor: Any, statement: str, *args: Any) -> None:
        statements.setdefault(id(connection), []).append(" ".join(statement.split()))

    def commit(connection: Any) -> None:
        committed.append(statements.pop(id(connection), []))

    inserted = ipc.insert_part

    def insert_part(session: Session, model: Any, *args: Any, **kwargs: Any) -> None:
        # On PostgreSQL a part goes in by COPY on the driver's connection, which statement
        # events do not see: the insert is noted here, once written.
        inserted(session, model, *args, **kwargs)
        written = f"INSERT INTO {model.__tablename__} (from its file)"
        statements.setdefault(id(session.connection()), []).append(written)

    monkeypatch.setattr(ipc, "insert_part", insert_part)  # `insert_frame`'s
    monkeypatch.setattr(snapshot_module, "insert_part", insert_part)  # a merge's
    world.load([row(i) for i in range(MEMBERS)])
    audience = world.audience(SyncPlatform.META)
    event.listen(world.engine, "before_cursor_execute", executed)
    event.listen(world.engine, "commit", commit)
    try:
        created = await world.sync(audience, SyncOperation.CREATE)
    finally:
        event.remove(world.engine, "before_cursor_execute", executed)
        event.remove(world.engine, "commit", commit)
    assert created.status is SyncStatus.COMPLETED, created.error_message

    def last(written: list[str], prefix: str) -> int:
        return max((i for i, text in enumerate(written) if text.startswith(prefix)), default=-1)

    checkpoints = [
        written
        for written in committed
        if last(written, "INSERT INTO audience_snapshot_parts") >= 0
    ]
    assert checkpoints
    for written in checkpoints:
        fence = last(written, "UPDATE audience_sync_jobs SET heartbeat_at")
        assert fence > last(written, "INSERT INTO audience_snapshot_parts"), written
