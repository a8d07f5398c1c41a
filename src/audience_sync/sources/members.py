"""Read a segment's members from the built-in CDP as columnar batches (Polars), not objects.

The sync reads millions of members: one Python object per profile would cost seconds and
gigabytes, so rows arrive as Polars frames of at most `batch_rows` rows: on SQLite from the
compiled column reader (`columns`), on PostgreSQL as CSV from `COPY (SELECT …) TO STDOUT`
parsed by Polars (`_copy_frame`), never a Python object per row.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from typing import Any, Protocol, TypeVar

import polars as pl
from sqlalchemy import Connection, Engine

from audience_sync.sources.columns import ColumnReader, reader_for
from audience_sync.store.db import driver_rows, driver_sql
from audience_sync.store.stored_identifiers import IDENTIFIER_SCHEMA, decode

BATCH_ROWS = 250_000
MEMBER_BATCH_ROWS = 50_000  # members a batch of `member_batches` unless told (read when called)
IN_CHUNK = 5_000  # profile pks per `IN (…)`: well under SQLite's and PostgreSQL's limits
CONTENT_SCHEMA = {"owner": pl.Int64, "content_hash": pl.String}
# Tenant-scoped by the profile's own tenant: the members' side is then read from its key's
# index alone (segment_id, profile_pk), never its rows, and in its order (ORDER BY p.id would
# make SQLite sort the whole segment before the first row). `{profile}`: the columns read
# (`MemberFields.sql`: the profile fields a reader needs, and the identifiers' text when it
# needs identifiers; on SQLite packed into one JSON text a row).
PROFILES_SQL = (
    "SELECT {profile} FROM segment_members m JOIN profiles p "
    "ON p.id = m.profile_pk WHERE m.segment_id = ? AND p.tenant_id = ? ORDER BY m.profile_pk"
)
# Read in columns (`columns.ColumnReader`): the next page of members after a pk.
PROFILES_PAGE_SQL = (
    "SELECT {profile} FROM segment_members m JOIN profiles p "
    "ON p.id = m.profile_pk WHERE m.segment_id = ? AND p.tenant_id = ? AND m.profile_pk > ? "
    "ORDER BY m.profile_pk LIMIT ?"
)
# The listed members: `CROSS JOIN` fixes the join order, `+tenant_id` keeps SQLite off the
# (tenant_id, profile_id) index (it would scan the tenant's profiles and filter by the list).
PROFILES_OF_SQL = (
    "SELECT {profile} FROM profiles p CROSS JOIN segment_members m "
    "WHERE p.id IN ({marks}) AND m.profile_pk = p.id AND m.segment_id = ? AND +p.tenant_id = ? "
    "ORDER BY p.id"
)
# PostgreSQL, on tables without statistics (autovacuum off), in some runs: the plain join above
# was planned from a bitmap of the tenant's whole stretch of the `(tenant_id, profile_id)` index
# every page, and with the segment's key driving, `profile_pk > ? … LIMIT ?` as a bitmap of the
# rest of the segment sorted for each page (the planner guesses fewer rows than the limit). So a
# page is a closed range of the segment's pks, found first (POSTGRES_PAGE_BOUNDS_SQL): whatever
# the plan, it reads only its own members; each member's profile is one probe of the primary key
# (a `LATERAL` subquery with `OFFSET 0` cannot be pulled up into a join the planner could
# reorder). Parameters: segment, tenant, first pk, last pk.
# Each page's first and last member, found by the server in one walk of the segment's key in pk
# order (`row_number`, and `lead` for the segment's last member): a few rows a page come back,
# not every pk. Read as every pk joined into one text, ten million pks took the engine's
# process from ~350 to ~730 MB for a moment (the text, its copies, the parsed column).
# Parameters: segment, tenant, then the page's rows three times.
POSTGRES_PAGE_BOUNDS_SQL = (
    "SELECT n, pk FROM ("
    "SELECT profile_pk AS pk, row_number() OVER w - 1 AS n, "
    "lead(profile_pk) OVER w IS NULL AS last "
    "FROM segment_members WHERE segment_id = ? AND tenant_id = ? "
    "WINDOW w AS (ORDER BY profile_pk)"
    ") AS q WHERE mod(n, ?) = 0 OR mod(n, ?) = ? - 1 OR last"
)
POSTGRES_PROFILES_PAGE_SQL = (
    "SELECT {profile} FROM segment_members m "
    "CROSS JOIN LATERAL (SELECT * FROM profiles WHERE id = m.profile_pk OFFSET 0) AS p "
    "WHERE m.segment_id = ? AND p.tenant_id = ? AND m.profile_pk BETWEEN ? AND ? "
    "ORDER BY m.profile_pk"
)
# And `p.id IN (…)` was planned as a
# sequential scan of `profiles`; each listed pk's rows are found by `LATERAL` subqueries that
# cannot be pulled up into a join (`OFFSET 0`), so each costs one probe of each table's key
# (tests/integration/sync/test_sync_plans.py). Parameters: the pks (one array), tenant, segment.
POSTGRES_PROFILES_OF_SQL = (
    "SELECT {profile} FROM unnest(?::bigint[]) AS u(pk) "
    "CROSS JOIN LATERAL (SELECT * FROM profiles WHERE id = u.pk AND tenant_id = ? OFFSET 0) AS p "
    "CROSS JOIN LATERAL (SELECT 1 FROM segment_members "
    "WHERE segment_id = ? AND profile_pk = u.pk OFFSET 0) AS m "
    "ORDER BY p.id"
)
# Only the hash's first 16 hex digits, all `member_content_pages` keeps: the text of every member is
# read at once, and at 64 digits it was ~80 bytes a member (800 MB at ten million).
CONTENTS_SQL = (
    "SELECT p.id, substr(p.content_hash, 1, 16) FROM segment_members m "
    "JOIN profiles p ON p.id = m.profile_pk WHERE m.segment_id = ? AND p.tenant_id = ?"
)
# Read in columns: the next page of `CONTENTS_SQL` after a pk, in the segment key's order.
CONTENTS_PAGE_SQL = f"{CONTENTS_SQL} AND m.profile_pk > ? ORDER BY m.profile_pk LIMIT ?"

T = TypeVar("T")
_END = object()

PROFILE_SCHEMA = {
    "profile_pk": pl.Int64,
    "profile_id": pl.String,
    "first_name": pl.String,
    "last_name": pl.String,
    "city": pl.String,
    "state": pl.String,
    "zip": pl.String,
    "country": pl.String,
    "date_of_birth": pl.String,
    "gender": pl.String,
    # What the member allows (`domain.data_use`): read only for the platforms that use them.
    "consent_ad_user_data": pl.String,
    "consent_ad_personalization": pl.String,
    "limited_data_use": pl.String,
}
PROFILE_COLUMNS = tuple(name for name in PROFILE_SCHEMA if name not in ("profile_pk", "profile_id"))
STORED = "identifiers"  # the column of the identifiers' text (`store.stored_identifiers`)


# SQLite hands each column of each row to Python as its own object, which cost more than the
# query: a million members' profiles took 2.83 s as rows, 1.40 s as one `json_array` text a row
# decoded by Polars; their identifiers 4.19 s and 3.56 s. PostgreSQL's rows are read as they are.
PACKED = frozenset({"sqlite"})
# PostgreSQL: a query's rows as CSV from `COPY`, one page at a time, parsed by Polars' CSV reader
# (psycopg's row-by-row fetch made a Python object of every value: see docs/performance.md).
COPY_SQL = "COPY ({query}) TO STDOUT WITH (FORMAT csv)"
# In CSV, NULL is an unquoted empty field and '' a quoted one; Polars 2.1 keeps them apart, but
# its documentation promises nothing of it. So each text column is read as MARK || value: NULL
# stays NULL (an empty field), a value, even '', is never empty, and the mark is sliced off
# after parsing (tests/integration/test_members.py holds both apart on awkward text).
MARK = "."
COPIED = frozenset({"postgresql"})  # the engines read through `COPY`
# CONTENTS_SQL on PostgreSQL for one page of the segment (a closed pk range), driven by the
# segment's key as POSTGRES_PROFILES_PAGE_SQL is. Parameters: segment, tenant, first, last pk.
POSTGRES_CONTENTS_SQL = (
    # Only the hash's first 16 hex digits: all `member_content_pages` keeps (a quarter of the text).
    f"SELECT p.id, '{MARK}' || left(p.content_hash, 16) FROM segment_members m "  # noqa: S608
    "CROSS JOIN LATERAL (SELECT id, tenant_id, content_hash FROM profiles "
    "WHERE id = m.profile_pk OFFSET 0) AS p "
    "WHERE m.segment_id = ? AND p.tenant_id = ? AND m.profile_pk BETWEEN ? AND ?"
)
# A dense page (its members at least half of the profiles in its pk range, as when a segment
# holds most of a tenant's profiles) is read by a merge join of its stretch of the segment's key
# with its stretch of the profiles' primary key: each index walked once, in order, where the
# pages above probe the primary key once a member. A page of 50,000 members took the server
# 39 ms this way against 102 ms probed (EXPLAIN ANALYZE, a million-member segment). A merge
# join is never chosen on tables without statistics, so the page's transaction turns the other
# joins and bitmap scans off (`MERGE_JOIN_ONLY`; tests/integration/sync/test_sync_plans.py).
# A sparse page keeps its probes: a merge join would walk every profile of its range.
# `+p.tenant_id` keeps the planner off the `(tenant_id, profile_id)` index. Parameters:
# segment, tenant, first pk, last pk, first pk, last pk.
_DENSE_JOIN = (
    "FROM segment_members m JOIN profiles p ON p.id = m.profile_pk "
    "WHERE m.segment_id = ? AND +p.tenant_id = ? AND m.profile_pk BETWEEN ? AND ? "
    "AND p.id BETWEEN ? AND ?"
)
POSTGRES_DENSE_PAGE_SQL = "SELECT {profile} " + _DENSE_JOIN + " ORDER BY m.profile_pk"
POSTGRES_DENSE_CONTENTS_SQL = f"SELECT p.id, '{MARK}' || left(p.content_hash, 16) {_DENSE_JOIN}"
DENSE = 2  # a page is dense when its pk range is at most twice its members
MERGE_JOIN_ONLY = (
    "SET LOCAL enable_nestloop = off",
    "SET LOCAL enable_hashjoin = off",
    "SET LOCAL enable_bitmapscan = off",
)
# Members whose contents one `COPY` reads: its CSV (~30 bytes a member) and the parsed page are
# held only until the page is cut to 16 bytes a member. Read whole, ten million members' CSV
# and its parse took the engine's process to 2.4 GB before a member was prepared.
CONTENTS_PAGE_ROWS = 500_000


def rows_frame(rows: list[Any], schema: dict[str, Any], packed: bool) -> pl.DataFrame:
    """A frame of driver rows: tuples of the columns, or (`packed`) one JSON array text each."""
    if not packed:
        return pl.DataFrame(rows, schema=schema, orient="row")
    texts = pl.Series("row", [row[0] for row in rows], dtype=pl.String)
    cells = texts.str.json_decode(pl.List(pl.String))
    return pl.DataFrame(
        [
            cells.list.get(k, null_on_oob=True).cast(kind).alias(name)
            for k, (name, kind) in enumerate(schema.items())
        ],
        schema=schema,
    )


@dataclass(frozen=True, slots=True)
class MemberFields:
    """What a reader of members needs: these profile fields and identifier types (a sync reads
    only what its platform sends: Snapchat no names, no external ids). The frames keep every
    column of `PROFILE_SCHEMA`; a field not read is null."""

    columns: tuple[str, ...] = PROFILE_COLUMNS
    types: tuple[str, ...] | None = None  # None: every type
    # Also each member's content (`member_content_pages`' `content_hash`, its first 16 hex digits),
    # read by the same query; `split` leaves it out of the profiles (see `member_batches`).
    contents: bool = False

    def __post_init__(self) -> None:
        if not set(self.columns) <= set(PROFILE_COLUMNS):  # they are written into the SQL
            raise ValueError(
                f"unknown profile fields: {sorted(set(self.columns) - set(PROFILE_COLUMNS))}"
            )

    @property
    def wants_identifiers(self) -> bool:
        return self.types is None or bool(self.types)

    def sql(self, template: str, packed: bool = False, marked: bool = False, **more: str) -> str:
        """The query with these fields' columns in it; `packed`: each row's columns as one
        JSON array text (see `PACKED`); `marked`: each text column as `MARK` || its value
        (see `MARK`)."""
        texts = ["p.profile_id", *(f"p.{name}" for name in self.columns)]
        if self.wants_identifiers:
            texts.append(f"p.{STORED}")
        if self.contents:
            texts.append("substr(p.content_hash, 1, 16)")
        if marked:
            texts = [f"'{MARK}' || {column}" for column in texts]
        profile = ", ".join(["p.id", *texts])
        if packed:
            profile = f"json_array({profile})"
        return template.format(profile=profile, **more)

    @property
    def schema(self) -> dict[str, Any]:
        """The columns read."""
        read = {name: PROFILE_SCHEMA[name] for name in ("profile_pk", "profile_id", *self.columns)}
        if self.wants_identifiers:
            read[STORED] = pl.String
        if self.contents:
            read["content_hash"] = pl.String
        return read

    def split(self, frame: pl.DataFrame) -> tuple[pl.DataFrame, pl.DataFrame]:
        """(profiles with every column of `PROFILE_SCHEMA`, their identifiers of the wanted
        types) of a frame of the columns read."""
        if self.wants_identifiers:
            identifiers = decode(frame.select("profile_pk", STORED), self.types)
        else:
            identifiers = pl.DataFrame(schema=IDENTIFIER_SCHEMA)
        missing = [
            pl.lit(None, pl.String).alias(n) for n in PROFILE_COLUMNS if n not in self.columns
        ]
        return frame.with_columns(missing).select(*PROFILE_SCHEMA), identifiers

    def frames(self, rows: list[Any], packed: bool = False) -> tuple[pl.DataFrame, pl.DataFrame]:
        """`split` of these driver rows."""
        return self.split(rows_frame(rows, self.schema, packed))


EVERYTHING = MemberFields()


class ContentsSink(Protocol):
    """Where `member_batches` puts each batch's contents: a list, or a spill (`sync.prepare`)."""

    def append(self, frame: pl.DataFrame, /) -> None: ...


