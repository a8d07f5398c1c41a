"""Sync jobs as callers see them: ask for a sync (the flags checked first), show, cancel, and
read a job's diagnostics. Running a job is `launcher`'s (and `sync.runner.run_job`'s)."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from sqlalchemy.orm import Session

from audience_sync.domain.models import SyncStatus
from audience_sync.exceptions import ConflictError
from audience_sync.files import open_private
from audience_sync.services import flags, ids
from audience_sync.store.db import transaction
from audience_sync.store.diagnostics import Entry
from audience_sync.store.job_figures import completed_durations, job_totals
from audience_sync.store.repositories import AudienceRepository, SyncJobRepository
from audience_sync.store.tables import AudienceSyncJob
from audience_sync.store.views import job_view
from audience_sync.sync.context import SyncService
from audience_sync.sync.diagnostics import Report, read_report, write_csv
from audience_sync.sync.jobs import Trigger, cancel_job, trigger_job

__all__ = [
    "Job",
    "Report",
    "Trigger",
    "cancel",
    "diagnostics",
    "get",
    "job_view",
    "request_sync",
    "resolve",
    "should_start",
    "write_csv",
]

Job = AudienceSyncJob
FINISHED = (SyncStatus.COMPLETED, SyncStatus.FAILED)


def request_sync(
    service: SyncService, tenant_id: int, audience_id: uuid.UUID, trigger: Trigger
) -> tuple[AudienceSyncJob, bool]:
    """Queue a job once the sync's flags are checked; `(job, False)` when one was already
    pending or running for the audience (one at a time, never in parallel)."""
    with transaction(service.factory) as session:
        audience = AudienceRepository(session, tenant_id).get(audience_id)
        flags.require_sync(session, tenant_id, service.settings, audience.platform)
    return trigger_job(service.factory, tenant_id, audience_id, trigger, service.clock())


def should_start(status: SyncStatus, created: bool) -> bool:
    """Whether the caller launches the job: a new one, or a pending one found instead (a retry
    the trigger brought forward to now). Launching one that another launch starts first does
    nothing (`start_job` claims once)."""
    return created or status is SyncStatus.PENDING


def resolve(service: SyncService, tenant_id: int, text: str) -> uuid.UUID:
    """A job id from a whole id or a unique prefix of one."""
    with transaction(service.factory) as session:
        return ids.resolve(session, tenant_id, AudienceSyncJob, "job", text)


def get(service: SyncService, tenant_id: int, job_id: uuid.UUID) -> AudienceSyncJob:
    with transaction(service.factory) as session:
        return SyncJobRepository(session, tenant_id).get(job_id)


def cancel(service: SyncService, tenant_id: int, job_id: uuid.UUID) -> AudienceSyncJob:
    """A pending job is cancelled now; a running one stops at its next checkpoint
    (`cancel_requested` until then). One that already completed or failed: `ConflictError`."""
    found = get(service, tenant_id, job_id)
    if found.status in FINISHED:
        raise ConflictError(
            "job_finished", f"The job already ended ({found.status.value}); nothing to cancel."
        )
    return cancel_job(service.factory, tenant_id, job_id, service.clock())


def totals_by_platform(session: Session) -> Sequence[Any]:
    """For `/metrics`: every platform's jobs by status with their profile counts."""
    return job_totals(session)


def durations_by_platform(session: Session, bounds_seconds: Sequence[int]) -> Sequence[Any]:
    """For `/metrics`: completed syncs' durations per platform, as histogram buckets."""
    return completed_durations(session, bounds_seconds)


def write_csv_file(entries: list[Entry], path: Path) -> None:
    """The entries as a formula-safe CSV file readable by its owner only."""
    with open_private(path) as sink:
        write_csv(entries, sink)


def diagnostics(
    service: SyncService,
    tenant_id: int,
    job_id: uuid.UUID,
    *,
    reason: str | None = None,
    field: str | None = None,
    offset: int = 0,
    limit: int | None = None,
) -> Report:
    """Which profiles' identifier values the job dropped or the platform refused."""
    with transaction(service.factory) as session:
        return read_report(
            session, tenant_id, job_id, reason=reason, field=field, offset=offset, limit=limit
        )
