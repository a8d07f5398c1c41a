"""The database as the entry points open it: engine, sessions, transactions, migrations."""

from __future__ import annotations

from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from audience_sync.config import Settings
from audience_sync.store import db
from audience_sync.store.db import transaction

__all__ = ["Engine", "Session", "is_migrated", "open_engine", "sessions", "transaction", "upgrade"]


def open_engine(settings: Settings) -> Engine:
    """The engine of the configured database, its PostgreSQL pool sized by the settings."""
    return db.make_engine(
        settings.effective_database_url,
        pool=(settings.database_pool_size, settings.database_max_overflow),
    )


def sessions(engine: Engine) -> sessionmaker[Session]:
    return db.session_factory(engine)


def is_migrated(engine: Engine) -> bool:
    return db.is_migrated(engine)


def upgrade(engine: Engine, revision: str = "head") -> None:
    """Create or migrate the schema (safe to run any number of times)."""
    db.upgrade(engine, revision)
