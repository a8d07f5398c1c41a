"""Dashboard sessions: the cookie's token is shown to the browser only; its SHA-256 is stored."""

from __future__ import annotations

import hashlib
import secrets
from datetime import datetime, timedelta

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from audience_sync.store.api_keys import digest
from audience_sync.store.tables import ApiKey, DashboardSession


class SessionRepository:
    def __init__(self, session: Session) -> None:
        self.session = session

    def open(
        self, key: str, now: datetime, lifetime: timedelta
    ) -> tuple[str, DashboardSession] | None:
        """A new session for a valid, unrevoked API key: `(token, row)`, else None."""
        api_key = self.session.scalars(
            select(ApiKey).where(ApiKey.key_hash == digest(key), ApiKey.revoked_at.is_(None))
        ).one_or_none()
        if api_key is None:
            return None
        api_key.last_used_at = now
        token = secrets.token_urlsafe(32)
        row = DashboardSession(
            token_hash=_hash(token),
            tenant_id=api_key.tenant_id,
            api_key_id=api_key.id,
            csrf_token=secrets.token_urlsafe(32),
            created_at=now,
            expires_at=now + lifetime,
        )
        self.session.add(row)
        self.session.flush()
        return token, row

    def find(self, token: str, now: datetime) -> tuple[DashboardSession, ApiKey] | None:
        """The live session of `token` and its key: unexpired, its key not revoked."""
        found = self.session.execute(
            select(DashboardSession, ApiKey)
            .join(ApiKey, ApiKey.id == DashboardSession.api_key_id)
            .where(
                DashboardSession.token_hash == _hash(token),
                DashboardSession.expires_at > now,
                ApiKey.revoked_at.is_(None),
            )
        ).one_or_none()
        return None if found is None else (found[0], found[1])

    def close(self, token: str) -> None:
        self.session.execute(
            delete(DashboardSession).where(DashboardSession.token_hash == _hash(token))
        )

    def purge_expired(self, now: datetime) -> int:
        result = self.session.execute(
            delete(DashboardSession).where(DashboardSession.expires_at <= now)
        )
        return int(getattr(result, "rowcount", 0) or 0)


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()
