"""Frames as LZ4 Arrow IPC for the parts stored in the database (snapshot, member state), and
the insert that stores such a file as a row without holding its bytes.

A part is written to a file first: polars writes to a path without the GIL but holds it while
writing to a `BytesIO` (measured: a Python thread beside the write ran 1.6× slower with a
`BytesIO`, 1.07× with a file); parts are written in a worker thread beside the sends
(`sync.writer.BackgroundWriter`). The file then goes into its row a MiB at a time
(`insert_part`): read whole and bound as a parameter, a part was held twice more — its bytes,
and the driver's copy of them (docs/performance.md, "Ten million members").
"""

from __future__ import annotations

import struct
import tempfile
import weakref
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import polars as pl
from psycopg import pq, sql
from psycopg.adapt import PyFormat, Transformer
from sqlalchemy import Table, func, insert
from sqlalchemy.orm import Session

from audience_sync.store.tables import Base

PIECE = 1 << 20  # bytes of a part read from its file and written to its row at a time
# Column type oids by table, per PostgreSQL connection (`_column_types`).
_TYPES: weakref.WeakKeyDictionary[Any, dict[str, dict[str, int]]] = weakref.WeakKeyDictionary()


@contextmanager
def part_files() -> Iterator[Path]:
    """A temporary folder for a part's files, removed with them at the end."""
    with tempfile.TemporaryDirectory(prefix="audience-sync-part-") as folder:
        yield Path(folder)


def write_part(frame: pl.DataFrame, path: Path) -> Path:
    """The frame as LZ4 Arrow IPC at `path`."""
    frame.write_ipc(path, compression="lz4")
    return path


def insert_frame(
    session: Session, model: type[Base], values: Mapping[str, object], frame: pl.DataFrame
) -> None:
    """`insert_part` of `frame`, written as LZ4 Arrow IPC to a temporary file first."""
    with part_files() as folder:
        insert_part(session, model, values, write_part(frame, folder / "part.arrow"))


def insert_part(
    session: Session,
    model: type[Base],
    values: Mapping[str, object],
    data: Path,
    *,
    column: str = "data",
) -> None:
    """INSERT one row of `model`'s table: `values`, and in `column` the bytes of the file
    `data`, copied a `PIECE` at a time (in the session's transaction, after what it has
    pending)."""
    session.flush()
    table = Base.metadata.tables[model.__tablename__]
    if session.get_bind().dialect.name == "postgresql":
        _copy_row(session, table, values, column, data)
    else:
        _blob_row(session, table, values, column, data)


def _blob_row(
    session: Session, table: Table, values: Mapping[str, object], column: str, data: Path
) -> None:
    """SQLite: the row with a zero-filled blob of the file's size, then the file written into
    it through an incremental blob handle (`sqlite3.Connection.blobopen`). SQLite makes a
    `zeroblob` whole when it is not the row's last column, as `data` is not in our tables
    (measured: inserting a 30 MB one took the peak RSS up 92 MB, 33 MB as the last column):
    still less than a bound value, which the driver and SQLite each held once more."""
    size = data.stat().st_size
    statement = insert(table).values(**values, **{column: func.zeroblob(size)})
    result = session.connection().execute(statement)
    if not size:
        return
    raw: Any = session.connection().connection.dbapi_connection
    with raw.blobopen(table.name, column, result.lastrowid) as blob, data.open("rb") as source:
        while piece := source.read(PIECE):
            blob.write(piece)


def _copy_row(
    session: Session, table: Table, values: Mapping[str, object], column: str, data: Path
) -> None:
    """PostgreSQL: one row of a binary `COPY ... FROM STDIN`, the file written as its `bytea`
    a piece at a time (a bound parameter must be whole in memory; a COPY's data need not).
    Binary, not text: a `bytea` in the text format goes as hex, and the server's parse of it
    took 0.42 s a 29 MB part against 0.18 s (a bound parameter: 0.26 s)."""
    names = [*values, column]
    raw: Any = session.connection().connection.dbapi_connection
    fields = _binary_fields(raw, table.name, values)
    statement = sql.SQL("COPY {} ({}) FROM STDIN (FORMAT BINARY)").format(
        sql.Identifier(table.name), sql.SQL(", ").join(map(sql.Identifier, names))
    )
    # The format: a signature, flags and an empty header extension; a row as its field count
    # and each field's length and bytes (-1: NULL); -1 as the trailer
    # (https://www.postgresql.org/docs/current/sql-copy.html#id-1.9.3.55.9.4).
    head = [b"PGCOPY\n\xff\r\n\x00", struct.pack("!iih", 0, 0, len(names))]
    for field in fields:
        head.append(struct.pack("!i", -1) if field is None else _sized(bytes(field)))
    head.append(struct.pack("!i", data.stat().st_size))
    with raw.cursor() as cursor, cursor.copy(statement) as copy, data.open("rb") as source:
        copy.write(b"".join(head))
        while piece := source.read(PIECE):
            copy.write(piece)
        copy.write(struct.pack("!h", -1))


def _binary_fields(raw: Any, table: str, values: Mapping[str, object]) -> list[Any]:
    """The values in PostgreSQL's binary format, each as its column's type (the catalog's),
    dumped by psycopg as its own binary COPY would."""
    types = _column_types(raw, table)
    dumping = Transformer(raw)
    dumping.set_dumper_types([types[name] for name in values], pq.Format.BINARY)
    return list(dumping.dump_sequence(list(values.values()), [PyFormat.BINARY] * len(values)))


def _column_types(raw: Any, table: str) -> dict[str, int]:
    """The type oid of each of `table`'s columns, read from the catalog once a connection (a
    part's insert asked it every time: ~400 queries a ten-million-member create). Kept by
    psycopg connection, so a pooled connection keeps them and a new one asks again."""
    cache = _TYPES.setdefault(raw, {})
    if table not in cache:
        query = "SELECT attname, atttypid FROM pg_attribute WHERE attrelid = %s::regclass"
        cache[table] = dict(raw.execute(query, (table,)).fetchall())
    return cache[table]


def _sized(field: bytes) -> bytes:
    return struct.pack("!i", len(field)) + field
