"""Platform audiences: create, change the schedule, pause, resume, delete, purge, and queue
their due syncs. The schedule rule (`domain.schedule`) and the flags a sync needs are applied
here for every caller."""

from __future__ import annotations

import json
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session, sessionmaker

from audience_sync.domain.accounts import ad_account_problem
from audience_sync.domain.models import SyncOperation, SyncPlatform, TriggeredBy
from audience_sync.domain.schedule import check_interval, next_sync_at
from audience_sync.exceptions import ConflictError, FieldError, ValidationError
from audience_sync.services import flags, ids, jobs
from audience_sync.store.db import reading, transaction
from audience_sync.store.repositories import (
    AudienceRepository,
    ConnectionRepository,
    SegmentRepository,
    SyncJobRepository,
    lock_due_audiences,
)
from audience_sync.store.tables import AudienceSyncJob, PlatformAudience
from audience_sync.store.views import audience_view
from audience_sync.sync.audiences import AudienceDeletedError
from audience_sync.sync.context import SyncService
from audience_sync.sync.health import audience_health
from audience_sync.sync.jobs import Trigger, active_job, trigger_job

__all__ = [
    "AudienceDeletedError",
    "NewAudience",
    "audience_view",
    "create",
    "enqueue_due",
    "get",
    "health",
    "jobs_of",
    "list_audiences",
    "options_problem",
    "purge",
    "resolve",
    "update",
]

SCHEDULE_FIELDS = frozenset({"auto_sync", "sync_interval_hours"})


@dataclass(frozen=True, slots=True)
class NewAudience:
    """What a new audience is made of; `interval_hours` None means the settings' default."""

    segment_id: uuid.UUID
    platform: SyncPlatform
    name: str
    ad_account_id: str
    description: str | None = None
    auto_sync: bool = True
    interval_hours: int | None = None
    options: dict[str, Any] = field(default_factory=dict)


def interval(service: SyncService, hours: int | None) -> int:
    """A schedule the settings allow (`FieldError` on `sync_interval_hours` otherwise)."""
    settings = service.settings
    try:
        return check_interval(hours or settings.default_interval_hours, settings.min_interval_hours)
    except ValidationError as exc:
        raise FieldError("sync_interval_hours", "interval", exc.message) from exc


def options_problem(options: dict[str, Any], max_bytes: int) -> str | None:
    """Why `options` are refused (too large as JSON), or None. Stored options come back in every
    read of the audience, so an unbounded value would make every list as large."""
    size = len(json.dumps(options, separators=(",", ":"), ensure_ascii=False).encode())
    if size > max_bytes:
        return (
            f"options take {size:,} bytes as JSON, more than the {max_bytes:,} allowed "
            "(AUDIENCE_SYNC_MAX_OPTIONS_BYTES); platform options are a few short values"
        )
    return None


def create(
    service: SyncService, tenant_id: int, new: NewAudience, connect_hint: str
) -> PlatformAudience:
    """Link a segment to a new audience on a connected platform whose sync flags are on; the
    first sync creates it on the platform. `connect_hint` says how to connect (API or CLI)."""
    hours = interval(service, new.interval_hours)
    too_large = options_problem(new.options, service.settings.max_options_bytes)
    if too_large:
        raise FieldError("options", "max_size", too_large)
    now = service.clock()
    with transaction(service.factory) as session:
        flags.require_sync(session, tenant_id, service.settings, new.platform)
        segment = SegmentRepository(session, tenant_id).get(new.segment_id)
        if (problem := ad_account_problem(new.ad_account_id)) is not None:
            raise ValidationError(f"Invalid ad account id: {problem}.")
        connections = ConnectionRepository(session, tenant_id, service.cipher)
        if connections.find(new.platform) is None:
            raise ValidationError(f"{new.platform.value} is not connected; {connect_hint} first.")
        return AudienceRepository(session, tenant_id).add(
            PlatformAudience(
                segment_id=segment.id,
                platform=new.platform,
                platform_audience_name=new.name,
                ad_account_id=new.ad_account_id,
                description=new.description,
                auto_sync=new.auto_sync,
                sync_interval_hours=hours,
                next_sync_at=next_sync_at(now, hours, new.auto_sync),
                config=new.options,
            )
        )


def resolve(service: SyncService, tenant_id: int, text: str) -> uuid.UUID:
    """An audience id from a whole id or a unique prefix of one."""
    with transaction(service.factory) as session:
        return ids.resolve(session, tenant_id, PlatformAudience, "audience", text)


def get(service: SyncService, tenant_id: int, audience_id: uuid.UUID) -> PlatformAudience:
    with reading(service.factory) as session:
        return AudienceRepository(session, tenant_id).get(audience_id)


def list_audiences(
    service: SyncService, tenant_id: int, include_deleted: bool = False
) -> Sequence[PlatformAudience]:
    """The tenant's audiences, oldest first; deleted ones only when asked for."""
    with reading(service.factory) as session:
        return AudienceRepository(session, tenant_id).list(include_deleted)


