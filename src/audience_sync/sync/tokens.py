"""A connection's tokens kept valid across workers: refreshed under a lock, written back at once.

`open_connector` builds a run's connector and attaches `ConnectionTokens`, the connection row as
the connectors' `TokenStore`. A refresh (before expiry, or after a 401) then goes:

1. lock: a per-process lock on (tenant, platform), then on PostgreSQL `SELECT … FOR UPDATE` on
   the connection row, held until the new tokens are committed;
2. re-check: if the row holds other tokens than this connector read (another worker refreshed,
   or the user reconnected) and they are not about to expire, use them: no refresh;
3. refresh with the stored refresh token, and write the answer back with a compare-and-swap on
   `credentials_version` (and the sealed credentials): `UPDATE … WHERE credentials_version = v`.

On PostgreSQL the lock makes the swap always win and only one worker ever calls the refresh
grant: safe with refresh tokens that rotate. SQLite has no row lock: two processes may both
refresh; the swap keeps the first answer, and the loser re-reads and uses the stored tokens
(docs/connections.md, "Keeping tokens valid"). A refresh the platform refuses marks the
connection `needs_reconnect`.
"""

from __future__ import annotations

import asyncio
import logging
import weakref
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeVar

from sqlalchemy.orm import Session

from audience_sync.connectors import BaseAudienceConnector
from audience_sync.connectors.tokens import IssuedTokens, RefreshGrant, expires_soon
from audience_sync.exceptions import AuthExpiredError
from audience_sync.store.db import transaction
from audience_sync.store.repositories import ConnectionRepository
from audience_sync.store.tables import PlatformConnection
from audience_sync.sync.context import SyncService, Target
from audience_sync.sync.messages import describe

__all__ = ["ConnectionTokens", "open_connector"]

log = logging.getLogger(__name__)
T = TypeVar("T")

# One lock per (event loop, database, tenant, platform): two runs of this process wait for each
# other before they reach the database (SQLite has no row lock; PostgreSQL's would hold a
# second pooled connection for nothing). Weak values: a lock lives while someone holds it.
_LOCKS: weakref.WeakValueDictionary[tuple[int, str, int, str], asyncio.Lock] = (
    weakref.WeakValueDictionary()
)


def open_connector(service: SyncService, target: Target) -> BaseAudienceConnector:
    """The run's connector, refreshing its token through the connection row."""
    connector = service.connect(target)
    store = ConnectionTokens(service, target)
    connector.http.tokens.keep_in(store, target.token_expires_at, service.clock)
    return connector


@dataclass(frozen=True, slots=True)
class _Stored:
    """The connection row's tokens as read: `seen` = (version, sealed credentials)."""

    seen: tuple[int, str]
    credentials: dict[str, Any]
    expires_at: datetime | None

    def tokens(self) -> IssuedTokens:
        refresh = self.credentials.get("refresh_token")
        return IssuedTokens(
            access_token=str(self.credentials.get("access_token") or ""),
            refresh_token=str(refresh) if refresh else None,
            expires_at=self.expires_at,
        )


