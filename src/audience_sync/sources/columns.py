"""SQLite query results straight into Polars columns, through the compiled `_columns`.

Reading a million members through Python's sqlite3 module makes a Python object of every
value; `_columns` steps the query without the GIL and hands Polars Arrow buffers (see its
source). It is used only when it is built (setup.py: gcc and SQLite's headers) and when Python's
sqlite3 module runs on the very SQLite library `_columns` links: a second copy of SQLite in one
process would break the database's locks. Otherwise `reader_for` says None and callers read
through the driver as before.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from types import ModuleType
from typing import Any

import polars as pl
from sqlalchemy import Engine

log = logging.getLogger(__name__)
BUSY_MS = 10_000  # as the engine's `PRAGMA busy_timeout` (store/db.py)


def _load() -> ModuleType | None:
    try:
        import _sqlite3

        from audience_sync.sources import _columns
    except ImportError:
        return None
    return _columns if _columns.same_library(_sqlite3.__file__) else None


_COLUMNS = _load()


class _Exported:
    """One column as `_columns.query` made it, for `pl.Series` (Arrow's PyCapsule interface)."""

    __slots__ = ("pair",)

    def __init__(self, pair: tuple[object, object]) -> None:
        self.pair = pair

    def __arrow_c_array__(self, requested_schema: object | None = None) -> tuple[object, object]:
        return self.pair


class ColumnReader:
    """A read-only connection of its own to an SQLite file; every query in one read
    transaction, so the frames it reads agree with each other."""

    def __init__(self, module: ModuleType, path: str) -> None:
        self.module = module
        self.db = module.open(path, BUSY_MS)
        self.module.query(self.db, "BEGIN", (), "")

    def frame(self, sql: str, params: Sequence[object], schema: dict[str, Any]) -> pl.DataFrame:
        """The rows of `sql` (`?` placeholders; UUIDs as SQLAlchemy stores them on SQLite, 32
        hex digits) as a frame of `schema`: its Int64 columns are read as integers, the others
        as text."""
        kinds = "".join("i" if kind == pl.Int64 else "t" for kind in schema.values())
        values = tuple(p.hex if isinstance(p, uuid.UUID) else p for p in params)
        pairs = self.module.query(self.db, sql, values, kinds)
        return pl.DataFrame(
            [
                pl.Series(_Exported(pair)).alias(name).cast(kind)
                for pair, (name, kind) in zip(pairs, schema.items(), strict=True)
            ],
            schema=schema,
        )

    def close(self) -> None:
        self.module.close(self.db)  # ends the read transaction


def sqlite_path(engine: Engine) -> str | None:
    """The file of an SQLite engine; None for other databases and in-memory ones."""
    url = engine.url
    if url.get_backend_name() != "sqlite" or url.query.get("uri"):
        return None
    database = url.database
    if not database or database == ":memory:" or database.startswith("file:"):
        return None
    return database


@contextmanager
def reader_for(engine: Engine) -> Iterator[ColumnReader | None]:
    """A `ColumnReader` on the engine's SQLite file, or None where it cannot be used."""
    path = sqlite_path(engine)
    if _COLUMNS is None or path is None:
        yield None
        return
    try:
        reader = ColumnReader(_COLUMNS, path)
    except OSError as error:  # e.g. a read-only folder without the WAL's files: the driver can
        log.warning("reading members through the driver: %s", error)
        yield None
        return
    try:
        yield reader
    finally:
        reader.close()
