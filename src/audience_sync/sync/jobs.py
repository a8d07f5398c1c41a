"""Sync job lifecycle: claim, start, finish, durable retries, cancel, hand back.

States: pending → running → completed | failed | cancelled. A retryable failure sends the job back
to `pending` with `next_retry_at = now + delay` (the delays are settings, every one used); the
scheduler's tick starts it when due, so a retry survives restarts and no worker sleeps. The
database allows one pending-or-running job per audience (I3); a second trigger gets that job back.

Every function takes `now` so tests drive a clock; none sleeps. A run's writes are fenced by its
lease (`sync.fence`); a job whose lease ran out is failed and resumed by `sync.reaper`.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, object_session, sessionmaker

from audience_sync.domain.models import SyncOperation, SyncStatus, TriggeredBy
from audience_sync.exceptions import (
    AudienceSyncError,
    AuthExpiredError,
    RetryableError,
    ValidationError,
)
from audience_sync.store.db import transaction
from audience_sync.store.diagnostics import DiagnosticsRepository
from audience_sync.store.repositories import AudienceRepository, SyncJobRepository
from audience_sync.store.tables import AudienceSyncJob, PlatformAudience, PlatformConnection
from audience_sync.sync.audiences import AudienceDeletedError
from audience_sync.sync.diagnostics import Diagnostics
from audience_sync.sync.fence import Lease, LeaseLostError, execute, fenced
from audience_sync.sync.messages import describe
from audience_sync.sync.progress import start_confirming

ACTIVE = (SyncStatus.PENDING, SyncStatus.RUNNING)
# How often `trigger_job` tries again when the active job it collided with ended meanwhile.
TRIGGER_ATTEMPTS = 3


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
    """A sync's metrics, plus per-identifier diagnostics."""

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
    # Which profiles' values were dropped or refused (`sync.diagnostics`): written with the
    # job's final figures, replacing an earlier attempt's.
    diagnostics: Diagnostics | None = None


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
                active = active_job(session, tenant_id, audience_id)
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


def active_job(session: Session, tenant_id: int, audience_id: uuid.UUID) -> AudienceSyncJob | None:
    """The audience's pending or running job, if any (never more than one:
    `uq_audience_sync_jobs_one_active`)."""
    return session.scalars(
        select(AudienceSyncJob).where(
            AudienceSyncJob.tenant_id == tenant_id,
            AudienceSyncJob.platform_audience_id == audience_id,
            AudienceSyncJob.status.in_(ACTIVE),
        )
    ).one_or_none()


