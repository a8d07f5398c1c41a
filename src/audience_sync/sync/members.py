"""From the CDP's member frames to connector records, keyed for the snapshot.

Memory stays bounded as segments grow: each record (its text, its hash, its 128-bit key and its
owner) is spilled a member batch at a time to an Arrow IPC file, and read back a part at a time;
what planning needs, the keys and owners, is read from the same files a piece at a time
(`keys.RecordKeys`: held, they were 24 bytes a record).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import polars as pl

from audience_sync.connectors import BaseAudienceConnector
from audience_sync.domain.data_use import DATA_USE_COLUMNS
from audience_sync.domain.models import (
    AudienceUser,
    IdentifierType,
    MobileIdKind,
    UserIdentifier,
)
from audience_sync.exceptions import ValidationError
from audience_sync.sources.members import read_ahead
from audience_sync.sync.diagnostics import Diagnostics
from audience_sync.sync.keys import RecordKeys
from audience_sync.sync.plan import hash_keys, record_hashes

CURRENT_SCHEMA = {"record_hash": pl.String, "record": pl.String, "owner": pl.Int64}
SUMMARY_SCHEMA = {"owner": pl.Int64, "dropped": pl.String}


@dataclass
class Current:
    """Every record the segment's members produce now, and what could not be used."""

    # k1, k2 (see `plan.hash_keys`), owner (profile_pk), in member order: where they are
    keys: RecordKeys = field(default_factory=RecordKeys)
    parts: list[Path] = field(default_factory=list)  # record_hash, record, owner, k1, k2
    members: int = 0
    unusable_members: int = 0  # members with no identifier the platform can take
    # Every member read, in the users' order, a Series a batch: 8 bytes a member, where a list
    # of Python ints took ~36 (360 MB at ten million). Kept only when asked (`keep_owners`):
    # a create needs none of them (80 MB at ten million).
    owner_batches: list[pl.Series] = field(default_factory=list)
    owners_kept: bool = True
    prepared: int = 0  # members read and prepared (the others were taken from the state)
    # The members with values dropped: `owner`, `dropped` (`drop_summary`).
    drops: pl.DataFrame = field(default_factory=lambda: pl.DataFrame(schema=SUMMARY_SCHEMA))
    # The first dropped values of the members prepared, masked (`sync.diagnostics`).
    diagnostics: Diagnostics = field(default_factory=Diagnostics)

    @property
    def dropped(self) -> Counter[str]:
        """Values dropped, by reason."""
        return drop_totals(self.drops["dropped"])

    @property
    def is_empty(self) -> bool:
        return self.keys.is_empty()

    @property
    def member_pks(self) -> pl.Series:
        """Every member read (`owner`), in the users' order (when they were kept)."""
        if not self.owners_kept:
            raise RuntimeError("the members read were not kept (current_records' keep_owners)")
        return pl.concat([pl.Series("owner", [], dtype=pl.Int64), *self.owner_batches])

    @property
    def prepared_members(self) -> int:
        """How many members were read and prepared."""
        return self.prepared

    def records(self) -> Iterator[pl.DataFrame]:
        """The records' full rows, one spilled part (one member batch) at a time."""
        for part in self.parts:
            yield pl.read_ipc(part)


PROFILE_FIELDS = {
    "first_name": "first_name",
    "last_name": "last_name",
    "country": "country",
    "city": "city",
    "state": "state",
    "zip": "zip_code",
    "date_of_birth": "date_of_birth",
    "gender": "gender",
}
SENDABLE = frozenset({*(t.value for t in IdentifierType), *PROFILE_FIELDS})
# What a member allows is read whatever the audience sends (`domain.data_use`).
DATA_USE_FIELDS = {name: name for name in DATA_USE_COLUMNS}
# Enum members by value: a dict lookup, not an `Enum(...)` call, per identifier.
_TYPES = {t.value: t for t in IdentifierType}
_KINDS = {k.value: k for k in MobileIdKind}


def drop_summary(drops: pl.DataFrame) -> pl.DataFrame:
    """Each member's dropped values (`owner`, `field`, `reason` rows) as one text: `owner`,
    `dropped` (`email:invalid_email:1,mobile_id:zeroed_maid:2`), what the member state keeps of
    them: enough for a run that takes the member from the state to count its drops by field and
    reason (`drop_counts`)."""
    counted = drops.group_by("owner", "field", "reason").len().sort("owner", "field", "reason")
    pieces = pl.format("{}:{}:{}", "field", "reason", "len").str.join(",")
    return counted.group_by("owner", maintain_order=True).agg(pieces.alias("dropped"))


def drop_counts(summaries: pl.Series) -> Counter[tuple[str, str]]:
    """The counts by (field, reason) of `drop_summary` texts (nulls: members without any)."""
    pieces = summaries.drop_nulls().str.split(",").explode().drop_nulls()
    parts = pieces.str.split_exact(":", 2).struct.rename_fields(["field", "reason", "count"])
    frame = parts.struct.unnest().with_columns(pl.col("count").cast(pl.Int64))
    totals = frame.group_by("field", "reason").agg(pl.col("count").sum())
    return Counter({(f, r): n for f, r, n in totals.iter_rows()})


