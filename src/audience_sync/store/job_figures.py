"""Aggregates over every tenant's sync jobs, for the operator's `/metrics` (no tenant label)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import case, func, select
from sqlalchemy.orm import Session

from audience_sync.domain.models import SyncStatus
from audience_sync.store.tables import AudienceSyncJob, PlatformAudience


def job_totals(session: Session) -> Sequence[Any]:
    """Per platform and status (dry runs left out): jobs, profiles sent, added, removed,
    failed, and job-level retries (attempts past the first)."""
    job = AudienceSyncJob
    return session.execute(
        select(
            PlatformAudience.platform,
            job.status,
            func.count(),
            func.coalesce(func.sum(job.profiles_sent), 0),
            func.coalesce(func.sum(job.profiles_added), 0),
            func.coalesce(func.sum(job.profiles_removed), 0),
            func.coalesce(func.sum(job.profiles_failed), 0),
            func.coalesce(func.sum(case((job.attempt > 1, job.attempt - 1), else_=0)), 0),
        )
        .join(PlatformAudience, PlatformAudience.id == job.platform_audience_id)
        .where(job.dry_run.is_(False))
        .group_by(PlatformAudience.platform, job.status)
    ).all()


def completed_durations(session: Session, bounds_seconds: Sequence[int]) -> Sequence[Any]:
    """Per platform, of completed real syncs: their count, total milliseconds, and how many
    took at most each of `bounds_seconds` (cumulative histogram buckets)."""
    job = AudienceSyncJob
    buckets = [
        func.sum(case((job.duration_ms <= limit * 1000, 1), else_=0)) for limit in bounds_seconds
    ]
    return session.execute(
        select(
            PlatformAudience.platform,
            func.count(),
            func.coalesce(func.sum(job.duration_ms), 0),
            *buckets,
        )
        .join(PlatformAudience, PlatformAudience.id == job.platform_audience_id)
        .where(
            job.status == SyncStatus.COMPLETED,
            job.dry_run.is_(False),
            job.duration_ms.is_not(None),
        )
        .group_by(PlatformAudience.platform)
    ).all()
