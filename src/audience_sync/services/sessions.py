"""Dashboard sign-in: an API key opens a session; the browser holds only the session's token."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy.orm import Session, sessionmaker

from audience_sync.store.db import transaction
from audience_sync.store.sessions import SessionRepository
from audience_sync.store.types import utcnow

# A working day and then some; signing in again costs one paste of the key.
LIFETIME = timedelta(hours=12)


@dataclass(frozen=True, slots=True)
class Viewer:
    """Who a dashboard request acts for."""

    tenant_id: int
    csrf_token: str
    key_prefix: str  # which key signed in (shown in the page header), never the key


@dataclass(frozen=True, slots=True)
class SignedIn:
    token: str  # the cookie's value; stored only as its SHA-256
    viewer: Viewer


def sign_in(factory: sessionmaker[Session], key: str) -> SignedIn | None:
    """A new session for a valid API key, else None (the caller says "invalid key")."""
    now = utcnow()
    with transaction(factory) as session:
        repository = SessionRepository(session)
        repository.purge_expired(now)
        opened = repository.open(key.strip(), now, LIFETIME)
        if opened is None:
            return None
        token, row = opened
        prefix = row.api_key.prefix
        return SignedIn(token, Viewer(row.tenant_id, row.csrf_token, prefix))


def viewer(factory: sessionmaker[Session], token: str) -> Viewer | None:
    """The viewer of a live session: None once it expired, was signed out or its key revoked."""
    with transaction(factory) as session:
        found = SessionRepository(session).find(token, utcnow())
        if found is None:
            return None
        row, key = found
        return Viewer(row.tenant_id, row.csrf_token, key.prefix)


def sign_out(factory: sessionmaker[Session], token: str) -> None:
    with transaction(factory) as session:
        SessionRepository(session).close(token)