class ConnectionTokens:
    """The connection row as a connector's `TokenStore` (see the module docstring)."""

    def __init__(self, service: SyncService, target: Target) -> None:
        self.service = service
        self.tenant_id, self.platform = target.tenant_id, target.platform
        self.seen = (target.credentials_version, target.sealed_credentials)
        self.row_locks = service.engine.dialect.name == "postgresql"

    async def refresh(self, grant: RefreshGrant, refresh_token: str | None) -> IssuedTokens:
        key = (
            id(asyncio.get_running_loop()),
            str(self.service.engine.url),
            self.tenant_id,
            self.platform.value,
        )
        lock = _LOCKS.get(key)
        if lock is None:
            lock = _LOCKS[key] = asyncio.Lock()
        async with lock:
            if self.row_locks:
                return await self._locked(grant, refresh_token)
            return await self._swapped(grant, refresh_token)

    # --- PostgreSQL: lock, re-check, refresh, write, commit -----------------------------------

    async def _locked(self, grant: RefreshGrant, refresh_token: str | None) -> IssuedTokens:
        session = self.service.factory()
        try:
            # Blocking calls run in a thread: the lock may be held by another run of this
            # event loop's process (another engine), which must keep running meanwhile.
            stored = await _off_loop(self._read, session, True)
            if stored is None:  # removed meanwhile: refresh for this run, bring nothing back
                await _off_loop(session.rollback)
                return await grant(refresh_token or "")
            if self._newer(stored):
                await _off_loop(session.rollback)
                return self._adopt(stored)
            try:
                issued = await grant(stored.tokens().refresh_token or refresh_token or "")
            except AuthExpiredError as refused:
                await _off_loop(self._flag, session, stored, refused)
                await _off_loop(session.commit)
                raise
            written = await _off_loop(self._write, session, stored, issued)
            await _off_loop(session.commit)
            assert written is not None, "the row is locked: the swap cannot lose"
            return written
        except BaseException:
            await _off_loop(session.rollback)
            raise
        finally:
            await _off_loop(session.close)

    # --- SQLite: read, refresh, compare-and-swap; the loser re-reads --------------------------

    async def _swapped(self, grant: RefreshGrant, refresh_token: str | None) -> IssuedTokens:
        stored = await _off_loop(self._read_once)
        if stored is None:
            return await grant(refresh_token or "")
        if self._newer(stored):
            return self._adopt(stored)
        try:
            issued = await grant(stored.tokens().refresh_token or refresh_token or "")
        except AuthExpiredError as refused:
            # Refused because another process refreshed (a rotated refresh token) meanwhile?
            again = await _off_loop(self._read_once)
            if again is not None and again.seen != stored.seen:
                return self._adopt(again)
            await _off_loop(self._flag_once, stored, refused)
            raise
        written = await _off_loop(self._write_once, stored, issued)
        if written is not None:
            return written
        again = await _off_loop(self._read_once)  # lost: another worker's tokens are newer
        if again is None:
            return issued
        log.info("token refresh lost the race, using the stored one", extra=self._where())
        return self._adopt(again)

    # --- the row ------------------------------------------------------------------------------

    def _repo(self, session: Session) -> ConnectionRepository:
        return ConnectionRepository(session, self.tenant_id, self.service.cipher)

    def _read(self, session: Session, lock: bool) -> _Stored | None:
        repo = self._repo(session)
        row = repo.locked(self.platform) if lock else repo.find(self.platform)
        return None if row is None else self._stored(row)

    def _stored(self, row: PlatformConnection) -> _Stored:
        return _Stored(
            seen=(row.credentials_version or 0, row.credentials_encrypted),
            credentials=self.service.cipher.decrypt(row.credentials_encrypted),
            expires_at=row.token_expires_at,
        )

    def _read_once(self) -> _Stored | None:
        with transaction(self.service.factory) as session:
            return self._read(session, False)

    def _newer(self, stored: _Stored) -> bool:
        """Other tokens than ours, still good: use them rather than refresh."""
        return (
            stored.seen != self.seen
            and bool(stored.credentials.get("access_token"))
            and not expires_soon(stored.expires_at, self.service.clock())
        )

    def _adopt(self, stored: _Stored) -> IssuedTokens:
        self.seen = stored.seen
        return stored.tokens()

    def _write(
        self, session: Session, stored: _Stored, issued: IssuedTokens
    ) -> IssuedTokens | None:
        credentials = dict(stored.credentials)
        credentials["access_token"] = issued.access_token
        if issued.refresh_token:  # rotated; else the platform keeps the one we have (Google)
            credentials["refresh_token"] = issued.refresh_token
        sealed = self._repo(session).swap_tokens(
            self.platform, stored.seen, credentials, issued.expires_at, issued.scopes
        )
        if sealed is None:
            return None
        self.seen = (stored.seen[0] + 1, sealed)
        refresh = credentials.get("refresh_token")
        return IssuedTokens(
            access_token=issued.access_token,
            refresh_token=str(refresh) if refresh else None,
            expires_at=issued.expires_at,
            lifetime=issued.lifetime,
            scopes=issued.scopes,
        )

    def _write_once(self, stored: _Stored, issued: IssuedTokens) -> IssuedTokens | None:
        with transaction(self.service.factory) as session:
            return self._write(session, stored, issued)

    def _flag(self, session: Session, stored: _Stored, refused: AuthExpiredError) -> None:
        """The refresh token no longer works: the connection needs reconnecting (unless its
        credentials changed since they were read)."""
        row = self._repo(session).find(self.platform)
        if row is None or (row.credentials_version or 0, row.credentials_encrypted) != stored.seen:
            return
        row.status = "needs_reconnect"
        row.status_message = describe(refused, self.platform)
        log.warning("token refresh refused: connection needs reconnecting", extra=self._where())

    def _flag_once(self, stored: _Stored, refused: AuthExpiredError) -> None:
        with transaction(self.service.factory) as session:
            self._flag(session, stored, refused)

    def _where(self) -> dict[str, object]:
        return {"tenant_id": self.tenant_id, "platform": self.platform.value}


async def _off_loop(call: Callable[..., T], *args: Any) -> T:
    return await asyncio.to_thread(call, *args)
