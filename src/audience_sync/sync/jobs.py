"""Sync job lifecycle: claim, start, heartbeat, finish, durable retries, stale leases, cancel.

States: pending → running → completed | failed | cancelled. A retryable failure sends the job back
to `pending` with `next_retry_at = now + delay` (the delays are settings, every one used); the
scheduler's tick starts it when due, so a retry survives restarts and no worker sleeps. The
database allows one pending-or-running job per audience (I3); a second trigger gets that job back.

Every function takes `now` so tests drive a clock; none sleeps.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any, cast

from sqlalchemy import CursorResult, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from audience_sync.domain.models import SyncOperation, SyncStatus, TriggeredBy
from audience_sync.exceptions import (
    AudienceSyncError,
    AuthExpiredError,
    RetryableError,
    ValidationError,
)
from audience_sync.store.db import transaction
from audience_sync.store.repositories import AudienceRepository, SyncJobRepository
from audience_sync.store.tables import AudienceSyncJob, PlatformAudience, PlatformConnection
from audience_sync.sync.audiences import AudienceDeletedError
from audience_sync.sync.messages import describe

ACTIVE = (SyncStatus.PENDING, SyncStatus.RUNNING)


@dataclass(frozen=True, slots=True)
class Trigger:
    """Who asks for which operation, and how."""

    operation: SyncOperation = SyncOperation.UPDATE
    triggered_by: TriggeredBy = TriggeredBy.MANUAL
    user_id: int | None = None
    dry_run: bool = False
    force: bool = False  # pass the guard rails (mass removal, empty replace)


@dataclass(slots=True)
class JobMetrics:
    """The spec's per-sync metrics, plus per-identifier diagnostics."""

    profiles_sent: int = 0
    profiles_added: int = 0
    profiles_removed: int = 0
    profiles_failed: int = 0
    match_rate: float | None = None
    details: dict[str, Any] = field(default_factory=dict)
    # Requests the platform accepted and processes after the job ends (`sync.confirm`), and
    # when their statuses are first read; a replace's second half waits in `details`.
    pending_requests: list[str] = field(default_factory=list)
    confirm_at: datetime | None = None


class Heartbeat(StrEnum):
    """What a running worker should do after reporting in."""

    CONTINUE = "continue"
    CANCEL = "cancel"  # a cancel was requested: stop at this batch boundary
    LOST = "lost"  # the job is no longer ours (reaped after a missed lease): stop now


def trigger_job(
    factory: sessionmaker[Session],
    tenant_id: int,
    audience_id: uuid.UUID,
    trigger: Trigger,
    now: datetime,
) -> tuple[AudienceSyncJob, bool]:
    """Queue a job for the audience; `(job, True)` when new, `(active job, False)` otherwise.
    Someone asking for a sync (not the scheduler) also brings a retry waiting for its delay
    forward to now: they asked for it now. Nothing is queued for a deleted audience
    (`AudienceDeletedError`), not even a second delete."""
    for _ in range(TRIGGER_ATTEMPTS):
        try:
            return _queue_new(factory, tenant_id, audience_id, trigger, now), True
        except IntegrityError:
            with transaction(factory) as session:
                active = _active_or_none(session, tenant_id, audience_id)
                if active is None:
                    # The job we collided with ended in between (or the audience was purged:
                    # `get` answers 404 then). Deleted: refuse; else queue ours now.
                    audience = AudienceRepository(session, tenant_id).get(audience_id)
                    if not audience.is_active:
                        raise AudienceDeletedError(audience.platform_audience_name) from None
                    continue
                due = active.next_retry_at
                waiting = active.status is SyncStatus.PENDING and due is not None and due > now
                if waiting and trigger.triggered_by is not TriggeredBy.SCHEDULED:
                    active.next_retry_at = now
                return active, False
    raise ValidationError("The audience's jobs changed during the request; ask again.")


TRIGGER_ATTEMPTS = 3


def _queue_new(
    factory: sessionmaker[Session],
    tenant_id: int,
    audience_id: uuid.UUID,
    trigger: Trigger,
    now: datetime,
) -> AudienceSyncJob:
    """Insert a pending job (IntegrityError when one is already active: I3)."""
    with transaction(factory) as session:
        audiences = AudienceRepository(session, tenant_id)
        audience = audiences.get(audience_id)
        if not audience.is_active:
            raise AudienceDeletedError(audience.platform_audience_name)
        job = AudienceSyncJob(
            platform_audience_id=audience_id,
            operation=trigger.operation,
            status=SyncStatus.PENDING,
            triggered_by=trigger.triggered_by,
            triggered_by_user_id=trigger.user_id,
            dry_run=trigger.dry_run,
            next_retry_at=now,
            details={"force": trigger.force},
        )
        SyncJobRepository(session, tenant_id).add(job)
        # Race with a delete: the check above may predate a delete job that completed before
        # our insert (the one-active-job index let it in). The delete deactivated the audience
        # before its job completed, so a read made after the insert sees it: on PostgreSQL
        # each statement reads what is committed by then; on SQLite the insert took the write
        # lock, so nothing can commit in between.
        if not audiences.is_active(audience_id):
            raise AudienceDeletedError(audience.platform_audience_name)
        return job


