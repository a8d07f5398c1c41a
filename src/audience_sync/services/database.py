"""The database as the entry points open it: engine, sessions, transactions, migrations."""

from __future__ import annotations

from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from audience_sync.store import db
from audience_sync.store.db import transaction

__all__ = ["Engine", "Session", "is_migrated", "open_engine", "sessions", "transaction", "upgrade"]


def open_engine(url: str) -> Engine:
    return db.make_engine(url)


def sessions(engine: Engine) -> sessionmaker[Session]:
    return db.session_factory(engine)


def is_migrated(engine: Engine) -> bool:
    return db.is_migrated(engine)


def upgrade(engine: Engine, revision: str = "head") -> None:
    """Create or migrate the schema (safe to run any number of times)."""
    db.upgrade(engine, revision)