def drop_totals(summaries: pl.Series) -> Counter[str]:
    """The counts by reason of `drop_summary` texts (the job's `details.dropped`)."""
    return by_reason(drop_counts(summaries))


def by_reason(counts: Counter[tuple[str, str]]) -> Counter[str]:
    """Counts by (field, reason) added up by reason."""
    totals: Counter[str] = Counter()
    for (_, reason), count in counts.items():
        totals[reason] += count
    return totals


def allowed_fields(config: dict[str, object]) -> frozenset[str]:
    """What an audience sends: everything its platform takes, unless its config narrows it
    (`identifier_types`: e.g. `["email", "phone"]`, or with `first_name`, `zip`, ...)."""
    chosen = config.get("identifier_types")
    if not chosen:
        return SENDABLE
    if not isinstance(chosen, list) or not set(map(str, chosen)) <= SENDABLE:
        raise ValidationError(
            f"identifier_types must be a list drawn from: {', '.join(sorted(SENDABLE))}."
        )
    return frozenset(map(str, chosen))


def users_of(
    profiles: pl.DataFrame, identifiers: pl.DataFrame, allowed: frozenset[str] = SENDABLE
) -> list[AudienceUser]:
    """One `AudienceUser` per profile row with the allowed identifiers (phones with E.164)."""
    by_profile: dict[int, list[UserIdentifier]] = {}
    for pk, kind_of_id, value, e164, kind in identifiers.iter_rows():
        if kind_of_id not in allowed:
            continue
        by_profile.setdefault(pk, []).append(
            UserIdentifier(_TYPES[kind_of_id], value, _KINDS[kind] if kind else None, e164)
        )
    fields = {column: name for column, name in PROFILE_FIELDS.items() if column in allowed}
    fields.update({c: name for c, name in DATA_USE_FIELDS.items() if c in profiles.columns})
    return [
        AudienceUser(
            profile_id=row["profile_id"],
            identifiers=tuple(by_profile.get(row["profile_pk"], ())),
            **{name: row[column] for column, name in fields.items()},
        )
        for row in profiles.iter_rows(named=True)
    ]


async def current_records(
    connector: BaseAudienceConnector,
    audience_id: str,
    batches: Iterator[tuple[pl.DataFrame, pl.DataFrame]],
    allowed: frozenset[str] = SENDABLE,
    *,
    spill: Path,
    keep_users: bool = False,
    keep_owners: bool = True,
    on_batch: Callable[[int], Awaitable[None]] | None = None,
) -> tuple[Current, list[AudienceUser]]:
    """Prepare every member as the connector would send it; keep each record's pairs.

    Records are written to `spill` (a directory the caller removes), one file per batch; the
    `AudienceUser`s are returned only with `keep_users` (a replace sends them all at once), the
    members read (`Current.member_pks`) only with `keep_owners`. `on_batch` is told how many
    members each batch prepared (the run's progress)."""
    drops: list[pl.DataFrame] = [pl.DataFrame(schema=SUMMARY_SCHEMA)]
    users_all: list[AudienceUser] = []
    current = Current(owners_kept=keep_owners)
    for profiles, identifiers in read_ahead(batches):
        built = await connector.record_frame(audience_id, profiles, identifiers, allowed)
        owners = profiles["profile_pk"].cast(pl.Int64).alias("owner")
        frame = built.records.select(
            record_hashes(pl.col("record")).alias("record_hash"), "record", "owner"
        )
        frame = frame.with_columns(hash_keys())
        part = spill / f"part-{len(current.parts):06d}.arrow"
        frame.write_ipc(part)
        current.parts.append(part)
        current.keys.add(part, frame)
        current.members += len(owners)
        current.prepared += len(owners)
        if keep_owners:
            current.owner_batches.append(owners)
        current.unusable_members += len(owners) - frame["owner"].n_unique()
        drops.append(drop_summary(built.drops))
        current.diagnostics.add_drops(built.drops)
        if keep_users:
            users_all.extend(users_of(profiles, identifiers, allowed))
        if on_batch is not None:
            await on_batch(len(owners))
    current.drops = pl.concat(drops)
    return current, users_all


async def collect_drops(
    connector: BaseAudienceConnector,
    audience_id: str,
    batches: Iterator[tuple[pl.DataFrame, pl.DataFrame]],
    allowed: frozenset[str],
    into: Diagnostics,
) -> None:
    """The dropped values of these members, into `into`'s entries only (their counts are
    known already); reading stops once `into` is full. Nothing is spilled or kept else."""
    try:
        for profiles, identifiers in batches:
            built = await connector.record_frame(audience_id, profiles, identifiers, allowed)
            into.add_drops(built.drops)
            if not into.room:
                return
    finally:
        close = getattr(batches, "close", None)
        if close is not None:
            close()  # a generator stopped early gives its connection back now
