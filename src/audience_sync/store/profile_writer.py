"""Write prepared batches of profiles (`PreparedRows`: `sources.prepare.Prepared`) into the CDP.

One batch is one transaction. Everything is set-wise on the driver's own cursor: SQLAlchemy's
per-row parameter processing costs more than the database's work at a million rows.

Nothing may depend on the planner having statistics (a fresh PostgreSQL table, autovacuum off,
has none): ids are matched by joining the table against the batch's ids — `unnest` of an array
on PostgreSQL, `json_each` on SQLite with `CROSS JOIN` fixing the join order — so each id costs
one index probe. `IN (<2,000 parameters>)` was planned on PostgreSQL as a scan of the tenant's
whole index per batch (~10 s a batch at 150,000 profiles); SQLite picked the same plan for a
plain join with `json_each`. `tests/integration/sources/test_import_plans.py` checks the plans
on tables without statistics.
"""

from __future__ import annotations

import io
import json
import logging
import sqlite3
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, Protocol, cast

import polars as pl
import psycopg
from sqlalchemy import Connection, Engine, Table
from sqlalchemy.exc import DataError, DBAPIError, IntegrityError, StatementError
from sqlalchemy.orm import Session, sessionmaker

from audience_sync.domain.profiles import FIELD_COLUMNS, LINE, ROW
from audience_sync.store.db import bound, transaction
from audience_sync.store.stored_identifiers import NONE, encode
from audience_sync.store.tables import Profile, SegmentMember
from audience_sync.store.types import utcnow

log = logging.getLogger(__name__)
PROFILES = cast(Table, Profile.__table__)
MEMBERS = cast(Table, SegmentMember.__table__)
PROFILE_COLUMNS = ("profile_id", *FIELD_COLUMNS, "traits", "content_hash", "identifiers")
UPDATED_COLUMNS = PROFILE_COLUMNS[1:]


class PreparedRows(Protocol):
    """A batch to write (`sources.prepare.Prepared`): `profiles`, one row each, with `ROW`,
    `LINE`, `profile_id`, the `FIELD_COLUMNS`, `traits` (JSON text), `content_hash` and
    `region`; `identifiers`: `ROW`, `type`, `value`, `kind`, in each profile's order."""

    @property
    def profiles(self) -> pl.DataFrame: ...

    @property
    def identifiers(self) -> pl.DataFrame: ...


@dataclass(frozen=True, slots=True)
class _Part:
    profiles: pl.DataFrame
    identifiers: pl.DataFrame


class AddE164(Protocol):
    """Gives the identifiers of the rows being written (`_row`, `type`, `value`, `kind`,
    `region`) with `e164`: each phone's E.164 form, null when it has none and for the other
    types (`sources.phones.PhoneParsing.e164`)."""

    def __call__(self, identifiers: pl.DataFrame) -> pl.DataFrame: ...


@dataclass(slots=True)
class WriteCounts:
    created: int = 0
    updated: int = 0
    unchanged: int = 0

    def add(self, other: WriteCounts) -> None:
        self.created += other.created
        self.updated += other.updated
        self.unchanged += other.unchanged


@dataclass(slots=True)
class ChunkResult:
    """What a batch stored, and the lines of the rows the database refused (each alone)."""

    counts: WriteCounts = field(default_factory=WriteCounts)
    refused: list[int] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class Destination:
    """Where rows go: the tenant, and the segment every written profile joins (if any)."""

    tenant_id: int
    segment_id: uuid.UUID | None = None


def write_prepared(
    factory: sessionmaker[Session],
    destination: Destination,
    prepared: PreparedRows,
    add_e164: AddE164,
) -> ChunkResult:
    """Write the batch in one transaction; if the database refuses a value, split the batch
    in halves, each in its own transaction, down to the refused rows alone: a bad row costs
    only itself. Only the exception's type is logged: its message may quote the rows' values."""
    result = ChunkResult()
    pending = [prepared]
    while pending:
        part = pending.pop()
        try:
            with transaction(factory) as session:
                connection = session.connection()
                result.counts.add(_write(connection, destination, part, add_e164))
        except Exception as exc:
            if not _refused(exc):
                raise
            log.warning("%d rows were refused (%s): writing them in smaller parts",
                        part.profiles.height, type(exc).__name__)  # fmt: skip
            if part.profiles.height == 1:
                result.refused.append(int(part.profiles[LINE][0]))
            else:
                pending.extend(reversed(_halves(part)))  # first half first: file order
    return result


