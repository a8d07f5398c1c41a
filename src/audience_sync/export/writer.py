"""Write a segment's members to a CSV or JSON file, a batch at a time (memory stays bounded).

Rows come from `sources.members.member_batches` (columnar, from a streaming cursor), so memory
holds one batch whatever the segment's size; the file is written under a temporary name and
renamed when complete, so a half-written export is never served.

Columns: `profile_id`, one per requested identifier type (a list; `;`-joined in CSV), then
`traits` and `events` when asked. Hashed for a platform, identifiers are exactly what that
platform's upload would send (`identifiers.hash_many`; phones from their stored E.164, as the
sync does); hashed without one, they follow the platform-neutral normalization (`NEUTRAL`,
below); raw ones are as imported. `ExportSpec.normalization` names which. Events are the
`RECENT_EVENTS` latest per profile, name and time only: their free-form properties may hold
identifiers.
"""

from __future__ import annotations

import json
import uuid
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, Literal

import polars as pl
import polars_hash  # noqa: F401  (registers the `chash` namespace on expressions)
from sqlalchemy import Engine, func, select

from audience_sync.domain.models import IdentifierType, SyncPlatform
from audience_sync.export.cells import escape, escape_list, safe_writer
from audience_sync.files import open_private, private_dir
from audience_sync.identifiers import hash_many, is_hashed
from audience_sync.identifiers.fields import as_field
from audience_sync.sources.members import member_batches
from audience_sync.store.tables import Event, Profile

RECENT_EVENTS = 10
BATCH_ROWS = 50_000
# The platform-neutral normalization, for a hashed export with no platform: every value hashed
# (SHA-256, lowercase hex) after the normalization most platforms share — Meta's rules (email
# trimmed and lowercased; phone E.164 digits without `+`; mobile id lowercased; external id
# trimmed), which Snapchat shares for email and phone and TikTok for phone. A platform's own
# normalization matches best on that platform: Google strips Gmail dots and `+tags` and hashes
# phones with their `+`, TikTok drops `+tags`, Meta and Google take mobile ids raw.
NEUTRAL = "neutral"
NEUTRAL_RULES = SyncPlatform.META
UNHASHED = "none"


@dataclass(frozen=True, slots=True)
class ExportSpec:
    """What to write (the export options, with the platform whose hashing to use)."""

    format: Literal["csv", "json"]
    identifier_types: tuple[IdentifierType, ...]
    hash_identifiers: bool
    platform: SyncPlatform | None
    include_traits: bool
    include_events: bool

    @property
    def columns(self) -> list[str]:
        extra = [
            name
            for name, on in (("traits", self.include_traits), ("events", self.include_events))
            if on
        ]
        return ["profile_id", *(t.value for t in self.identifier_types), *extra]

    @property
    def normalization(self) -> str:
        """What the identifiers went through: a platform's name, `neutral`, or `none` (raw)."""
        if not self.hash_identifiers:
            return UNHASHED
        return self.platform.value if self.platform is not None else NEUTRAL


@dataclass(frozen=True, slots=True)
class Written:
    profile_count: int
    file_size_bytes: int


def write_export(
    engine: Engine,
    tenant_id: int,
    segment_id: uuid.UUID,
    spec: ExportSpec,
    path: Path,
    region: str = "US",
    batch_rows: int = BATCH_ROWS,
) -> Written:
    """Write the export to `path` (replaced atomically when complete), readable by the owner
    only; missing folders are created 0700."""
    private_dir(path.parent)
    partial = path.with_name(path.name + ".part")
    count = 0
    # 0600 from the first byte: an unhashed export holds raw identifiers (`audience_sync.files`).
    with open_private(partial) as sink:
        out = _CsvOut(sink, spec) if spec.format == "csv" else _JsonOut(sink)
        for profiles, identifiers in member_batches(engine, tenant_id, segment_id, batch_rows):
            for row in _rows(engine, tenant_id, profiles, identifiers, spec, region):
                out.write(row)
                count += 1
        out.close()
    partial.replace(path)
    return Written(count, path.stat().st_size)


def _rows(
    engine: Engine,
    tenant_id: int,
    profiles: pl.DataFrame,
    identifiers: pl.DataFrame,
    spec: ExportSpec,
    region: str,
) -> Iterator[dict[str, Any]]:
    frame = profiles.select("profile_pk", "profile_id")
    for identifier_type in spec.identifier_types:
        frame = frame.join(
            _identifier_lists(identifiers, identifier_type, spec, region),
            on="profile_pk",
            how="left",
        )
    pk_range = (int(profiles["profile_pk"].min()), int(profiles["profile_pk"].max()))  # type: ignore[arg-type]
    traits = _traits(engine, tenant_id, pk_range) if spec.include_traits else {}
    events = _events(engine, tenant_id, pk_range) if spec.include_events else {}
    for found in frame.iter_rows(named=True):
        pk = found["profile_pk"]
        row: dict[str, Any] = {"profile_id": found["profile_id"]}
        for identifier_type in spec.identifier_types:
            row[identifier_type.value] = found[identifier_type.value] or []
        if spec.include_traits:
            row["traits"] = traits.get(pk) or {}
        if spec.include_events:
            row["events"] = events.get(pk, [])
        yield row


