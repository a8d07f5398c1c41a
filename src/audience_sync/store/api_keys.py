"""API keys: a key is shown once when issued; only its SHA-256 and its first characters are
stored (the prefix tells keys apart in lists)."""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Sequence
from datetime import datetime, timedelta

from sqlalchemy import or_, select, update
from sqlalchemy.orm import Session

from audience_sync.exceptions import NotFoundError, ValidationError
from audience_sync.store.tables import ApiKey
from audience_sync.store.types import utcnow

API_KEY_PREFIX = "as_"
# `last_used_at` is kept to the minute: writing it on every request made every request a write
# (a WAL flush at commit) and, since all of a client's requests carry one key, a wait on that
# key's row lock: under 20 concurrent clients the API answered ~9 requests a second.
LAST_USED_RESOLUTION = timedelta(minutes=1)


class ApiKeyRepository:
    """API keys: the key is shown once; only its SHA-256 is stored."""

    def __init__(self, session: Session) -> None:
        self.session = session

    def issue(self, tenant_id: int, name: str = "default") -> str:
        key = API_KEY_PREFIX + secrets.token_urlsafe(32)
        self.session.add(
            ApiKey(tenant_id=tenant_id, name=name, prefix=key[:10], key_hash=digest(key))
        )
        self.session.flush()
        return key

    def authenticate(self, key: str) -> int | None:
        """The tenant id of a valid, unrevoked key, else None. Its `last_used_at` is written
        only when it is older than `LAST_USED_RESOLUTION`: most requests only read.

        Columns rather than the ORM object, and the write a statement of its own: every API
        request runs this (the request gate, `api.limits`), in an autocommit session."""
        found = self.session.execute(
            select(ApiKey.id, ApiKey.tenant_id, ApiKey.last_used_at).where(
                ApiKey.key_hash == digest(key), ApiKey.revoked_at.is_(None)
            )
        ).one_or_none()
        if found is None:
            return None
        now = utcnow()
        if found.last_used_at is None or now - found.last_used_at >= LAST_USED_RESOLUTION:
            self._mark_used(found.id, now)
        return int(found.tenant_id)

    def _mark_used(self, key_id: int, now: datetime) -> None:
        # Conditional: requests that all read a stale time at once write it once, the others'
        # UPDATE matching no row once the first one's commit is seen.
        self.session.execute(
            update(ApiKey)
            .where(
                ApiKey.id == key_id,
                or_(
                    ApiKey.last_used_at.is_(None),
                    ApiKey.last_used_at <= now - LAST_USED_RESOLUTION,
                ),
            )
            .values(last_used_at=now)
            .execution_options(synchronize_session=False)
        )

    def list(self, tenant_id: int) -> Sequence[ApiKey]:
        """The tenant's keys, revoked ones too, oldest first (only their prefixes are known)."""
        return self.session.scalars(
            select(ApiKey).where(ApiKey.tenant_id == tenant_id).order_by(ApiKey.id)
        ).all()

    def revoke(self, tenant_id: int, prefix: str, now: datetime) -> ApiKey:
        """Revoke the tenant's one unrevoked key whose shown prefix starts with `prefix`."""
        found = [
            key
            for key in self.list(tenant_id)
            if key.revoked_at is None and key.prefix.startswith(prefix)
        ]
        if not found:
            raise NotFoundError(f"No active API key of this tenant starts with {prefix!r}.")
        if len(found) > 1:
            raise ValidationError(
                f"{len(found)} active keys start with {prefix!r}; give more of the key."
            )
        found[0].revoked_at = now
        return found[0]


def digest(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()
