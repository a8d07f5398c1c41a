"""The scheduler's tick: queue a job for every due audience and find the jobs due to start.

Safe with any number of schedulers at once: due audiences are locked with `FOR UPDATE SKIP
LOCKED` on PostgreSQL (SQLite serializes writers anyway), and the database's one-active-job
index turns a double trigger into "here is the job already queued".
"""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from audience_sync.domain.models import SYNC_INTERVALS_HOURS, SyncOperation, TriggeredBy
from audience_sync.exceptions import ValidationError
from audience_sync.store.db import transaction
from audience_sync.store.tables import PlatformAudience
from audience_sync.sync.jobs import Trigger, trigger_job


def check_interval(hours: int, min_interval_hours: int) -> int:
    """A schedule: one of 1, 6, 12, 24, 168 hours, and at least the configured minimum."""
    allowed = [h for h in SYNC_INTERVALS_HOURS if h >= min_interval_hours]
    if hours not in allowed:
        raise ValidationError(
            f"sync_interval_hours must be one of {', '.join(map(str, allowed))} (got {hours})."
        )
    return hours


def enqueue_due_audiences(
    factory: sessionmaker[Session], now: datetime
) -> list[tuple[int, uuid.UUID]]:
    """Queue a scheduled job per due audience and move its `next_sync_at` one interval on."""
    with transaction(factory) as session:
        due = session.scalars(
            select(PlatformAudience)
            .where(
                PlatformAudience.auto_sync.is_(True),
                PlatformAudience.is_active.is_(True),
                PlatformAudience.next_sync_at <= now,
            )
            .order_by(PlatformAudience.next_sync_at)
            .with_for_update(skip_locked=True)
        ).all()
        plans = [(a.tenant_id, a.id, _operation(a)) for a in due]
        for audience in due:
            audience.next_sync_at = now + timedelta(hours=audience.sync_interval_hours)
    queued: list[tuple[int, uuid.UUID]] = []
    for tenant_id, audience_id, operation in plans:
        trigger = Trigger(operation=operation, triggered_by=TriggeredBy.SCHEDULED)
        job, _ = trigger_job(factory, tenant_id, audience_id, trigger, now)
        queued.append((tenant_id, job.id))
    return queued


def _operation(audience: PlatformAudience) -> SyncOperation:
    return SyncOperation.UPDATE if audience.platform_audience_id else SyncOperation.CREATE
