"""Jobs whose worker went silent: failed once their lease runs out, and resumed by a new job, a
bounded number of times.

A run renews its lease at every checkpoint and during its waits (`sync.fence`, `sync.lease`). A
job whose lease has not been renewed for `AUDIENCE_SYNC_JOB_LEASE_SECONDS` lost its worker (killed,
out of memory, machine lost): the scheduler's tick fails it and queues a job that resumes from the
last confirmed chunk. A job that keeps losing its worker (one that runs it out of memory every
time) would be resumed for ever: after `AUDIENCE_SYNC_MAX_RESUMES` resumptions in a row it fails
for good instead. The count is carried in the resuming job's `details.resumed`.
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select, update
from sqlalchemy.orm import Session, sessionmaker

from audience_sync.domain.models import SyncStatus, TriggeredBy
from audience_sync.store.db import transaction
from audience_sync.store.repositories import AudienceRepository
from audience_sync.store.tables import AudienceSyncJob
from audience_sync.sync.fence import execute
from audience_sync.sync.jobs import record_on_audience

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Reaping:
    """When a running job counts as stale, and how often a job is resumed in a row."""

    now: datetime
    lease_seconds: int
    max_resumes: int

    @property
    def cutoff(self) -> datetime:
        return self.now - timedelta(seconds=self.lease_seconds)

    def resumed_message(self) -> str:
        return (
            f"The sync worker stopped responding (no heartbeat for {self.lease_seconds} s); "
            "a new job was queued to resume from the last confirmed batch."
        )

    def final_message(self, resumed: int) -> str:
        return (
            f"The sync worker stopped responding (no heartbeat for {self.lease_seconds} s) "
            f"after this sync had already been resumed {resumed} times, so it was not resumed "
            "again. Ask the operator to check the sync workers' logs, then sync again."
        )


def reap_stale_jobs(
    factory: sessionmaker[Session], now: datetime, lease_seconds: int, max_resumes: int
) -> list[uuid.UUID]:
    """Fail running jobs whose worker went silent, and queue a job that resumes each audience,
    unless the job was already resumed `max_resumes` times in a row; the resuming jobs' ids.

    A system task across tenants (the scheduler's tick); each job is then handled in its tenant.
    """
    reaping = Reaping(now, lease_seconds, max_resumes)
    with transaction(factory) as session:
        found = session.scalars(
            select(AudienceSyncJob).where(
                AudienceSyncJob.status == SyncStatus.RUNNING,
                AudienceSyncJob.heartbeat_at < reaping.cutoff,
            )
        ).all()
        resumed: list[uuid.UUID] = []
        for job in found:
            times = resumes_of(job)
            if times >= max_resumes:
                give_up(session, job, reaping, times)
            elif reap(session, job, reaping, reaping.resumed_message()):
                resumed.append(resume(session, job, now, times + 1))
        return resumed


def resumes_of(job: AudienceSyncJob) -> int:
    """How many times in a row this job's sync was resumed after a lost worker."""
    return int((job.details or {}).get("resumed", 0))


def resume(session: Session, job: AudienceSyncJob, now: datetime, times: int) -> uuid.UUID:
    """Queue the job that resumes a reaped one, due now."""
    retry = AudienceSyncJob(
        tenant_id=job.tenant_id,
        platform_audience_id=job.platform_audience_id,
        operation=job.operation,
        status=SyncStatus.PENDING,
        triggered_by=TriggeredBy.SCHEDULED,
        dry_run=job.dry_run,
        next_retry_at=now,
        details={"resumes": str(job.id), "resumed": times},
    )
    session.add(retry)
    session.flush()
    return retry.id


def give_up(session: Session, job: AudienceSyncJob, reaping: Reaping, times: int) -> None:
    """Fail a stale job for good, and say so on its audience."""
    message = reaping.final_message(times)
    if not reap(session, job, reaping, message):
        return
    log.warning(
        "sync job %s lost its worker again after %d resumptions: failed, not resumed",
        job.id,
        times,
        extra={"tenant_id": job.tenant_id},
    )
    session.refresh(job)
    record_on_audience(
        AudienceRepository(session, job.tenant_id).get(job.platform_audience_id), job, reaping.now
    )


def reap(session: Session, job: AudienceSyncJob, reaping: Reaping, message: str) -> bool:
    """Fail one stale job, unless its run renewed the lease since it was read: the condition is
    checked in the UPDATE itself (a run renewing at the same moment wins, or loses the job).
    The lease token is cleared: the old run's writes then match no row."""
    now = reaping.now
    started = job.started_at or now
    reaped = execute(
        session,
        update(AudienceSyncJob)
        .where(
            AudienceSyncJob.id == job.id,
            AudienceSyncJob.status == SyncStatus.RUNNING,
            AudienceSyncJob.heartbeat_at < reaping.cutoff,
        )
        .values(
            status=SyncStatus.FAILED,
            completed_at=now,
            next_retry_at=None,
            error_message=message,
            duration_ms=int((now - started).total_seconds() * 1000),
            lease_token=None,
        )
        .execution_options(synchronize_session=False),
    )
    return reaped.rowcount == 1
