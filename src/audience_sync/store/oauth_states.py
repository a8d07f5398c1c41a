"""Started OAuth flows: a `state` is stored as its SHA-256 only, and taken at most once."""

from __future__ import annotations

import hashlib
from datetime import datetime, timedelta

from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session

from audience_sync.domain.models import SyncPlatform
from audience_sync.store.tables import OAuthState

KEEP_USED = timedelta(days=1)  # used or expired states are purged after this


def digest(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


class OAuthStateRepository:
    def __init__(self, session: Session) -> None:
        self.session = session

    def add(self, state: str, row: OAuthState) -> OAuthState:
        row.state_hash = digest(state)
        self.session.add(row)
        self.session.flush()
        return row

    def find(self, state: str, platform: SyncPlatform) -> OAuthState | None:
        return self.session.scalars(
            select(OAuthState).where(
                OAuthState.state_hash == digest(state), OAuthState.platform == platform
            )
        ).one_or_none()

    def take(self, row: OAuthState, now: datetime) -> bool:
        """Mark the state used; False when another request took it first (one UPDATE with
        `used_at IS NULL`, so two callbacks racing with one state cannot both pass)."""
        result = self.session.execute(
            update(OAuthState)
            .where(OAuthState.id == row.id, OAuthState.used_at.is_(None))
            .values(used_at=now)
            .execution_options(synchronize_session=False)
        )
        return int(getattr(result, "rowcount", 0) or 0) == 1

    def purge(self, now: datetime) -> None:
        self.session.execute(delete(OAuthState).where(OAuthState.expires_at <= now - KEEP_USED))