def _refused(exc: Exception) -> bool:
    """A refusal of this data (a value, a constraint), not a failing database (connection,
    schema), which must stop the import rather than reject every row. The writer talks to the
    driver's own cursor, so the driver's exceptions arrive unwrapped as well as SQLAlchemy's."""
    if isinstance(exc, DBAPIError):
        return isinstance(exc, DataError | IntegrityError)
    if isinstance(exc, _DRIVER_REFUSALS):
        return True
    # StatementError: a value that failed before reaching the driver; ValueError: one the
    # driver could not encode.
    return isinstance(exc, StatementError | ValueError)


# PEP 249's DataError and IntegrityError of both drivers (psycopg's name each SQLSTATE below
# them: `UntranslatableCharacter` for a NUL in JSON is a DataError).
_DRIVER_REFUSALS = (
    sqlite3.DataError,
    sqlite3.IntegrityError,
    psycopg.DataError,
    psycopg.IntegrityError,
)


def _halves(prepared: PreparedRows) -> list[PreparedRows]:
    middle = prepared.profiles.height // 2
    parts: list[PreparedRows] = []
    for profiles in (prepared.profiles.head(middle), prepared.profiles.slice(middle)):
        rows = profiles.select(ROW)
        identifiers = prepared.identifiers.join(rows, on=ROW, how="semi", maintain_order="left")
        parts.append(_Part(profiles, identifiers))
    return parts


def write_in_session(
    session: Session, destination: Destination, prepared: PreparedRows, add_e164: AddE164
) -> WriteCounts:
    """Write the batch in the caller's transaction (which a refusal then fails as a whole)."""
    return _write(session.connection(), destination, prepared, add_e164)


def _write(
    connection: Connection, destination: Destination, prepared: PreparedRows, add_e164: AddE164
) -> WriteCounts:
    store = _Store.for_connection(connection, destination)
    counts = WriteCounts()
    for profiles in _rounds(prepared.profiles):
        counts.add(_write_round(store, profiles, prepared.identifiers, add_e164))
    return counts


def _rounds(profiles: pl.DataFrame) -> Iterator[pl.DataFrame]:
    """The batch in rounds of distinct profile ids: a profile repeated in the batch is written
    once a round, in file order (the last row wins)."""
    if not profiles["profile_id"].is_duplicated().any():
        yield profiles
        return
    turn = pl.int_range(pl.len()).over("profile_id").alias("_turn")
    numbered = profiles.with_columns(turn)
    turns = numbered["_turn"].n_unique()
    for number in range(turns):
        yield numbered.filter(pl.col("_turn") == number).drop("_turn")


def _write_round(
    store: _Store, profiles: pl.DataFrame, identifiers: pl.DataFrame, add_e164: AddE164
) -> WriteCounts:
    stored = store.lookup(profiles["profile_id"].to_list())
    profiles = profiles.join(stored, on="profile_id", how="left", maintain_order="left")
    new = profiles.filter(pl.col("_pk").is_null())
    changed = profiles.filter(
        pl.col("_pk").is_not_null() & (pl.col("_stored_hash") != pl.col("content_hash"))
    )
    written = pl.concat([new.select(ROW, "region"), changed.select(ROW, "region")])
    rows = identifiers.join(written, on=ROW, how="inner", maintain_order="left")
    texts = encode(add_e164(rows), ROW)
    if not new.is_empty():
        new = _with_texts(new, texts)
        new = new.with_columns(pl.Series("_pk", store.insert_profiles(new), dtype=pl.Int64))
    if not changed.is_empty():
        store.update_profiles(_with_texts(changed, texts))
    if store.segment_id is not None:
        kept = profiles.filter(pl.col("_pk").is_not_null())["_pk"]
        store.add_members(pl.concat([kept, new["_pk"]]).to_list())
    unchanged = profiles.height - new.height - changed.height
    return WriteCounts(new.height, changed.height, unchanged)


def _with_texts(profiles: pl.DataFrame, texts: pl.DataFrame) -> pl.DataFrame:
    """The profiles with their stored `identifiers` text ('' for none)."""
    joined = profiles.join(texts, on=ROW, how="left", maintain_order="left")
    return joined.with_columns(pl.col("identifiers").fill_null(NONE))


def stored_hashes(
    factory: sessionmaker[Session], destination: Destination, profile_ids: list[str]
) -> pl.DataFrame:
    """(`profile_id`, `_pk`, `_stored_hash`) of those stored, read on a connection of its own
    (outside any write in progress). An in-memory SQLite database has no second connection (a
    thread's own would be another, empty database): nothing is found there."""
    if _one_connection(factory):
        return pl.DataFrame(schema=LOOKUP_SCHEMA)
    with factory() as session:
        return _Store.for_connection(session.connection(), destination).lookup(profile_ids)


