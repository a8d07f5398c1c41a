"""An audience's syncs over time: one point per completed real sync, for the dashboard's charts.

The platform's size and matched size after each sync are kept on the job (`details`, since the
engine started recording them); older jobs have none and chart as gaps, not zeros."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select

from audience_sync.domain.models import SyncOperation, SyncStatus
from audience_sync.store.db import transaction
from audience_sync.store.repositories import (
    AudienceRepository,
    job_status_in,
    of_tenants_audience,
)
from audience_sync.store.tables import AudienceSyncJob, PlatformAudience
from audience_sync.sync.context import SyncService

POINTS = 100  # the charts' window: the last hundred syncs


@dataclass(frozen=True, slots=True)
class SyncPoint:
    """One completed sync's figures on the platform, right after it."""

    job_id: uuid.UUID
    at: datetime
    platform_size: int | None
    matched_size: int | None
    match_rate: float | None


@dataclass(frozen=True, slots=True)
class Change:
    """How the last sync moved the figures, against the sync before (None where unknown)."""

    platform_size: int | None
    matched_size: int | None
    match_rate: float | None


def sync_points(
    service: SyncService, tenant_id: int, audience_id: uuid.UUID, limit: int = POINTS
) -> list[SyncPoint]:
    """The audience's last `limit` completed real (not dry-run) syncs, oldest first
    (`NotFoundError` for an audience of another tenant)."""
    with transaction(service.factory) as session:
        AudienceRepository(session, tenant_id).get(audience_id)
        found = session.execute(
            select(
                AudienceSyncJob.id,
                AudienceSyncJob.completed_at,
                AudienceSyncJob.match_rate,
                AudienceSyncJob.details,
            )
            .join(PlatformAudience, PlatformAudience.id == AudienceSyncJob.platform_audience_id)
            .where(
                *of_tenants_audience(tenant_id, audience_id),
                job_status_in(SyncStatus.COMPLETED),
                AudienceSyncJob.dry_run.is_(False),
                AudienceSyncJob.operation != SyncOperation.DELETE,
                AudienceSyncJob.completed_at.is_not(None),
            )
            .order_by(AudienceSyncJob.completed_at.desc(), AudienceSyncJob.created_at.desc())
            .limit(limit)
        ).all()
    points = [
        SyncPoint(
            job_id=job_id,
            at=at,
            platform_size=_whole(details, "platform_size"),
            matched_size=_whole(details, "matched_size"),
            match_rate=rate,
        )
        for job_id, at, rate, details in found
    ]
    points.reverse()
    return points


def change(points: list[SyncPoint]) -> Change:
    """The last point against the one before it."""
    if len(points) < 2:
        return Change(None, None, None)
    last, before = points[-1], points[-2]
    return Change(
        platform_size=_minus(last.platform_size, before.platform_size),
        matched_size=_minus(last.matched_size, before.matched_size),
        match_rate=_minus(last.match_rate, before.match_rate),
    )


def _whole(details: dict[str, Any] | None, name: str) -> int | None:
    value = (details or {}).get(name)
    return int(value) if isinstance(value, int | float) else None


def _minus(last: float | None, before: float | None) -> Any:
    """`last - before` (an int for sizes, a float for rates), or None when either is unknown."""
    return None if last is None or before is None else last - before
