"""Sync jobs as callers see them: ask for a sync (the flags checked first), show, cancel, and
read a job's diagnostics. Running a job is `launcher`'s (and `sync.runner.run_job`'s)."""

from __future__ import annotations

import math
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy.orm import Session

from audience_sync.domain.models import SyncStatus
from audience_sync.exceptions import ConflictError
from audience_sync.files import open_private
from audience_sync.services import flags, ids
from audience_sync.store.db import reading, transaction
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
    "Preview",
    "Progress",
    "Report",
    "Trigger",
    "cancel",
    "diagnostics",
    "get",
    "job_view",
    "preview_of",
    "progress_of",
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
    with reading(service.factory) as session:
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


@dataclass(frozen=True, slots=True)
class Progress:
    """A job's progress as shown (API, CLI, dashboard): the phase, done of total in `unit`
    (None: the phase counts nothing), since when and last written, and the rate and ETA
    `progress_of` derives from them."""

    phase: str
    unit: str | None
    done: int
    total: int | None
    started_at: datetime
    updated_at: datetime
    rate_per_second: float | None
    eta_seconds: int | None


def progress_of(job: AudienceSyncJob, now: datetime) -> Progress | None:
    """The job's progress at `now`; None when it never reported any (queued, or older).

    The one rule for rate and ETA: rate = done ÷ seconds since the phase began, counted to
    `now` while the job is live (running, or its requests processing on the platform), else
    to the progress's last write; ETA = (total − done) ÷ rate, rounded up, only while live and
    when total and a non-zero rate are known."""
    started, phase = job.progress_started_at, job.progress_phase
    if phase is None or started is None:
        return None
    updated = job.progress_at or started
    live = is_live(job)
    rate = rate_of(job.progress_done, (now if live else updated) - started, job.progress_unit)
    eta = eta_of(job.progress_done, job.progress_total, rate) if live else None
    return Progress(
        phase, job.progress_unit, job.progress_done, job.progress_total,
        started, updated, rate, eta,
    )  # fmt: skip


def is_live(job: AudienceSyncJob) -> bool:
    """Whether the job's progress still moves: it runs, or the platform processes its
    requests (Google's confirmation, after the job completed)."""
    return job.status is SyncStatus.RUNNING or job.confirmation == "processing"


def rate_of(done: int, elapsed: timedelta, unit: str | None) -> float | None:
    """Units done a second over `elapsed`; None when the phase counts nothing or no time
    has passed."""
    seconds = elapsed.total_seconds()
    if unit is None or seconds <= 0:
        return None
    return done / seconds


def eta_of(done: int, total: int | None, rate: float | None) -> int | None:
    """Seconds left at `rate`; None when the total or a non-zero rate is unknown."""
    if total is None or not rate:
        return None
    return math.ceil(max(0, total - done) / rate)


@dataclass(frozen=True, slots=True)
class Preview:
    """What a dry run found a sync would do (its `details`), in one shape for the dashboard,
    the API's clients and the CLI: records to add and remove and left unchanged (None: the
    plan did not say), the members to add and in the segment, the values dropped by reason,
    and the guard rails the sync would trip (`code`, `message`)."""

    adds: int | None
    removes: int | None
    unchanged: int | None
    members_to_add: int | None
    members: int | None
    dropped: dict[str, int]
    warnings: list[dict[str, str]]


def preview_of(job: AudienceSyncJob) -> Preview | None:
    """The plan a job recorded (a dry run's, or a real run's before it sent); None when it
    has none (still queued, a delete, or failed before planning)."""
    details = job.details or {}
    plan = details.get("plan")
    if not isinstance(plan, dict):
        return None
    warnings = [
        {"code": str(w.get("code", "")), "message": str(w.get("message", ""))}
        for w in details.get("warnings") or []
        if isinstance(w, dict)
    ]
    return Preview(
        adds=_count(plan.get("adds", plan.get("replace_records"))),
        removes=_count(plan.get("removes")),
        unchanged=_count(plan.get("unchanged")),
        members_to_add=_count(plan.get("members_to_add")),
        members=_count(details.get("members")),
        dropped={str(k): int(v) for k, v in (details.get("dropped") or {}).items()},
        warnings=warnings,
    )


def _count(value: Any) -> int | None:
    return int(value) if isinstance(value, int | float) else None