def member_batches(
    engine: Engine,
    tenant_id: int,
    segment_id: uuid.UUID,
    batch_rows: int | None = None,
    fields: MemberFields = EVERYTHING,
    contents: ContentsSink | None = None,
) -> Iterator[tuple[pl.DataFrame, pl.DataFrame]]:
    """Members a batch at a time: (profile fields, their identifiers), both by `profile_pk`.

    Read in columns on SQLite where `columns.reader_for` can (`_keyset_pages`), else on the
    driver's cursor (`db.driver_rows`): a sync reads every member, and SQLAlchemy's result rows
    would cost more than the database's work.

    `contents`: when given, each batch's `member_content_pages` frame is appended to it as the batch
    is read, by the same query. A sync that reads every member needs both, and a read of their
    own cost a second probe of every member's profile: on PostgreSQL ~1.9 s of the server's CPU
    and ~1.3 s of ours a million members."""
    if contents is not None:
        fields = replace(fields, contents=True)
    batch_rows = batch_rows or MEMBER_BATCH_ROWS
    for frame in _member_frames(engine, tenant_id, segment_id, batch_rows, fields):
        if contents is not None:
            owners = frame.select(pl.col("profile_pk").alias("owner"), "content_hash")
            contents.append(_contents(owners))
        yield fields.split(frame)