def _identifier_lists(
    identifiers: pl.DataFrame, identifier_type: IdentifierType, spec: ExportSpec, region: str
) -> pl.DataFrame:
    """`profile_pk` → the list of that type's values (hashed for the platform, or raw)."""
    chosen = identifiers.filter(pl.col("type") == identifier_type.value)
    if spec.hash_identifiers and len(chosen):
        platform = spec.platform or NEUTRAL_RULES
        values = chosen.select(_hashable(identifier_type)).to_series()
        sent = pl.Series(hash_many(values, identifier_type, platform, region=region))
        if spec.platform is None and not is_hashed(platform, as_field(identifier_type)):
            sent = _sha256(sent)  # neutral: every value hashed, even those Meta takes raw
        chosen = chosen.with_columns(value=sent.cast(pl.String))
    return (
        chosen.select("profile_pk", "value")
        .drop_nulls("value")
        .unique(maintain_order=True)
        .group_by("profile_pk", maintain_order=True)
        .agg(pl.col("value").alias(identifier_type.value))
    )


def _hashable(identifier_type: IdentifierType) -> pl.Expr:
    """What is hashed: phones from their stored E.164, or a pre-hashed phone's digest (stored
    with no E.164, `phone_sha256`); other identifiers from their value."""
    if identifier_type is not IdentifierType.PHONE:
        return pl.col("value")
    digest = pl.when(pl.col("value").str.contains("^[0-9a-fA-F]{64}$")).then(pl.col("value"))
    return pl.coalesce(pl.col("e164"), digest)


def _sha256(values: pl.Series) -> pl.Series:
    """Each value's SHA-256 (lowercase hex), nulls kept; a value already a digest stays."""
    digest = pl.col("v").str.contains("^[0-9a-fA-F]{64}$")
    hashed: Any = pl.col("v")  # polars-hash registers `chash`; type checkers cannot see it
    frame = pl.DataFrame({"v": values.cast(pl.String)})
    out = frame.select(
        pl.when(digest)
        .then(pl.col("v").str.to_lowercase())
        .otherwise(hashed.chash.sha2_256())
        .alias("v")
    )
    return out["v"]


def _traits(engine: Engine, tenant_id: int, pk_range: tuple[int, int]) -> dict[int, Any]:
    query = select(Profile.id, Profile.traits).where(
        Profile.tenant_id == tenant_id, Profile.id.between(*pk_range)
    )
    with engine.connect() as connection:
        return {row.id: row.traits for row in connection.execute(query)}


def _events(
    engine: Engine, tenant_id: int, pk_range: tuple[int, int]
) -> dict[int, list[dict[str, str]]]:
    newest = (
        func.row_number()
        .over(partition_by=Event.profile_pk, order_by=(Event.occurred_at.desc(), Event.id.desc()))
        .label("n")
    )
    ranked = (
        select(Event.profile_pk, Event.name, Event.occurred_at, newest)
        .where(Event.tenant_id == tenant_id, Event.profile_pk.between(*pk_range))
        .subquery()
    )
    query = (
        select(ranked.c.profile_pk, ranked.c.name, ranked.c.occurred_at)
        .where(ranked.c.n <= RECENT_EVENTS)
        .order_by(ranked.c.profile_pk, ranked.c.n)
    )
    found: dict[int, list[dict[str, str]]] = defaultdict(list)
    with engine.connect() as connection:
        for pk, name, occurred_at in connection.execute(query):
            found[pk].append({"name": name, "occurred_at": _iso(occurred_at)})
    return found


def _iso(value: Any) -> str:
    return value.isoformat() if hasattr(value, "isoformat") else str(value)


class _CsvOut:
    """Every field quoted, every cell formula-safe (`export.cells`)."""

    def __init__(self, sink: IO[str], spec: ExportSpec) -> None:
        self.columns = spec.columns
        self.writer = safe_writer(sink)
        self.writer.writerow(self.columns)

    def write(self, row: dict[str, Any]) -> None:
        self.writer.writerow([_cell(row[name]) for name in self.columns])

    def close(self) -> None:
        return None


def _cell(value: Any) -> str:
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return escape_list(value)
    if isinstance(value, dict | list):
        return escape(json.dumps(value, ensure_ascii=False, sort_keys=True, default=str))
    return escape("" if value is None else str(value))


class _JsonOut:
    """A JSON array written one element at a time."""

    def __init__(self, sink: IO[str]) -> None:
        self.sink = sink
        self.first = True
        sink.write("[")

    def write(self, row: dict[str, Any]) -> None:
        self.sink.write("\n" if self.first else ",\n")
        self.sink.write(json.dumps(row, ensure_ascii=False, default=str))
        self.first = False

    def close(self) -> None:
        self.sink.write("\n]\n" if not self.first else "]\n")
