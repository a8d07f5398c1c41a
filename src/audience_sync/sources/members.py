"""Read a segment's members from the built-in CDP as columnar batches (Polars), not objects.

The sync reads millions of members: one Python object per profile would cost seconds and
gigabytes, so rows arrive as Polars frames of at most `batch_rows` rows, straight from the
database cursor.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, TypeVar

import polars as pl
from sqlalchemy import Engine, String, select, type_coerce
from sqlalchemy.sql.expression import Executable

from audience_sync.sources.columns import ColumnReader, reader_for
from audience_sync.store.db import driver_rows
from audience_sync.store.tables import Profile, ProfileIdentifier, SegmentMember

BATCH_ROWS = 250_000
IN_CHUNK = 5_000  # profile pks per `IN (…)`: well under SQLite's and PostgreSQL's limits
CONTENT_SCHEMA = {"owner": pl.Int64, "content_hash": pl.String}
# Tenant-scoped by the profile's (or identifier's) own tenant: the members' side is then read
# from its key's index alone (segment_id, profile_pk), never its rows, and in its order (ORDER BY
# p.id would make SQLite sort the whole segment before the first row).
# `{profile}`, `{identifier}`: the columns read (`MemberFields.sql`: the profile fields a reader
# needs; on SQLite packed into one JSON text a row); `{types}`: `AND i.type IN (…)` or ''.
PROFILES_SQL = (
    "SELECT {profile} FROM segment_members m JOIN profiles p "
    "ON p.id = m.profile_pk WHERE m.segment_id = ? AND p.tenant_id = ? ORDER BY m.profile_pk"
)
# The identifiers of the members whose pks lie in a batch's span (profile pks ascending;
# ordered by `m.profile_pk`, equal to `i.profile_pk`, SQLite needs no temporary B-tree).
IDENTIFIERS_SQL = (
    "SELECT {identifier} FROM profile_identifiers i "
    "JOIN segment_members m ON m.profile_pk = i.profile_pk "
    "WHERE m.segment_id = ? AND i.tenant_id = ? "
    "AND i.profile_pk BETWEEN ? AND ?{types} ORDER BY m.profile_pk, i.id"
)
# Read in columns (`columns.ColumnReader`): the next page of members after a pk, and every
# identifier of the profiles in a pk span, members or not (the members are kept in Polars). One
# walk along the `profile_pk` index: the join above seeks that index once a member instead
# (a million members: ~0.9 s against ~3.2 s of SQLite's time). `+` keeps SQLite off the
# (tenant_id, type, value) index, which would scan the tenant's identifiers for every span.
PROFILES_PAGE_SQL = (
    "SELECT {profile} FROM segment_members m JOIN profiles p "
    "ON p.id = m.profile_pk WHERE m.segment_id = ? AND p.tenant_id = ? AND m.profile_pk > ? "
    "ORDER BY m.profile_pk LIMIT ?"
)
IDENTIFIERS_SPAN_SQL = (
    "SELECT {identifier} FROM profile_identifiers i "
    "WHERE i.profile_pk BETWEEN ? AND ? AND +i.tenant_id = ?{types} ORDER BY i.profile_pk, i.id"
)
# The span read pays for the identifiers of every profile in the span; the join for each member.
# The span is read when at least this share of its pks are the batch's members.
SPAN_DENSITY = 0.25
PROFILES_OF_SQL = (
    "SELECT {profile} FROM profiles p CROSS JOIN segment_members m "
    "WHERE p.id IN ({marks}) AND m.profile_pk = p.id AND m.segment_id = ? AND +p.tenant_id = ? "
    "ORDER BY p.id"
)
# Only the listed members' identifiers: their membership is checked by the profiles' query.
# `+tenant_id` keeps SQLite off the (tenant_id, type, value) index, which it would otherwise scan
# for the whole tenant (3 s at a million members) instead of looking up the listed profiles.
IDENTIFIERS_OF_SQL = (
    "SELECT {identifier} FROM profile_identifiers i "
    "WHERE i.profile_pk IN ({marks}) AND +i.tenant_id = ?{types} ORDER BY i.profile_pk, i.id"
)
CONTENTS_SQL = (
    "SELECT p.id, p.content_hash FROM segment_members m JOIN profiles p ON p.id = m.profile_pk "
    "WHERE m.segment_id = ? AND p.tenant_id = ?"
)

T = TypeVar("T")
_END = object()

IDENTIFIER_SCHEMA = {
    "profile_pk": pl.Int64,
    "type": pl.String,
    "value": pl.String,
    "e164": pl.String,
    "kind": pl.String,
}
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


# SQLite hands each column of each row to Python as its own object, which cost more than the
# query: a million members' profiles took 2.83 s as rows, 1.40 s as one `json_array` text a row
# decoded by Polars; their identifiers 4.19 s and 3.56 s. PostgreSQL's rows are read as they are.
PACKED = frozenset({"sqlite"})


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

    def __post_init__(self) -> None:
        if not set(self.columns) <= set(PROFILE_COLUMNS):  # they are written into the SQL
            raise ValueError(
                f"unknown profile fields: {sorted(set(self.columns) - set(PROFILE_COLUMNS))}"
            )

    def sql(self, template: str, packed: bool = False, **more: str) -> str:
        """The query with these fields' columns and types in it; `packed`: each row's columns
        as one JSON array text (see `PACKED`)."""
        profile = ", ".join(["p.id", "p.profile_id", *(f"p.{name}" for name in self.columns)])
        identifier = "i.profile_pk, i.type, i.value, i.e164, i.kind"
        if packed:
            profile, identifier = f"json_array({profile})", f"json_array({identifier})"
        if self.types is None:
            types = ""
        elif not self.types:
            types = " AND 0 = 1"  # no identifier type wanted
        else:
            types = f" AND i.type IN ({', '.join('?' * len(self.types))})"
        return template.format(profile=profile, identifier=identifier, types=types, **more)

    def params(self) -> tuple[str, ...]:
        return self.types or ()

    @property
    def schema(self) -> dict[str, Any]:
        """The profile columns read."""
        read = ("profile_pk", "profile_id", *self.columns)
        return {name: PROFILE_SCHEMA[name] for name in read}

    def frame(self, rows: list[Any], packed: bool = False) -> pl.DataFrame:
        """A profiles frame of these rows, with every column of `PROFILE_SCHEMA`."""
        return self.complete(rows_frame(rows, self.schema, packed))

    def complete(self, frame: pl.DataFrame) -> pl.DataFrame:
        """A frame of the profile columns read, with the others added (null)."""
        missing = [
            pl.lit(None, pl.String).alias(n) for n in PROFILE_COLUMNS if n not in self.columns
        ]
        return frame.with_columns(missing).select(*PROFILE_SCHEMA)


EVERYTHING = MemberFields()


def member_batches(
    engine: Engine,
    tenant_id: int,
    segment_id: uuid.UUID,
    batch_rows: int = 50_000,
    fields: MemberFields = EVERYTHING,
) -> Iterator[tuple[pl.DataFrame, pl.DataFrame]]:
    """Members a batch at a time: (profile fields, their identifiers), both by `profile_pk`.

    Read in columns on SQLite where `columns.reader_for` can (`_member_columns`), else on the
    driver's cursor (`db.driver_rows`): a sync reads every member, and SQLAlchemy's result rows
    would cost more than the database's work."""
    with reader_for(engine) as reader:
        if reader is not None:
            yield from _member_columns(reader, tenant_id, segment_id, batch_rows, fields)
            return
    params = (segment_id, tenant_id)
    packed = engine.dialect.name in PACKED
    profiles_sql = fields.sql(PROFILES_SQL, packed)
    identifiers_sql = fields.sql(IDENTIFIERS_SQL, packed)
    with engine.connect() as connection:
        for rows in driver_rows(connection, profiles_sql, params, batch_rows):
            profiles = fields.frame(rows, packed)
            span = (int(profiles["profile_pk"][0]), int(profiles["profile_pk"][-1]))
            found = [
                rows_frame(part, IDENTIFIER_SCHEMA, packed)
                for part in driver_rows(
                    connection, identifiers_sql, (*params, *span, *fields.params()), BATCH_ROWS
                )
            ]
            yield profiles, pl.concat(found) if found else pl.DataFrame(schema=IDENTIFIER_SCHEMA)