def _member_frames(
    engine: Engine,
    tenant_id: int,
    segment_id: uuid.UUID,
    batch_rows: int,
    fields: MemberFields,
) -> Iterator[pl.DataFrame]:
    """`member_batches`' pages, as read (`fields.schema`)."""
    with reader_for(engine) as reader:
        if reader is not None:
            sql, params = fields.sql(PROFILES_PAGE_SQL), (segment_id, tenant_id)
            yield from _keyset_pages(reader, sql, params, batch_rows, fields.schema)
            return
    if engine.dialect.name in COPIED:
        yield from _member_copies(engine, tenant_id, segment_id, batch_rows, fields)
        return
    packed = engine.dialect.name in PACKED
    sql = fields.sql(PROFILES_SQL, packed)
    with engine.connect() as connection:
        for rows in driver_rows(connection, sql, (segment_id, tenant_id), batch_rows):
            yield rows_frame(rows, fields.schema, packed)


def _keyset_pages(
    reader: ColumnReader,
    sql: str,
    params: tuple[object, ...],
    rows: int,
    schema: dict[str, Any],
) -> Iterator[pl.DataFrame]:
    """The rows of `sql` (a `… > ? ORDER BY key LIMIT ?` page after `params`) `rows` at a time,
    each page after the last one's key (its first column)."""
    after = -(2**63)
    while True:
        page = reader.frame(sql, (*params, after, rows), schema)
        if page.is_empty():
            return
        after = int(page[:, 0][-1])
        yield page
        if len(page) < rows:
            return


