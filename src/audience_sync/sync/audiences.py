"""Creating and purging an audience: the one place their rules live (CLI and API both come here)."""

from __future__ import annotations

import json
import uuid
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from audience_sync.crypto import CredentialCipher
from audience_sync.domain.accounts import ad_account_problem
from audience_sync.domain.models import SyncPlatform, SyncStatus
from audience_sync.exceptions import ValidationError
from audience_sync.store.repositories import AudienceRepository, ConnectionRepository
from audience_sync.store.tables import AudienceSyncJob, PlatformAudience


class AudienceDeletedError(ValidationError):
    """The audience was deleted: nothing can be queued for it any more."""

    def __init__(self, name: str) -> None:
        super().__init__(f"Audience {name!r} was deleted; create a new one.")


class AudienceNotPurgeableError(ValidationError):
    """Purge refused: the audience is still active, or a job of it is pending or running."""

    def __init__(self, message: str, code: str) -> None:
        super().__init__(message)
        self.code = code


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


def purge_audience(session: Session, tenant_id: int, audience_id: uuid.UUID) -> None:
    """Remove a deleted audience and everything kept for it (jobs, snapshot, member state).

    Only once deleted (the platform's audience is gone and nothing can be queued any more) and
    with no job pending or running (a delete job still finishing would lose its row)."""
    repo = AudienceRepository(session, tenant_id)
    audience = repo.get(audience_id)
    if audience.is_active:
        raise AudienceNotPurgeableError(
            f"Audience {audience.platform_audience_name!r} is not deleted; delete it first "
            "(DELETE without purge, or `audience-sync audiences sync ID --operation delete`), "
            "then purge it.",
            "audience_active",
        )
    active = session.scalar(
        select(AudienceSyncJob.id).where(
            AudienceSyncJob.tenant_id == tenant_id,
            AudienceSyncJob.platform_audience_id == audience_id,
            AudienceSyncJob.status.in_((SyncStatus.PENDING, SyncStatus.RUNNING)),
        )
    )
    if active is not None:
        raise AudienceNotPurgeableError(
            f"Job {active} of the audience is still pending or running; wait for it to end.",
            "sync_in_progress",
        )
    repo.purge(audience_id)


def add_audience(
    session: Session,
    tenant_id: int,
    cipher: CredentialCipher,
    *,
    segment_id: uuid.UUID,
    platform: SyncPlatform,
    name: str,
    ad_account_id: str,
    description: str | None,
    auto_sync: bool,
    interval_hours: int,
    options: dict[str, Any],
    now: datetime,
    connect_hint: str,
) -> PlatformAudience:
    """Link a segment (already checked to be the tenant's) to a new audience on a connected
    platform; the first sync creates it on the platform. `interval_hours` must be checked."""
    if (problem := ad_account_problem(ad_account_id)) is not None:
        raise ValidationError(f"Invalid ad account id: {problem}.")
    if ConnectionRepository(session, tenant_id, cipher).find(platform) is None:
        raise ValidationError(f"{platform.value} is not connected; {connect_hint} first.")
    return AudienceRepository(session, tenant_id).add(
        PlatformAudience(
            segment_id=segment_id,
            platform=platform,
            platform_audience_name=name,
            ad_account_id=ad_account_id,
            description=description,
            auto_sync=auto_sync,
            sync_interval_hours=interval_hours,
            next_sync_at=now + timedelta(hours=interval_hours) if auto_sync else None,
            config=options,
        )
    )
