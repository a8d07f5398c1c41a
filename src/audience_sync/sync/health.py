"""Audience health: the platform's figures from the last sync and the 30-day sync success rate."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from audience_sync.domain.models import SyncPlatform, SyncStatus
from audience_sync.store.repositories import AudienceRepository
from audience_sync.store.tables import AudienceSyncJob

WINDOW = timedelta(days=30)
SIZE_ABOVE_SENT = "platform_size_above_sent"
# What each platform's size is, and why it can exceed the members we hold there.
SIZE_NOTES = {
    # [SEEN: facebook-python-business-sdk CustomAudience fields] only approximate bounds exist.
    SyncPlatform.META: "Meta reports an approximate count (approximate_count_lower_bound), "
    "not an exact one",
    # [SEEN: googleapis user_list.proto size_for_display "Estimated number of users"; Google's
    # Customer Match example: "It may take several hours for the user list to be populated"]
    SyncPlatform.GOOGLE: "Google's size is an estimate of users, populated over several hours",
    # [SEEN, third-party only: KrishnaMehta123/Suggestedits tiktok-remarketing-faqs.md, sizes
    # update 24-48 hours after an upload; mParticle/docs TikTok audience page, 1,000 users
    # before an audience is reflected] [INFER: removals are counted on the same delay]
    SyncPlatform.TIKTOK: "TikTok updates cover_num 24 to 48 hours after an upload",
    # [SEEN: Snap Customer Lists API, read-only approximate_number_users]
    SyncPlatform.SNAPCHAT: "Snapchat reports approximate_number_users, an approximation",
}


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


def size_warning(platform: SyncPlatform, size: int, synced: int) -> dict[str, Any] | None:
    """Why the platform's size exceeds the members Audience Sync holds there; None when not.

    The engine never clips the platform's figure: it says why it is larger.
    """
    if size <= synced:
        return None
    message = (
        f"The platform reports {size:,} people, more than the {synced:,} members Audience Sync "
        "holds there. Likely causes: people added to the audience outside Audience Sync (in "
        "the platform's own tools, or by another upload), or removals the platform has not "
        f"processed yet; also, {SIZE_NOTES[platform]}. The match rate is capped at 100%."
    )
    return {
        "code": SIZE_ABOVE_SENT,
        "message": message,
        "platform_size": size,
        "members_synced": synced,
    }