def _active_or_none(
    session: Session, tenant_id: int, audience_id: uuid.UUID
) -> AudienceSyncJob | None:
    return session.scalars(
        select(AudienceSyncJob).where(
            AudienceSyncJob.tenant_id == tenant_id,
            AudienceSyncJob.platform_audience_id == audience_id,
            AudienceSyncJob.status.in_(ACTIVE),
        )
    ).one_or_none()


def active_job(session: Session, tenant_id: int, audience_id: uuid.UUID) -> AudienceSyncJob:
    return session.scalars(
        select(AudienceSyncJob).where(
            AudienceSyncJob.tenant_id == tenant_id,
            AudienceSyncJob.platform_audience_id == audience_id,
            AudienceSyncJob.status.in_(ACTIVE),
        )
    ).one()


def start_job(
    factory: sessionmaker[Session], tenant_id: int, job_id: uuid.UUID, now: datetime
) -> AudienceSyncJob | None:
    """Move a due pending job to running; None when another worker got it first, or when it
    is not due (a retry waiting for its delay: a message sent for an earlier attempt must not
    start it early)."""
    with transaction(factory) as session:
        claimed = _execute(
            session,
            update(AudienceSyncJob)
            .where(
                AudienceSyncJob.tenant_id == tenant_id,
                AudienceSyncJob.id == job_id,
                AudienceSyncJob.status == SyncStatus.PENDING,
                or_(AudienceSyncJob.next_retry_at.is_(None), AudienceSyncJob.next_retry_at <= now),
            )
            .values(
                status=SyncStatus.RUNNING,
                heartbeat_at=now,
                next_retry_at=None,
                attempt=AudienceSyncJob.attempt + 1,
            )
            .execution_options(synchronize_session=False),
        )
        if claimed.rowcount != 1:
            return None
        job = SyncJobRepository(session, tenant_id).get(job_id)
        session.refresh(job)
        if job.started_at is None:
            job.started_at = now
        return job


def heartbeat(
    factory: sessionmaker[Session], tenant_id: int, job_id: uuid.UUID, now: datetime
) -> Heartbeat:
    """Renew the running job's lease; say whether to go on, cancel, or stop (lease lost)."""
    with transaction(factory) as session:
        renewed = _execute(
            session,
            update(AudienceSyncJob)
            .where(
                AudienceSyncJob.tenant_id == tenant_id,
                AudienceSyncJob.id == job_id,
                AudienceSyncJob.status == SyncStatus.RUNNING,
            )
            .values(heartbeat_at=now)
            .execution_options(synchronize_session=False),
        )
        if renewed.rowcount != 1:
            return Heartbeat.LOST
        cancel = session.scalar(
            select(AudienceSyncJob.cancel_requested).where(AudienceSyncJob.id == job_id)
        )
        return Heartbeat.CANCEL if cancel else Heartbeat.CONTINUE


def complete_job(
    factory: sessionmaker[Session],
    tenant_id: int,
    job_id: uuid.UUID,
    metrics: JobMetrics,
    now: datetime,
    status: SyncStatus = SyncStatus.COMPLETED,
) -> AudienceSyncJob:
    """Record the final metrics (completed or cancelled) and refresh the audience's status."""
    with transaction(factory) as session:
        job = SyncJobRepository(session, tenant_id).get(job_id)
        _set_metrics(job, metrics)
        _finish(job, status, now, error=None)
        if metrics.pending_requests:
            job.confirmation = "processing"
            job.confirmation_requests = list(metrics.pending_requests)
            job.confirmation_next_at = metrics.confirm_at or now
        audience = AudienceRepository(session, tenant_id).get(job.platform_audience_id)
        _record_on_audience(audience, job, now)
        return job


