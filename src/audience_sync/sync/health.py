"""Audience health: the platform's figures from the last sync and the 30-day sync success rate."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from audience_sync.domain.models import SyncStatus
from audience_sync.store.repositories import AudienceRepository
from audience_sync.store.tables import AudienceSyncJob

WINDOW = timedelta(days=30)


def audience_health(
    session: Session, tenant_id: int, audience_id: uuid.UUID, now: datetime
) -> dict[str, Any]:
    """`platform_size`, `matched_size`, `match_rate`, and `sync_success_rate` over 30 days:
    completed ÷ (completed + failed) among real (not dry-run) syncs that ended in the window;
    None when none did."""
    audience = AudienceRepository(session, tenant_id).get(audience_id)
    ended = (
        select(AudienceSyncJob.status, func.count())
        .where(
            AudienceSyncJob.tenant_id == tenant_id,
            AudienceSyncJob.platform_audience_id == audience_id,
            AudienceSyncJob.dry_run.is_(False),
            AudienceSyncJob.completed_at >= now - WINDOW,
            AudienceSyncJob.status.in_([SyncStatus.COMPLETED, SyncStatus.FAILED]),
        )
        .group_by(AudienceSyncJob.status)
    )
    counts = {status: int(n) for status, n in session.execute(ended)}
    total = sum(counts.values())
    return {
        "platform_size": audience.platform_size,
        "matched_size": audience.matched_size,
        "match_rate": audience.match_rate,
        "sync_success_rate": counts.get(SyncStatus.COMPLETED, 0) / total if total else None,
        "syncs_30d": total,
    }