def _member_copies(
    engine: Engine,
    tenant_id: int,
    segment_id: uuid.UUID,
    batch_rows: int,
    fields: MemberFields,
) -> Iterator[pl.DataFrame]:
    """`member_batches` on PostgreSQL: a page of members a `COPY`, all in one snapshot.

    The segment's pks are read first (8 bytes a member), then each page of `batch_rows` of them
    (see POSTGRES_PROFILES_PAGE_SQL), so at most one page's CSV and frame are held besides."""
    pages = (
        fields.sql(POSTGRES_PROFILES_PAGE_SQL, marked=True),
        fields.sql(POSTGRES_DENSE_PAGE_SQL, marked=True),
    )
    for page in _copied_pages(engine, (segment_id, tenant_id), batch_rows, pages, fields.schema):
        if not page.is_empty():
            yield page


def _copied_pages(
    engine: Engine,
    params: tuple[object, ...],
    rows: int,
    pages: tuple[str, str],
    schema: dict[str, Any],
    *,
    plain: bool = False,
) -> Iterator[pl.DataFrame]:
    """The segment's pks (`params`: segment, tenant), then `rows` of them a page, each read by
    a `COPY` of `pages[1]` when the page is dense (`DENSE`), else of `pages[0]`; `plain`: the
    pages' text is plain (`_copy_lines`). One REPEATABLE READ transaction: every page sees the
    same members, as on SQLite."""
    repeatable = engine.connect().execution_options(isolation_level="REPEATABLE READ")
    copy = _copy_lines if plain else _copy_frame
    with repeatable as connection, connection.begin():
        for setting in MERGE_JOIN_ONLY:
            connection.exec_driver_sql(setting)
        for first, last, members in _page_bounds(connection, params, rows):
            if last - first + 1 <= DENSE * members:
                yield copy(connection, pages[1], (*params, first, last, first, last), schema)
            else:
                yield copy(connection, pages[0], (*params, first, last), schema)


