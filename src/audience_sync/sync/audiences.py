"""Creating an audience: the one place its rules live (CLI and API both come here)."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.orm import Session

from audience_sync.crypto import CredentialCipher
from audience_sync.domain.models import SyncPlatform
from audience_sync.exceptions import ValidationError
from audience_sync.store.repositories import AudienceRepository, ConnectionRepository
from audience_sync.store.tables import PlatformAudience


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
