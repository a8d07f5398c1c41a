"""Alembic environment: runs against the engine handed over in `config.attributes`."""

from __future__ import annotations

from alembic import context
from sqlalchemy import Engine

from audience_sync.store.tables import Base

config = context.config
engine: Engine = config.attributes["engine"]

with engine.connect() as connection:
    sqlite = connection.dialect.name == "sqlite"
    if sqlite:
        # A batch operation rebuilds a table: it drops the old one, and with foreign keys on,
        # dropping a parent table deletes its children's rows by `ON DELETE CASCADE` (a
        # downgrade dropping a column of `profiles` emptied `segment_members`). SQLite's
        # documented recipe for schema changes turns them off meanwhile; this PRAGMA is a
        # no-op inside a transaction, hence before it.
        connection.exec_driver_sql("PRAGMA foreign_keys=OFF")
    context.configure(
        connection=connection,
        target_metadata=Base.metadata,
        # SQLite cannot ALTER most things; batch mode rebuilds tables so one script runs on both.
        render_as_batch=sqlite,
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()
    connection.commit()
    if sqlite:
        connection.exec_driver_sql("PRAGMA foreign_keys=ON")