def _page_bounds(
    connection: Connection, params: tuple[object, ...], rows: int
) -> list[tuple[int, int, int]]:
    """The segment's members (`params`: segment, tenant) in pages of `rows`: each page's first
    and last pk and its members, from the server (`POSTGRES_PAGE_BOUNDS_SQL`)."""
    sql = driver_sql(connection, POSTGRES_PAGE_BOUNDS_SQL)
    # Without statistics, a segments table of a few million rows was planned as a parallel
    # sequential scan and a sort spilled to disk (EXPLAIN ANALYZE: 614 ms for a million members
    # against 470 ms walking the key in order): no sort, so the key gives the order.
    connection.exec_driver_sql("SET LOCAL enable_sort = off")
    result = connection.exec_driver_sql(sql, (*params, rows, rows, rows)).all()
    connection.exec_driver_sql("SET LOCAL enable_sort = on")
    at = {int(n): int(pk) for n, pk in result}  # every page's first and last, the segment's last
    members = max(at) + 1 if at else 0
    ends = [(start, min(start + rows, members) - 1) for start in range(0, members, rows)]
    return [(at[first], at[last], last - first + 1) for first, last in ends]


def _copy_lines(
    connection: Connection, sql: str, params: Sequence[object], schema: dict[str, Any]
) -> pl.DataFrame:
    """`_copy_frame` of a query whose first column is an integer key and whose text holds no
    quote, comma or newline (pks, hex digits, `MARK`), in the order of that key: its rows are
    joined into one text on the server (`lines_sql`). psycopg hands a `COPY` over a row at a
    time, a few Python calls each under the GIL: a million pks took 0.97–1.52 s of our CPU
    that way, 0.08–0.11 s joined (the server's own time: 444 → 524 ms)."""
    data = _copied(connection, lines_sql(sql, schema), params)
    # The joined text is one CSV field, quoted (it holds newlines); no quote is inside it.
    frame = _parsed(data.replace(b'"', b""), schema)
    return frame.sort(next(iter(schema)))