def fail_job(
    factory: sessionmaker[Session],
    tenant_id: int,
    job_id: uuid.UUID,
    error: AudienceSyncError,
    now: datetime,
    retry_delays: Sequence[int],
    metrics: JobMetrics | None = None,
) -> AudienceSyncJob:
    """A retryable error with delays left re-queues the job; anything else fails it now."""
    with transaction(factory) as session:
        job = SyncJobRepository(session, tenant_id).get(job_id)
        audience = AudienceRepository(session, tenant_id).get(job.platform_audience_id)
        message = describe(error, audience.platform)
        if metrics is not None:
            _set_metrics(job, metrics)
        if error.retryable and job.attempt <= len(retry_delays):
            delay = retry_delays[job.attempt - 1]
            if isinstance(error, RetryableError) and error.retry_after:
                delay = max(delay, int(error.retry_after))
            job.status = SyncStatus.PENDING
            job.next_retry_at = now + timedelta(seconds=delay)
            job.error_message = f"{message} (retry {job.attempt} of {len(retry_delays)})"
            return job
        _finish(job, SyncStatus.FAILED, now, error=message)
        _record_on_audience(audience, job, now)
        if isinstance(error, AuthExpiredError):
            _flag_connection(session, tenant_id, audience, message)
        return job


def cancel_job(
    factory: sessionmaker[Session], tenant_id: int, job_id: uuid.UUID, now: datetime
) -> AudienceSyncJob:
    """A pending job is cancelled now; a running one at its next batch boundary."""
    with transaction(factory) as session:
        job = SyncJobRepository(session, tenant_id).get(job_id)
        if job.status is SyncStatus.PENDING:
            _finish(job, SyncStatus.CANCELLED, now, error=None)
        elif job.status is SyncStatus.RUNNING:
            job.cancel_requested = True
        return job


def reap_stale_jobs(
    factory: sessionmaker[Session], now: datetime, lease_seconds: int
) -> list[uuid.UUID]:
    """Fail running jobs whose worker went silent, and queue a job that resumes each audience.

    A system task across tenants (the scheduler's tick); each job is then handled in its tenant.
    """
    cutoff = now - timedelta(seconds=lease_seconds)
    with transaction(factory) as session:
        stale = session.scalars(
            select(AudienceSyncJob).where(
                AudienceSyncJob.status == SyncStatus.RUNNING,
                AudienceSyncJob.heartbeat_at < cutoff,
            )
        ).all()
        for job in stale:
            _finish(
                job,
                SyncStatus.FAILED,
                now,
                error=(
                    f"The sync worker stopped responding (no heartbeat for {lease_seconds} s); "
                    "a new job was queued to resume from the last confirmed batch."
                ),
            )
        session.flush()
        resumed: list[uuid.UUID] = []
        for job in stale:
            retry = AudienceSyncJob(
                tenant_id=job.tenant_id,
                platform_audience_id=job.platform_audience_id,
                operation=job.operation,
                status=SyncStatus.PENDING,
                triggered_by=TriggeredBy.SCHEDULED,
                dry_run=job.dry_run,
                next_retry_at=now,
                details={"resumes": str(job.id)},
            )
            session.add(retry)
            session.flush()
            resumed.append(retry.id)
        return resumed


def due_jobs(factory: sessionmaker[Session], now: datetime) -> list[tuple[int, uuid.UUID]]:
    """`(tenant id, job id)` of pending jobs whose time has come, oldest first (system task)."""
    with factory() as session:
        rows = session.execute(
            select(AudienceSyncJob.tenant_id, AudienceSyncJob.id)
            .where(
                AudienceSyncJob.status == SyncStatus.PENDING,
                AudienceSyncJob.next_retry_at <= now,
            )
            .order_by(AudienceSyncJob.next_retry_at)
        ).all()
    return [(tenant_id, job_id) for tenant_id, job_id in rows]


def _execute(session: Session, statement: Any) -> CursorResult[Any]:
    """Run an UPDATE and keep its row count (how we know a conditional update won)."""
    return cast(CursorResult[Any], session.execute(statement))


def _set_metrics(job: AudienceSyncJob, metrics: JobMetrics) -> None:
    job.profiles_sent = metrics.profiles_sent
    job.profiles_added = metrics.profiles_added
    job.profiles_removed = metrics.profiles_removed
    job.profiles_failed = metrics.profiles_failed
    job.match_rate = metrics.match_rate
    job.details = {**job.details, **metrics.details}


def _finish(job: AudienceSyncJob, status: SyncStatus, now: datetime, error: str | None) -> None:
    job.status = status
    job.completed_at = now
    job.next_retry_at = None
    job.error_message = error
    started = job.started_at or now
    job.duration_ms = int((now - started).total_seconds() * 1000)


def _record_on_audience(audience: PlatformAudience, job: AudienceSyncJob, now: datetime) -> None:
    if job.dry_run:
        return
    audience.last_sync_at = now
    audience.last_sync_status = job.status
    audience.last_sync_error = job.error_message


def _flag_connection(
    session: Session, tenant_id: int, audience: PlatformAudience, message: str
) -> None:
    connection = session.scalars(
        select(PlatformConnection).where(
            PlatformConnection.tenant_id == tenant_id,
            PlatformConnection.platform == audience.platform,
        )
    ).one_or_none()
    if connection is not None:
        connection.status = "needs_reconnect"
        connection.status_message = message