def update(
    service: SyncService, tenant_id: int, audience_id: uuid.UUID, changes: dict[str, Any]
) -> PlatformAudience:
    """Change the description or the schedule (`auto_sync`, `sync_interval_hours`); a changed
    schedule puts the next sync one interval after the last one (or after now)."""
    if changes.get("sync_interval_hours") is not None:
        interval(service, changes["sync_interval_hours"])
    with transaction(service.factory) as session:
        audience = AudienceRepository(session, tenant_id).get(audience_id)
        if not audience.is_active:
            raise ValidationError(
                f"Audience {audience.platform_audience_name!r} was deleted; create a new one."
            )
        for name, value in changes.items():
            setattr(audience, name, value)
        if SCHEDULE_FIELDS & changes.keys():
            base = audience.last_sync_at or service.clock()
            audience.next_sync_at = next_sync_at(
                base, audience.sync_interval_hours, audience.auto_sync
            )
        session.flush()
        return audience


def jobs_of(
    service: SyncService, tenant_id: int, audience_id: uuid.UUID, limit: int = 50
) -> Sequence[AudienceSyncJob]:
    """The audience's jobs, newest first."""
    with reading(service.factory) as session:
        AudienceRepository(session, tenant_id).get(audience_id)
        return SyncJobRepository(session, tenant_id).for_audience(audience_id, limit)


def health(service: SyncService, tenant_id: int, audience_id: uuid.UUID) -> dict[str, Any]:
    with reading(service.factory) as session:
        return audience_health(session, tenant_id, audience_id, service.clock())


def purge(service: SyncService, tenant_id: int, audience_id: uuid.UUID) -> None:
    """Remove a deleted audience and everything kept for it (jobs, snapshot, member state).

    Only once deleted (the platform's audience is gone and nothing can be queued any more) and
    with no job pending or running (a delete job still finishing would lose its row)."""
    with transaction(service.factory) as session:
        _check_purgeable(session, tenant_id, audience_id)
        AudienceRepository(session, tenant_id).purge(audience_id)


def _check_purgeable(session: Session, tenant_id: int, audience_id: uuid.UUID) -> None:
    audience = AudienceRepository(session, tenant_id).get(audience_id)
    if audience.is_active:
        raise ConflictError(
            "audience_active",
            f"Audience {audience.platform_audience_name!r} is not deleted; delete it first "
            "(DELETE without purge, or `audience-sync audiences delete ID`), then purge it.",
        )
    active = active_job(session, tenant_id, audience_id)
    if active is not None:
        raise ConflictError(
            "sync_in_progress",
            f"Job {active.id} of the audience is still pending or running; wait for it to end.",
        )


def enqueue_due(factory: sessionmaker[Session], now: datetime) -> list[tuple[int, uuid.UUID]]:
    """The scheduler's half: queue a scheduled job per due audience (any tenant) and move its
    `next_sync_at` one interval on; the `(tenant, job)` pairs queued. Safe with any number of
    schedulers at once: due audiences are locked with `FOR UPDATE SKIP LOCKED` on PostgreSQL
    (SQLite serializes writers anyway), and the one-active-job index turns a double trigger into
    "here is the job already queued"."""
    with transaction(factory) as session:
        due = lock_due_audiences(session, now)
        plans = [(a.tenant_id, a.id, _operation(a)) for a in due]
        for audience in due:
            audience.next_sync_at = next_sync_at(now, audience.sync_interval_hours)
    queued: list[tuple[int, uuid.UUID]] = []
    for tenant_id, audience_id, operation in plans:
        trigger = Trigger(operation=operation, triggered_by=TriggeredBy.SCHEDULED)
        job, _ = trigger_job(factory, tenant_id, audience_id, trigger, now)
        queued.append((tenant_id, job.id))
    return queued


def _operation(audience: PlatformAudience) -> SyncOperation:
    return SyncOperation.UPDATE if audience.platform_audience_id else SyncOperation.CREATE


def delete(
    service: SyncService,
    tenant_id: int,
    audience_id: uuid.UUID,
    triggered_by: TriggeredBy = TriggeredBy.API,
) -> tuple[AudienceSyncJob, bool]:
    """Queue the delete job: it deletes the audience on the platform, deactivates it here and
    keeps its history. `(job, False)` when a delete job was already queued; `ConflictError`
    while another sync of the audience is pending or running, or once it is deleted."""
    trigger = Trigger(SyncOperation.DELETE, triggered_by)
    try:
        job, created = jobs.request_sync(service, tenant_id, audience_id, trigger)
    except AudienceDeletedError as exc:
        raise ConflictError("audience_deleted", "The audience is already deleted.") from exc
    if not created and job.operation is not SyncOperation.DELETE:
        raise ConflictError(
            "sync_in_progress",
            f"A {job.operation.value} job is {job.status.value} for this audience; cancel it "
            "or wait for it to end, then delete.",
            job_id=str(job.id),
        )
    return job, created