def lines_sql(sql: str, schema: dict[str, Any]) -> str:
    """`sql`'s rows as CSV lines joined into one text (at most 1 GB, PostgreSQL's largest
    value: ~100 million pks). No GROUP BY: grouped, the planner sorted every row twice, on
    disk (1.2 s for a million pks against 0.44 s read as rows)."""
    names = [f"c{k}" for k in range(len(schema))]
    line = " || ',' || ".join(f"coalesce({name}::text, '')" for name in names)
    return f"SELECT string_agg({line}, E'\\n') FROM ({sql}) AS q({', '.join(names)})"  # noqa: S608


def _parsed(data: bytes, schema: dict[str, Any]) -> pl.DataFrame:
    """`COPY`'s CSV (every text column `MARK`ed) as a frame of `schema`."""
    if not data.strip():
        return pl.DataFrame(schema=schema)
    texts = [name for name, kind in schema.items() if kind == pl.String]
    frame = pl.read_csv(
        data, has_header=False, new_columns=list(schema), schema=schema, empty_string_is_null=True
    )
    return frame.with_columns(pl.col(texts).str.slice(len(MARK)))


def _copy_frame(
    connection: Connection, sql: str, params: Sequence[object], schema: dict[str, Any]
) -> pl.DataFrame:
    """The rows of `sql` (`?` placeholders; every text column `MARK`ed, see `MARK`) as a frame
    of `schema`, read through PostgreSQL's `COPY … TO STDOUT` in CSV."""
    return _parsed(_copied(connection, sql, params), schema)


def _copied(connection: Connection, sql: str, params: Sequence[object]) -> bytes:
    """The CSV `COPY … TO STDOUT` writes of `sql` (`?` placeholders)."""
    dbapi: Any = connection.connection.dbapi_connection
    data = bytearray()
    # COPY takes no server-side parameters: psycopg binds these on the client, quoted.
    with (
        dbapi.cursor() as cursor,
        cursor.copy(COPY_SQL.format(query=driver_sql(connection, sql)), params) as copy,
    ):
        for block in copy:
            data += block
    return bytes(data)


def read_ahead(batches: Iterator[T]) -> Iterator[T]:
    """The items of `batches`, the next one read on a thread while the caller works on this one.

    The column reader steps SQLite without the GIL and Polars works without it too, so on two
    cores a batch's read overlaps the previous batch's normalizing and hashing. One batch is
    read ahead, never more; closing this iterator waits for that read, then closes `batches`."""
    with ThreadPoolExecutor(1, thread_name_prefix="read-ahead") as pool:
        pending = pool.submit(next, batches, _END)
        try:
            while (item := pending.result()) is not _END:
                pending = pool.submit(next, batches, _END)
                yield item  # type: ignore[misc]
        finally:
            pending.cancel() or pending.exception()  # the read in flight, if any, ends first
            close = getattr(batches, "close", None)
            if close is not None:
                close()