def _member_columns(
    reader: ColumnReader,
    tenant_id: int,
    segment_id: uuid.UUID,
    batch_rows: int,
    fields: MemberFields,
) -> Iterator[tuple[pl.DataFrame, pl.DataFrame]]:
    """`member_batches` through the column reader: a page of members at a time, then their
    identifiers (a span read, or the join when the members are sparse among the span's pks)."""
    profiles_sql = fields.sql(PROFILES_PAGE_SQL)
    after = -(2**63)
    while True:
        page = reader.frame(profiles_sql, (segment_id, tenant_id, after, batch_rows), fields.schema)
        if page.is_empty():
            return
        pks = page["profile_pk"]
        first, after = int(pks[0]), int(pks[-1])
        params: tuple[object, ...]
        if len(page) >= SPAN_DENSITY * (after - first + 1):
            sql, params = fields.sql(IDENTIFIERS_SPAN_SQL), (first, after, tenant_id)
        else:
            sql, params = fields.sql(IDENTIFIERS_SQL), (segment_id, tenant_id, first, after)
        found = reader.frame(sql, (*params, *fields.params()), IDENTIFIER_SCHEMA)
        yield fields.complete(page), found.filter(pl.col("profile_pk").is_in(pks.implode()))
        if len(page) < batch_rows:
            return


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

    The listed pks drive each query: `CROSS JOIN` and `+tenant_id` keep SQLite from scanning the
    whole segment or tenant and filtering by the list (seconds a chunk at a million members, a
    few milliseconds this way; unary `+` only disqualifies an index, PostgreSQL ignores it)."""
    ordered = sorted(pks)
    packed = engine.dialect.name in PACKED
    with engine.connect() as connection:
        for start in range(0, len(ordered), IN_CHUNK):
            chunk = ordered[start : start + IN_CHUNK]
            marks = ", ".join("?" * len(chunk))
            sql = fields.sql(PROFILES_OF_SQL, packed, marks=marks)
            rows = [
                r
                for part in driver_rows(connection, sql, (*chunk, segment_id, tenant_id), IN_CHUNK)
                for r in part
            ]
            if not rows:
                continue
            sql = fields.sql(IDENTIFIERS_OF_SQL, packed, marks=marks)
            params = (*chunk, tenant_id, *fields.params())
            found = [r for part in driver_rows(connection, sql, params, BATCH_ROWS) for r in part]
            yield fields.frame(rows, packed), rows_frame(found, IDENTIFIER_SCHEMA, packed)


def member_contents(engine: Engine, tenant_id: int, segment_id: uuid.UUID) -> pl.DataFrame:
    """Every member (`owner`, its profile pk) with `content`, the first 64 bits of its
    profile's `content_hash` as an integer: it changes whenever the profile's content does."""
    params = (segment_id, tenant_id)
    with reader_for(engine) as reader:
        if reader is not None:
            found = reader.frame(CONTENTS_SQL, params, CONTENT_SCHEMA)
        else:
            found = _content_rows(engine, params)
    content = pl.col("content_hash").str.slice(0, 16).str.to_integer(base=16, dtype=pl.UInt64)
    return found.select("owner", content.alias("content"))


def _content_rows(engine: Engine, params: tuple[object, ...]) -> pl.DataFrame:
    with engine.connect() as connection:
        frames = [
            pl.DataFrame(rows, schema=CONTENT_SCHEMA, orient="row")
            for rows in driver_rows(connection, CONTENTS_SQL, params, BATCH_ROWS)
        ]
    return pl.concat(frames) if frames else pl.DataFrame(schema=CONTENT_SCHEMA)


def identifier_batches(
    engine: Engine,
    tenant_id: int,
    segment_id: uuid.UUID,
    batch_rows: int = BATCH_ROWS,
    pk_range: tuple[int, int] | None = None,
) -> Iterator[pl.DataFrame]:
    """Every identifier of every member: profile_pk, type, value, e164 (phones), kind (MAIDs)."""
    query = (
        select(
            ProfileIdentifier.profile_pk,
            type_coerce(ProfileIdentifier.type, String).label("type"),
            ProfileIdentifier.value,
            ProfileIdentifier.e164,
            type_coerce(ProfileIdentifier.kind, String).label("kind"),
        )
        .join(SegmentMember, SegmentMember.profile_pk == ProfileIdentifier.profile_pk)
        .where(
            SegmentMember.tenant_id == tenant_id,
            SegmentMember.segment_id == segment_id,
            ProfileIdentifier.tenant_id == tenant_id,
        )
        .order_by(ProfileIdentifier.profile_pk, ProfileIdentifier.id)
    )
    if pk_range is not None:
        query = query.where(ProfileIdentifier.profile_pk.between(*pk_range))
    return _batches(engine, query, IDENTIFIER_SCHEMA, batch_rows)


def profile_batches(
    engine: Engine, tenant_id: int, segment_id: uuid.UUID, batch_rows: int = BATCH_ROWS
) -> Iterator[pl.DataFrame]:
    """Every member's own id, enhanced-matching fields (names, address, birth date, gender)
    and data-use choices (consent, Limited Data Use)."""
    query = (
        select(
            Profile.id.label("profile_pk"),
            Profile.profile_id,
            Profile.first_name,
            Profile.last_name,
            Profile.city,
            Profile.state,
            Profile.zip,
            Profile.country,
            Profile.date_of_birth,
            Profile.gender,
            Profile.consent_ad_user_data,
            Profile.consent_ad_personalization,
            Profile.limited_data_use,
        )
        .join(SegmentMember, SegmentMember.profile_pk == Profile.id)
        .where(
            SegmentMember.tenant_id == tenant_id,
            SegmentMember.segment_id == segment_id,
            Profile.tenant_id == tenant_id,
        )
        .order_by(Profile.id)
    )
    return _batches(engine, query, PROFILE_SCHEMA, batch_rows)


def _batches(
    engine: Engine, query: Executable, schema: dict[str, type[pl.DataType]], batch_rows: int
) -> Iterator[pl.DataFrame]:
    # A server-side cursor on PostgreSQL; SQLite steps its cursor lazily anyway.
    with engine.connect() as connection:
        result = connection.execution_options(stream_results=True).execute(query)
        while rows := result.fetchmany(batch_rows):
            yield pl.DataFrame(rows, schema=schema, orient="row")