def _one_connection(factory: sessionmaker[Session]) -> bool:
    url = cast(Engine, factory.kw["bind"]).url
    return url.get_backend_name() == "sqlite" and (
        url.database in (None, "", ":memory:") or "mode=memory" in str(url)
    )


class _Store:
    """The statements of one database; one instance per transaction."""

    def __init__(self, connection: Connection, destination: Destination) -> None:
        self.connection = connection
        self.tenant_id = destination.tenant_id
        self.segment_id = destination.segment_id
        self.cursor: Any = connection.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
        self.now = utcnow()

    @staticmethod
    def for_connection(connection: Connection, destination: Destination) -> _Store:
        if connection.dialect.name == "postgresql":
            return _Postgres(connection, destination)
        return _SQLite(connection, destination)

    def timestamp(self) -> object:
        return bound(self.connection, PROFILES.c.updated_at, self.now)

    def lookup(self, profile_ids: list[str]) -> pl.DataFrame:
        raise NotImplementedError

    def insert_profiles(self, profiles: pl.DataFrame) -> list[int]:
        """Insert new profiles in order; their ids, in the same order."""
        raise NotImplementedError

    def update_profiles(self, profiles: pl.DataFrame) -> None:
        raise NotImplementedError

    def add_members(self, pks: list[int]) -> None:
        raise NotImplementedError


# The statements that find rows by the batch's ids (the plans tests check them on tables
# without statistics: `tests/integration/sources/test_import_plans.py`).
SQLITE_LOOKUP = (
    "SELECT j.value, p.id, p.content_hash FROM json_each(?) AS j "
    "CROSS JOIN profiles AS p WHERE p.tenant_id = ? AND p.profile_id = j.value"
)
SQLITE_ADD_MEMBERS = (
    "INSERT INTO segment_members (segment_id, profile_pk, tenant_id, added_at) "
    "SELECT ?, value, ?, ? FROM json_each(?) WHERE true "
    "ON CONFLICT (segment_id, profile_pk) DO NOTHING"
)
# On PostgreSQL each id's row is found by a `LATERAL` subquery that cannot be pulled up into a
# join (`LIMIT`, `OFFSET 0`): the plan is forced to a nested loop over the batch's ids, one
# index probe each. As a plain join, on tables without statistics the planner estimated the
# tenant at 0.5% of the rows and hashed the ids against a scan of the tenant's whole index
# (0.35 s a lookup at a million profiles, against 0.008 s). Rows to change are then reached by
# their `ctid` (a Tid Scan), never by a second join the planner could turn into a scan.
POSTGRES_LOOKUP = (
    "SELECT u.pid, p.id, p.content_hash FROM unnest(%s::text[]) AS u(pid) "
    "CROSS JOIN LATERAL (SELECT id, content_hash FROM profiles "
    "WHERE tenant_id = %s AND profile_id = u.pid LIMIT 1) AS p"
)
POSTGRES_ADD_MEMBERS = (
    "INSERT INTO segment_members (segment_id, profile_pk, tenant_id, added_at) "
    "SELECT %s, u.pk, %s, %s FROM unnest(%s::bigint[]) AS u(pk) "
    "ON CONFLICT (segment_id, profile_pk) DO NOTHING"
)
POSTGRES_NEW_IDS = (
    "SELECT nextval(pg_get_serial_sequence('profiles', 'id')) FROM generate_series(1, %s)"
)
LOOKUP_SCHEMA = {"profile_id": pl.String, "_pk": pl.Int64, "_stored_hash": pl.String}
_SET_FIELDS = ", ".join(f"{c} = ?" for c in UPDATED_COLUMNS)


