"""The run boundary: an error no step expected (a bug, a database, Polars or OS error) fails the
job with a message for the marketer and a log entry for the operator that quotes no member data;
a job whose lease keeps being lost is resumed a bounded number of times, then fails for good."""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import polars as pl
import pytest
from sqlalchemy.exc import OperationalError

from audience_sync.domain.models import SyncOperation, SyncPlatform, SyncStatus
from audience_sync.scheduler import distributed
from audience_sync.scheduler.tick import process_audience_sync_queue, upkeep
from audience_sync.store.db import transaction
from audience_sync.store.repositories import AudienceRepository, SyncJobRepository
from audience_sync.store.snapshot import SnapshotRepository
from audience_sync.store.tables import AudienceSyncJob
from audience_sync.sync.jobs import Trigger, start_job, trigger_job
from audience_sync.sync.prepare import Preparer
from audience_sync.sync.runner import run_job

from .world import World, row

SNAP = SyncPlatform.SNAPCHAT
# Member data an error message may quote; none of it may reach the log.
EMAIL = "person.3@example.com"
MOBILE_ID = "0000000B-AAAA-4BBB-8CCC-00000000000B"
PHONE = "+16505550003"
DIGEST = "a" * 64  # a hashed identifier is member data too


def a_bug(*_: Any, **__: Any) -> Any:
    raise RuntimeError(f"no record for {MOBILE_ID!r} ({EMAIL}, {PHONE}, {DIGEST})")


def a_polars_error(*_: Any, **__: Any) -> Any:
    # A real Polars error: its message quotes the values it failed on.
    pl.Series("email", [EMAIL, PHONE]).cast(pl.Int64)


def a_database_error(*_: Any, **__: Any) -> Any:
    orig = Exception(f"server closed the connection\nDETAIL:  Key (value)=({EMAIL}) is held")
    raise OperationalError("INSERT INTO snapshot VALUES (:v)", {"v": EMAIL}, orig)


# Where each error strikes: preparing (the event loop), or a checkpoint (the background writer).
INJECTED: dict[str, tuple[type, str, Callable[..., Any]]] = {
    "a bug while preparing": (Preparer, "prepare", a_bug),
    "a Polars error while preparing": (Preparer, "prepare", a_polars_error),
    "a database error at a checkpoint": (SnapshotRepository, "confirm_records", a_database_error),
}


def job_row(world: World, job_id: uuid.UUID) -> AudienceSyncJob:
    with transaction(world.factory) as session:
        return SyncJobRepository(session, world.tenant_id).get(job_id)


def queued(world: World, audience: uuid.UUID) -> uuid.UUID:
    job, _ = trigger_job(
        world.factory, world.tenant_id, audience, Trigger(SyncOperation.CREATE), world.clock
    )
    return job.id


def assert_failed_on_internal_error(world: World, audience: uuid.UUID, job_id: uuid.UUID) -> None:
    """Failed for good with the generic message, and the audience free for the next job."""
    job = job_row(world, job_id)
    assert job.status is SyncStatus.FAILED
    assert job.error_message is not None
    assert "internal error" in job.error_message
    assert str(job_id) in job.error_message  # the reference the operator finds in the log
    assert job.next_retry_at is None
    with transaction(world.factory) as session:
        stored = AudienceRepository(session, world.tenant_id).get(audience)
        assert stored.last_sync_status is SyncStatus.FAILED
    job_again, created = trigger_job(
        world.factory, world.tenant_id, audience, Trigger(), world.clock
    )
    assert created, "the failed job still holds the audience"
    assert job_again.id != job_id


def assert_logged_without_data(
    caplog: pytest.LogCaptureFixture, error: str, job_id: uuid.UUID
) -> None:
    """The error's type, its place in the code and the job are logged; no member data."""
    logged = caplog.text
    assert error in logged
    assert str(job_id) in logged
    assert "test_run_boundary.py" in logged  # the traceback's frames
    for value in (EMAIL, MOBILE_ID, PHONE, DIGEST, "person.3"):
        assert value not in logged


