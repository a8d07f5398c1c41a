"""Sync job lifecycle on both databases: exclusive, durable retries, leases, cancel, schedule."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy.orm import Session, sessionmaker

from audience_sync.domain.models import SyncOperation, SyncPlatform, SyncStatus, TriggeredBy
from audience_sync.domain.schedule import check_interval
from audience_sync.exceptions import (
    AuthExpiredError,
    NotFoundError,
    PlatformServerError,
    RateLimitError,
    ValidationError,
)
from audience_sync.services.audiences import enqueue_due
from audience_sync.store.db import transaction
from audience_sync.store.repositories import (
    AudienceRepository,
    SegmentRepository,
    SyncJobRepository,
    TenantRepository,
)
from audience_sync.store.tables import AudienceSyncJob, PlatformAudience, PlatformConnection
from audience_sync.sync.fence import Heartbeat, heartbeat
from audience_sync.sync.jobs import (
    JobMetrics,
    Trigger,
    cancel_job,
    complete_job,
    due_jobs,
    fail_job,
    start_job,
    trigger_job,
)
from audience_sync.sync.reaper import reap_stale_jobs

T0 = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)
DELAYS = (60, 300, 900, 3600)


def make_audience(
    factory: sessionmaker[Session], *, auto_sync: bool = True, next_sync_at: datetime | None = T0
) -> tuple[int, uuid.UUID]:
    with transaction(factory) as session:
        tenant = TenantRepository(session).get("default")
        segment = SegmentRepository(session, tenant.id).ensure("VIP")
        audience = AudienceRepository(session, tenant.id).add(
            PlatformAudience(
                segment_id=segment.id,
                platform=SyncPlatform.META,
                platform_audience_name="VIP",
                ad_account_id="act_1",
                auto_sync=auto_sync,
                next_sync_at=next_sync_at,
            )
        )
        return tenant.id, audience.id


def test_a_second_trigger_returns_the_job_already_queued(factory: sessionmaker[Session]) -> None:
    tenant, audience = make_audience(factory)
    first, created = trigger_job(factory, tenant, audience, Trigger(), T0)
    again, created_again = trigger_job(factory, tenant, audience, Trigger(), T0)
    assert (created, created_again) == (True, False)
    assert again.id == first.id
    start_job(factory, tenant, first.id, T0)
    running, created_while_running = trigger_job(factory, tenant, audience, Trigger(), T0)
    assert (running.id, running.status, created_while_running) == (
        first.id,
        SyncStatus.RUNNING,
        False,
    )


def test_only_one_worker_can_start_a_job(factory: sessionmaker[Session]) -> None:
    tenant, audience = make_audience(factory)
    job, _ = trigger_job(factory, tenant, audience, Trigger(), T0)
    assert start_job(factory, tenant, job.id, T0) is not None
    assert start_job(factory, tenant, job.id, T0) is None


def test_another_tenant_cannot_trigger_or_start_a_job(factory: sessionmaker[Session]) -> None:
    tenant, audience = make_audience(factory)
    with transaction(factory) as session:
        other = TenantRepository(session).create("other").id
    with pytest.raises(NotFoundError, match="not found"):
        trigger_job(factory, other, audience, Trigger(), T0)
    job, _ = trigger_job(factory, tenant, audience, Trigger(), T0)
    assert start_job(factory, other, job.id, T0) is None


def test_transient_failures_retry_at_each_configured_delay_then_fail(
    factory: sessionmaker[Session],
) -> None:
    tenant, audience = make_audience(factory)
    job, _ = trigger_job(factory, tenant, audience, Trigger(), T0)
    now = T0
    for delay in DELAYS:
        assert [j for _, j in due_jobs(factory, now)] == [job.id]
        start_job(factory, tenant, job.id, now)
        failed = fail_job(factory, tenant, job.id, PlatformServerError("boom"), now, DELAYS)
        assert failed.status is SyncStatus.PENDING
        assert failed.next_retry_at == now + timedelta(seconds=delay)
        assert due_jobs(factory, now + timedelta(seconds=delay - 1)) == []
        now += timedelta(seconds=delay)
    start_job(factory, tenant, job.id, now)
    final = fail_job(factory, tenant, job.id, PlatformServerError("boom"), now, DELAYS)
    assert final.status is SyncStatus.FAILED
    assert final.attempt == len(DELAYS) + 1
    assert "Meta had a server error" in (final.error_message or "")


def failed_once(factory: sessionmaker[Session]) -> tuple[int, uuid.UUID, AudienceSyncJob]:
    """An audience whose job failed at T0 with a server error: its retry waits 60 s."""
    tenant, audience = make_audience(factory)
    job, _ = trigger_job(factory, tenant, audience, Trigger(), T0)
    start_job(factory, tenant, job.id, T0)
    fail_job(factory, tenant, job.id, PlatformServerError("boom"), T0, DELAYS)
    return tenant, audience, job


def test_a_retry_cannot_be_started_before_its_delay(factory: sessionmaker[Session]) -> None:
    """A message sent for an earlier attempt (distributed mode) must not start a retry early."""
    tenant, _, job = failed_once(factory)  # its retry is due at T0 + 60 s
    assert start_job(factory, tenant, job.id, T0 + timedelta(seconds=59)) is None
    assert start_job(factory, tenant, job.id, T0 + timedelta(seconds=60)) is not None


def test_asking_for_a_sync_brings_a_waiting_retry_forward_and_the_schedule_does_not(
    factory: sessionmaker[Session],
) -> None:
    tenant, audience, job = failed_once(factory)
    later = T0 + timedelta(seconds=10)
    scheduled = Trigger(triggered_by=TriggeredBy.SCHEDULED)
    waiting, created = trigger_job(factory, tenant, audience, scheduled, later)
    retry_at = T0 + timedelta(seconds=60)
    assert (waiting.id, created, waiting.next_retry_at) == (job.id, False, retry_at)
    asked, created = trigger_job(factory, tenant, audience, Trigger(), later)
    assert (asked.id, created, asked.next_retry_at) == (job.id, False, later)
    assert start_job(factory, tenant, job.id, later) is not None


def test_a_retry_waits_at_least_as_long_as_the_platform_asked(
    factory: sessionmaker[Session],
) -> None:
    tenant, audience = make_audience(factory)
    job, _ = trigger_job(factory, tenant, audience, Trigger(), T0)
    start_job(factory, tenant, job.id, T0)
    failed = fail_job(factory, tenant, job.id, RateLimitError("slow", retry_after=600), T0, DELAYS)
    assert failed.next_retry_at == T0 + timedelta(seconds=600)


def test_an_expired_token_fails_at_once_and_flags_the_connection(
    factory: sessionmaker[Session],
) -> None:
    tenant, audience = make_audience(factory)
    with transaction(factory) as session:
        session.add(
            PlatformConnection(
                tenant_id=tenant,
                platform=SyncPlatform.META,
                ad_account_id="act_1",
                credentials_encrypted="x",
            )
        )
    job, _ = trigger_job(factory, tenant, audience, Trigger(), T0)
    start_job(factory, tenant, job.id, T0)
    failed = fail_job(factory, tenant, job.id, AuthExpiredError("code 190"), T0, DELAYS)
    expected = (
        "Meta access token expired or was revoked — reconnect the Meta account "
        "(`audience-sync connections set meta …` or `PUT /api/v1/connections/meta`)."
    )
    assert (failed.status, failed.error_message) == (SyncStatus.FAILED, expected)
    with transaction(factory) as session:
        stored = AudienceRepository(session, tenant).get(audience)
        assert (stored.last_sync_status, stored.last_sync_error) == (SyncStatus.FAILED, expected)
        connection = session.query(PlatformConnection).one()
        assert connection.status == "needs_reconnect"


def test_completion_records_metrics_duration_and_audience_status(
    factory: sessionmaker[Session],
) -> None:
    tenant, audience = make_audience(factory)
    job, _ = trigger_job(factory, tenant, audience, Trigger(), T0)
    start_job(factory, tenant, job.id, T0)
    metrics = JobMetrics(profiles_sent=10, profiles_added=8, profiles_failed=2, match_rate=0.7)
    done = complete_job(factory, tenant, job.id, metrics, T0 + timedelta(seconds=3))
    assert (done.status, done.duration_ms, done.profiles_added) == (SyncStatus.COMPLETED, 3000, 8)
    with transaction(factory) as session:
        stored = AudienceRepository(session, tenant).get(audience)
        assert stored.last_sync_status is SyncStatus.COMPLETED


def test_a_silent_worker_loses_its_lease_and_the_audience_is_queued_again(
    factory: sessionmaker[Session],
) -> None:
    tenant, audience = make_audience(factory)
    job, _ = trigger_job(factory, tenant, audience, Trigger(), T0)
    start_job(factory, tenant, job.id, T0)
    assert heartbeat(factory, tenant, job.id, T0 + timedelta(seconds=200)) is Heartbeat.CONTINUE
    assert (
        reap_stale_jobs(factory, T0 + timedelta(seconds=400), lease_seconds=300, max_resumes=3)
        == []
    )
    (resumed,) = reap_stale_jobs(
        factory, T0 + timedelta(seconds=501), lease_seconds=300, max_resumes=3
    )
    assert heartbeat(factory, tenant, job.id, T0 + timedelta(seconds=502)) is Heartbeat.LOST
    with transaction(factory) as session:
        old = SyncJobRepository(session, tenant).get(job.id)
        new = SyncJobRepository(session, tenant).get(resumed)
        assert old.status is SyncStatus.FAILED
        assert "stopped responding" in (old.error_message or "")
        assert (new.status, new.details["resumes"]) == (SyncStatus.PENDING, str(job.id))


def test_cancel_is_immediate_when_pending_and_at_the_next_batch_when_running(
    factory: sessionmaker[Session],
) -> None:
    tenant, audience = make_audience(factory)
    pending, _ = trigger_job(factory, tenant, audience, Trigger(), T0)
    assert cancel_job(factory, tenant, pending.id, T0).status is SyncStatus.CANCELLED
    running, _ = trigger_job(factory, tenant, audience, Trigger(), T0)
    start_job(factory, tenant, running.id, T0)
    assert cancel_job(factory, tenant, running.id, T0).status is SyncStatus.RUNNING
    assert heartbeat(factory, tenant, running.id, T0) is Heartbeat.CANCEL


def test_due_audiences_run_once_per_interval_and_manual_ones_never(
    factory: sessionmaker[Session],
) -> None:
    tenant, audience = make_audience(factory)
    make_manual = make_audience(factory, auto_sync=False)
    queued = enqueue_due(factory, T0)
    assert len(queued) == 1
    with transaction(factory) as session:
        job = SyncJobRepository(session, tenant).get(queued[0][1])
        assert (job.operation, job.triggered_by) == (SyncOperation.CREATE, TriggeredBy.SCHEDULED)
        stored = AudienceRepository(session, tenant).get(audience)
        assert stored.next_sync_at == T0 + timedelta(hours=24)
    assert enqueue_due(factory, T0 + timedelta(hours=23)) == []
    assert make_manual[1] not in {a for _, a in queued}


def test_intervals_are_the_specs_and_at_least_the_minimum() -> None:
    assert check_interval(6, 1) == 6
    with pytest.raises(ValidationError, match="one of 1, 6, 12, 24, 168"):
        check_interval(2, 1)
    with pytest.raises(ValidationError, match="one of 12, 24, 168"):
        check_interval(6, 12)
