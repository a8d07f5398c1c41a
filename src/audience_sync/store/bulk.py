"""Set-wise writes that work the same on SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from audience_sync.store.tables import Base


def insert_ignore(
    session: Session, model: type[Base], rows: Sequence[dict[str, Any]], conflict: Sequence[str]
) -> None:
    """INSERT rows, skipping those that collide on the `conflict` columns."""
    if not rows:
        return
    dialect = session.get_bind().dialect.name
    if dialect == "postgresql":
        pg_stmt = postgresql.insert(model).on_conflict_do_nothing(index_elements=list(conflict))
        session.execute(pg_stmt, list(rows))
    elif dialect == "sqlite":
        lite_stmt = sqlite.insert(model).on_conflict_do_nothing(index_elements=list(conflict))
        session.execute(lite_stmt, list(rows))
    else:  # pragma: no cover - only the two supported databases
        raise NotImplementedError(f"insert_ignore does not support {dialect}")