def member_batches_of(
    engine: Engine,
    tenant_id: int,
    segment_id: uuid.UUID,
    pks: Sequence[int],
    fields: MemberFields = EVERYTHING,
) -> Iterator[tuple[pl.DataFrame, pl.DataFrame]]:
    """`member_batches` for these members only (those an update has to prepare again).

    The listed pks drive each query (`PROFILES_OF_SQL`): a few milliseconds a chunk, where a
    scan of the segment or tenant filtered by the list took seconds at a million members."""
    ordered = sorted(pks)
    packed = engine.dialect.name in PACKED
    postgres = engine.dialect.name == "postgresql"
    with engine.connect() as connection:
        for start in range(0, len(ordered), IN_CHUNK):
            chunk = ordered[start : start + IN_CHUNK]
            if postgres:
                sql = fields.sql(POSTGRES_PROFILES_OF_SQL)
                params: tuple[object, ...] = (chunk, tenant_id, segment_id)
            else:
                sql = fields.sql(PROFILES_OF_SQL, packed, marks=", ".join("?" * len(chunk)))
                params = (*chunk, segment_id, tenant_id)
            rows = [r for part in driver_rows(connection, sql, params, IN_CHUNK) for r in part]
            if rows:
                yield fields.frames(rows, packed)


def member_content_pages(
    engine: Engine, tenant_id: int, segment_id: uuid.UUID
) -> Iterator[pl.DataFrame]:
    """Every member (`owner`, its profile pk) with `content`, the first 64 bits of its
    profile's `content_hash` as an integer (it changes whenever the profile's content does), a
    page at a time (up to `CONTENTS_PAGE_ROWS` members), in the order of the members' pks (on
    SQLite and PostgreSQL)."""
    params = (segment_id, tenant_id)
    with reader_for(engine) as reader:
        if reader is not None:
            yield from _content_columns(reader, params)
            return
    if engine.dialect.name in COPIED:
        yield from _content_copies(engine, params)
        return
    yield from map(_contents, _content_rows(engine, params))


def _contents(found: pl.DataFrame) -> pl.DataFrame:
    content = pl.col("content_hash").str.slice(0, 16).str.to_integer(base=16, dtype=pl.UInt64)
    return found.select("owner", content.alias("content"))


def _content_columns(reader: ColumnReader, params: tuple[object, ...]) -> Iterator[pl.DataFrame]:
    """`member_content_pages` through the column reader: read whole, ten million members'
    text column took the update's process up by ~250 MB at once."""
    pages = _keyset_pages(reader, CONTENTS_PAGE_SQL, params, CONTENTS_PAGE_ROWS, CONTENT_SCHEMA)
    return map(_contents, pages)


def _content_copies(engine: Engine, params: tuple[object, ...]) -> Iterator[pl.DataFrame]:
    """`member_content_pages` on PostgreSQL: the segment's pks, then a `COPY` per page of
    `CONTENTS_PAGE_ROWS` of them, all in one snapshot (as `_member_copies`)."""
    pages = (POSTGRES_CONTENTS_SQL, POSTGRES_DENSE_CONTENTS_SQL)
    copied = _copied_pages(engine, params, CONTENTS_PAGE_ROWS, pages, CONTENT_SCHEMA, plain=True)
    return map(_contents, copied)


def _content_rows(engine: Engine, params: tuple[object, ...]) -> Iterator[pl.DataFrame]:
    with engine.connect() as connection:
        for rows in driver_rows(connection, CONTENTS_SQL, params, BATCH_ROWS):
            yield pl.DataFrame(rows, schema=CONTENT_SCHEMA, orient="row")