class _SQLite(_Store):
    def lookup(self, profile_ids: list[str]) -> pl.DataFrame:
        self.cursor.execute(SQLITE_LOOKUP, (json.dumps(profile_ids), self.tenant_id))
        return pl.DataFrame(self.cursor.fetchall(), schema=LOOKUP_SCHEMA, orient="row")

    def insert_profiles(self, profiles: pl.DataFrame) -> list[int]:
        """Insert in order; the new rows' ids, which SQLite gives one after another: the
        transaction holds the database's only write lock from the first row on, and each new
        rowid is the largest plus one. Checked at both ends; looked up if ever not so."""
        now = self.timestamp()
        columns = ", ".join(PROFILE_COLUMNS)
        marks = ", ".join("?" * (len(PROFILE_COLUMNS) + 3))
        # Rows straight from Polars' own iterator: a Python generator re-packing each tuple
        # costs more than SQLite's insert (~1.5 µs a row).
        rows = profiles.select(
            pl.lit(self.tenant_id), *PROFILE_COLUMNS, pl.lit(now).alias("c"), pl.lit(now).alias("u")
        )
        self.cursor.executemany(
            f"INSERT INTO profiles (tenant_id, {columns}, created_at, updated_at) "  # noqa: S608
            f"VALUES ({marks})",
            rows.iter_rows(),
        )
        last = self.cursor.execute("SELECT last_insert_rowid()").fetchone()[0]
        first = last - profiles.height + 1
        ids = profiles["profile_id"]
        ends = self.cursor.execute(
            "SELECT id, profile_id FROM profiles WHERE id IN (?, ?)", (first, last)
        ).fetchall()
        if sorted(ends) == sorted({(first, ids[0]), (last, ids[-1])}):
            return list(range(first, last + 1))
        found = self.lookup(ids.to_list())  # pragma: no cover - rowids were not consecutive
        return profiles.join(found, on="profile_id", how="left", maintain_order="left")[
            "_pk"
        ].to_list()

    def update_profiles(self, profiles: pl.DataFrame) -> None:
        now = pl.lit(self.timestamp()).alias("updated_at")
        rows = profiles.select(*UPDATED_COLUMNS, now, "_pk")
        self.cursor.executemany(
            f"UPDATE profiles SET {_SET_FIELDS}, updated_at = ? WHERE id = ?",  # noqa: S608
            rows.iter_rows(),
        )

    def add_members(self, pks: list[int]) -> None:
        segment = bound(self.connection, MEMBERS.c.segment_id, self.segment_id)
        self.cursor.execute(
            SQLITE_ADD_MEMBERS, (segment, self.tenant_id, self.timestamp(), json.dumps(pks))
        )


class _Postgres(_Store):
    def lookup(self, profile_ids: list[str]) -> pl.DataFrame:
        self.cursor.execute(POSTGRES_LOOKUP, (profile_ids, self.tenant_id))
        return pl.DataFrame(self.cursor.fetchall(), schema=LOOKUP_SCHEMA, orient="row")

    def insert_profiles(self, profiles: pl.DataFrame) -> list[int]:
        """Ids drawn from the table's sequence first, then every row by `COPY`."""
        self.cursor.execute(POSTGRES_NEW_IDS, (profiles.height,))
        ids = [row[0] for row in self.cursor.fetchall()]
        now = self.now.isoformat()
        frame = profiles.select(
            pl.Series("id", ids, dtype=pl.Int64),
            pl.lit(self.tenant_id).alias("tenant_id"),
            *PROFILE_COLUMNS,
            pl.lit(now).alias("created_at"),
            pl.lit(now).alias("updated_at"),
        )
        self._copy("profiles", frame)
        return ids

    def update_profiles(self, profiles: pl.DataFrame) -> None:
        columns = UPDATED_COLUMNS
        assignments = ", ".join(
            f"{c} = v.{c}::jsonb" if c == "traits" else f"{c} = v.{c}" for c in columns
        )
        arrays = ", ".join(["%s::bigint[]", *["%s::text[]"] * len(columns)])
        self.cursor.execute(
            f"UPDATE profiles AS p SET {assignments}, updated_at = %s "  # noqa: S608
            f"FROM unnest({arrays}) AS v(id, {', '.join(columns)}) "
            "CROSS JOIN LATERAL (SELECT ctid AS row FROM profiles "
            "WHERE id = v.id AND tenant_id = %s OFFSET 0) AS x "
            "WHERE p.ctid = x.row",
            (
                self.now,
                profiles["_pk"].to_list(),
                *(profiles[c].to_list() for c in columns),
                self.tenant_id,
            ),
        )

    def add_members(self, pks: list[int]) -> None:
        self.cursor.execute(POSTGRES_ADD_MEMBERS, (self.segment_id, self.tenant_id, self.now, pks))

    def _copy(self, table: str, frame: pl.DataFrame) -> None:
        """`COPY table FROM STDIN` in CSV: nulls are unquoted empty fields, and every text
        value is quoted, so an empty string would stay one (the reader never makes them)."""
        data = io.BytesIO()
        frame.write_csv(data, include_header=False, quote_style="non_numeric", null_value="")
        with self.cursor.copy(
            f"COPY {table} ({', '.join(frame.columns)}) FROM STDIN (FORMAT csv)"
        ) as copy:
            copy.write(data.getvalue())