@pytest.mark.parametrize("case", list(INJECTED))
async def test_an_unexpected_error_fails_the_job_and_logs_no_member_data(
    world: World,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    case: str,
) -> None:
    owner, name, raiser = INJECTED[case]
    world.load([row(i) for i in range(10)])
    audience = world.audience(SNAP)
    job_id = queued(world, audience)
    monkeypatch.setattr(owner, name, raiser)
    with caplog.at_level(logging.INFO):
        done = await run_job(world.service, world.tenant_id, job_id)
    assert done is not None
    assert done.status is SyncStatus.FAILED
    assert_failed_on_internal_error(world, audience, job_id)
    error = {a_bug: "RuntimeError", a_polars_error: "InvalidOperationError"}.get(
        raiser, "OperationalError"
    )
    assert_logged_without_data(caplog, error, job_id)


async def test_the_scheduler_tick_runs_jobs_inside_the_boundary(
    world: World, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    world.load([row(i) for i in range(10)])
    audience = world.audience(SNAP)
    job_id = queued(world, audience)
    monkeypatch.setattr(Preparer, "prepare", a_bug)
    report = await process_audience_sync_queue(world.service)
    assert report.statuses == {"failed": 1}
    assert_failed_on_internal_error(world, audience, job_id)
    assert_logged_without_data(caplog, "RuntimeError", job_id)


async def test_a_celery_worker_runs_jobs_inside_the_boundary(
    world: World, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    world.load([row(i) for i in range(10)])
    audience = world.audience(SNAP)
    job_id = queued(world, audience)
    monkeypatch.setattr(Preparer, "prepare", a_bug)
    monkeypatch.setattr(distributed, "worker_service", lambda: world.service)
    # The task calls `asyncio.run`: on a thread of its own, as on a worker.
    status = await asyncio.to_thread(distributed.run, world.tenant_id, str(job_id))
    assert status == "failed"
    assert_failed_on_internal_error(world, audience, job_id)
    assert_logged_without_data(caplog, "RuntimeError", job_id)


async def test_a_job_whose_lease_keeps_being_lost_is_resumed_at_most_max_resumes_times(
    world: World,
) -> None:
    """Each run starts and then goes silent (its worker died, e.g. killed for memory): the tick
    reaps it and queues a resumption, three times by default; the fourth loss fails for good."""
    world.load([row(i) for i in range(10)])
    audience = world.audience(SNAP)
    runs = [queued(world, audience)]
    lease = timedelta(seconds=world.service.settings.job_lease_seconds + 1)
    for _ in range(10):
        assert start_job(world.factory, world.tenant_id, runs[-1], world.clock) is not None
        world.clock += lease
        report, _ = upkeep(world.service)
        if not report.reaped:
            break
        runs += report.reaped
    assert len(runs) == 1 + 3, "the first run and three resumptions"
    last = job_row(world, runs[-1])
    assert last.status is SyncStatus.FAILED
    assert last.error_message is not None
    assert "not resumed again" in last.error_message
    assert last.details["resumed"] == 3
    with transaction(world.factory) as session:
        jobs = SyncJobRepository(session, world.tenant_id)
        assert all(jobs.get(job).status is SyncStatus.FAILED for job in runs)
        stored = AudienceRepository(session, world.tenant_id).get(audience)
        assert stored.last_sync_status is SyncStatus.FAILED
        assert stored.last_sync_error == last.error_message


async def test_the_resume_cap_is_a_setting(world: World) -> None:
    world.service.settings = world.service.settings.model_copy(update={"max_resumes": 0})
    world.load([row(i) for i in range(3)])
    audience = world.audience(SNAP)
    job_id = queued(world, audience)
    assert start_job(world.factory, world.tenant_id, job_id, world.clock) is not None
    world.clock += timedelta(seconds=world.service.settings.job_lease_seconds + 1)
    report, _ = upkeep(world.service)
    assert report.reaped == []
    assert job_row(world, job_id).status is SyncStatus.FAILED