def start_job(
    factory: sessionmaker[Session], tenant_id: int, job_id: uuid.UUID, now: datetime
) -> AudienceSyncJob | None:
    """Move a due pending job to running; None when another worker got it first, or when it
    is not due (a retry waiting for its delay: a message sent for an earlier attempt must not
    start it early)."""
    with transaction(factory) as session:
        claimed = execute(
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
                lease_token=uuid.uuid4().hex,
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


def complete_job(
    factory: sessionmaker[Session],
    tenant_id: int,
    job_id: uuid.UUID,
    metrics: JobMetrics,
    now: datetime,
    status: SyncStatus = SyncStatus.COMPLETED,
    lease_token: str | None = None,
) -> AudienceSyncJob:
    """Record the final metrics (completed or cancelled) and refresh the audience's status.
    With `lease_token`, only while that run holds the job: else `LeaseLostError`, and neither
    the job nor the audience is touched."""
    with _owned(factory, tenant_id, job_id, now, lease_token) as session:
        job = SyncJobRepository(session, tenant_id).get(job_id)
        _set_metrics(job, metrics)
        _finish(job, status, now, error=None)
        if metrics.pending_requests:
            job.confirmation = "processing"
            job.confirmation_requests = list(metrics.pending_requests)
            job.confirmation_next_at = metrics.confirm_at or now
            start_confirming(job, len(metrics.pending_requests), now)
        audience = AudienceRepository(session, tenant_id).get(job.platform_audience_id)
        record_on_audience(audience, job, now)
        return job


def fail_job(
    factory: sessionmaker[Session],
    tenant_id: int,
    job_id: uuid.UUID,
    error: AudienceSyncError,
    now: datetime,
    retry_delays: Sequence[int],
    metrics: JobMetrics | None = None,
    lease_token: str | None = None,
) -> AudienceSyncJob:
    """A retryable error with delays left re-queues the job; anything else fails it now.
    With `lease_token`, only while that run holds the job (see `complete_job`)."""
    with _owned(factory, tenant_id, job_id, now, lease_token) as session:
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
        if code := error.details.get("code"):  # e.g. a guard rail's (`update.GUARD_RAIL`)
            job.details = {**job.details, "error_code": str(code)}
        record_on_audience(audience, job, now)
        if isinstance(error, AuthExpiredError):
            _flag_connection(session, tenant_id, audience, message)
        return job


def fail_for_good(
    factory: sessionmaker[Session],
    tenant_id: int,
    job_id: uuid.UUID,
    message: str,
    now: datetime,
    lease_token: str | None = None,
) -> AudienceSyncJob:
    """Fail the job now with `message`, no retry (the run boundary's unexpected errors). The
    figures stay those of its last checkpoint. With `lease_token`, only while that run holds
    the job (see `complete_job`)."""
    with _owned(factory, tenant_id, job_id, now, lease_token) as session:
        job = SyncJobRepository(session, tenant_id).get(job_id)
        _finish(job, SyncStatus.FAILED, now, error=message)
        record_on_audience(
            AudienceRepository(session, tenant_id).get(job.platform_audience_id), job, now
        )
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


@contextmanager
def _owned(
    factory: sessionmaker[Session],
    tenant_id: int,
    job_id: uuid.UUID,
    now: datetime,
    lease_token: str | None,
) -> Iterator[Session]:
    """`fenced` when a run's lease token is given; a plain transaction otherwise."""
    if lease_token is None:
        with transaction(factory) as session:
            yield session
        return
    with fenced(factory, Lease(tenant_id, job_id, lease_token), now) as session:
        yield session


def _set_metrics(job: AudienceSyncJob, metrics: JobMetrics) -> None:
    job.profiles_sent = metrics.profiles_sent
    job.profiles_added = metrics.profiles_added
    job.profiles_removed = metrics.profiles_removed
    job.profiles_failed = metrics.profiles_failed
    job.match_rate = metrics.match_rate
    job.details = {**job.details, **metrics.details}
    found = metrics.diagnostics
    if found is not None:
        job.details = {**job.details, "diagnostics": found.summary()}
        session = object_session(job)
        assert session is not None, "a job's metrics are set in its transaction"
        DiagnosticsRepository(session, job.tenant_id).replace(job.id, found.entries())


def _finish(job: AudienceSyncJob, status: SyncStatus, now: datetime, error: str | None) -> None:
    job.status = status
    job.completed_at = now
    job.next_retry_at = None
    job.error_message = error
    started = job.started_at or now
    job.duration_ms = int((now - started).total_seconds() * 1000)


def record_on_audience(audience: PlatformAudience, job: AudienceSyncJob, now: datetime) -> None:
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


def release_job(
    factory: sessionmaker[Session],
    tenant_id: int,
    job_id: uuid.UUID,
    metrics: JobMetrics,
    now: datetime,
    lease_token: str | None = None,
) -> AudienceSyncJob | None:
    """Hand a running job back as `pending`, due now: its process is shutting down and the run
    stopped at a checkpoint, so the next start resumes from the last confirmed batch at once
    (no wait for the lease reaper). Like a retry, the job's figures are then the next attempt's;
    this attempt's are kept in `details.released`. None when the job is no longer running here
    (reaped, or finished meanwhile). With `lease_token`, only while that run holds the job."""
    try:
        with _owned(factory, tenant_id, job_id, now, lease_token) as session:
            return _release(session, tenant_id, job_id, metrics, now)
    except LeaseLostError:
        return None


def _release(
    session: Session, tenant_id: int, job_id: uuid.UUID, metrics: JobMetrics, now: datetime
) -> AudienceSyncJob | None:
    """A shutdown's hand-back, in the caller's transaction."""
    job = session.scalars(
        select(AudienceSyncJob).where(
            AudienceSyncJob.tenant_id == tenant_id,
            AudienceSyncJob.id == job_id,
            AudienceSyncJob.status == SyncStatus.RUNNING,
        )
    ).one_or_none()
    if job is None:
        return None
    _set_metrics(job, metrics)
    released = {
        "attempt": job.attempt,
        "at": now.isoformat(),
        "profiles_sent": metrics.profiles_sent,
        "profiles_added": metrics.profiles_added,
        "profiles_removed": metrics.profiles_removed,
        "profiles_failed": metrics.profiles_failed,
    }
    job.details = {**job.details, "released": [*job.details.get("released", []), released]}
    job.status = SyncStatus.PENDING
    job.next_retry_at = now
    job.error_message = None
    job.lease_token = None  # the next start takes a new one
    # A shutdown is no failed attempt: it must not use up the job's retries (`fail_job`).
    job.attempt = max(0, job.attempt - 1)
    return job
