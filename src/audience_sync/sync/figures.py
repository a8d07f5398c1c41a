"""A run's figures in members, the same for every platform and operation, kept as it goes."""

from __future__ import annotations

from dataclasses import dataclass

import polars as pl

from audience_sync.domain.models import AudienceSyncResult
from audience_sync.sync.jobs import JobMetrics
from audience_sync.sync.keys import RecordKeys, owner_span
from audience_sync.sync.members import Current, by_reason, drop_counts
from audience_sync.sync.plan import KEYS, hash_keys


class OwnerTally:
    """Distinct members over a run's chunks: a member's records can straddle two chunks, and
    counting each chunk's members would count such a member twice."""

    def __init__(self) -> None:
        # The members counted, a chunk's new ones a part (`_counted`).
        self.parts: list[_Bits | _Members] = []
        self.count = 0

    def add(self, owners: pl.Series) -> int:
        """How many of these members were not counted yet."""
        fresh = owners.unique().cast(pl.Int64)
        if fresh.is_empty():
            return 0
        low, high = owner_span(fresh)
        # Only the parts whose span meets this chunk's are looked at. Chunks come in member
        # order (the spill's), so that is the part before, not every member counted: looking
        # them all up at every chunk took 6.8 s of a 10M-member TikTok create (400 chunks),
        # 0.2 s at 1M.
        for part in self.parts:
            if part.low <= high and low <= part.high:
                fresh = fresh.filter(~part.seen(fresh))
        if fresh.is_empty():
            return 0
        self.parts.append(_counted(fresh, *owner_span(fresh)))
        self.count += len(fresh)
        return len(fresh)


def _counted(fresh: pl.Series, low: int, high: int) -> _Bits | _Members:
    """A chunk's newly counted members (distinct, Int64, from `low` to `high`): a bit for each
    member of their span where they fill at least a 64th of it, else the members as they are
    (8 bytes each). Members are profiles' ids, mostly dense (measured, two tallies over 10M
    members in chunks of 25,000: RSS +87 MB as integers, +15 MB as bits)."""
    if high - low < 64 * len(fresh):
        return _Bits(fresh, low, high)
    return _Members(fresh, low, high)


@dataclass(frozen=True)
class _Members:
    members: pl.Series
    low: int
    high: int

    def seen(self, owners: pl.Series) -> pl.Series:
        """Which of `owners` are among these members."""
        return owners.is_in(self.members.implode())


class _Bits:
    """Members as a Boolean series over their span (polars keeps it a bit a value)."""

    def __init__(self, members: pl.Series, low: int, high: int) -> None:
        self.low, self.high = low, high
        self.bits = pl.repeat(False, high - low + 1, dtype=pl.Boolean, eager=True)
        self.bits.scatter(members - low, True)

    def seen(self, owners: pl.Series) -> pl.Series:
        """Which of `owners` are among these members."""
        offsets = owners - self.low
        last = self.high - self.low
        return offsets.is_between(0, last) & self.bits.gather(offsets.clip(0, last))


class RemovedMembers:
    """The members a run's accepted removals took off the platform (`profiles_removed`, see
    `Figures`). A removed record's members are its owners in the last run's member state; one
    counts once, when it produces no record now (it left the segment or lost every identifier).
    A removed record with no known owner (no stored state: a first update after an upgrade, a
    replace) counts as one, and is tallied in `without_owner`."""

    def __init__(self, owners: pl.DataFrame | None = None) -> None:
        # `k1`, `k2`, `owner`, `gone` of the plan's removed records that the state names an
        # owner of (`gone`: the owner produces no record now); None without a stored state.
        self.owners = owners
        self.gone = OwnerTally()
        self.without_owner = 0

    @classmethod
    def of(
        cls,
        removes: pl.DataFrame,
        previous: pl.DataFrame | None,
        current: pl.DataFrame | RecordKeys,
    ) -> RemovedMembers:
        """For a plan's `removes` (`record_hash`), the last state (`previous`: `owner`, `k1`,
        `k2`) and the current records (`current`: `k1`, `k2`, `owner`). Joins of the removed
        keys, a scan of the state and one of the current owners: no loop over records."""
        if previous is None:
            return cls()
        keys = removes.select(hash_keys()).unique()
        named = (
            previous.filter(pl.col("k1").is_in(keys["k1"].implode()))
            .select(*KEYS, pl.col("owner").cast(pl.Int64))
            .join(keys, on=KEYS, how="semi")
        )
        owners = named["owner"].unique().implode()
        still = current.filter(pl.col("owner").is_in(owners))["owner"].unique().implode()
        return cls(named.with_columns(gone=~pl.col("owner").is_in(still)))

    def add(self, removed: pl.DataFrame) -> None:
        """Records (`record_hash`) the platform accepted to remove."""
        keys = removed.select(hash_keys())
        if self.owners is None:
            self.without_owner += len(keys)
            return
        self.without_owner += len(keys.join(self.owners, on=KEYS, how="anti"))
        gone = self.owners.filter(pl.col("gone")).join(keys, on=KEYS, how="semi")
        self.gone.add(gone["owner"])

    @property
    def count(self) -> int:
        return self.gone.count + self.without_owner


@dataclass(slots=True)
class Figures:
    """A run's figures, in members (profiles), the same for every platform and operation.

    Every member of the segment is exactly one of: *added* (at least one record sent in this
    run and accepted), *failed* (`unusable`: no identifier the platform takes; or `refused`:
    records sent, none accepted) or *unchanged* (nothing to send: the platform already holds
    all its records). `profiles_sent` = added + refused.

    `profiles_removed` counts members too: those with at least one record removed and accepted
    by the platform who produce no record now (left the segment, or lost every identifier),
    each found as the owner of a removed record in the last run's member state. A member who
    only changed an identifier is not removed. A removed record with no known owner (no stored
    state: a first update after an upgrade, a replace) counts as one member, and as one in
    `removes_without_owner`, so the figure never hides removals. `removes_sent` and
    `removes_refused` count records (the removal requests).

    `refreshed` counts members with at least one record re-sent only to keep it on the
    platform before its membership lifetime ends (docs/freshness.md) and accepted. They stay
    *unchanged* in the partition above: nothing about them changed.
    """

    members: int = 0
    unusable: int = 0
    sent: int = 0
    added: int = 0
    removes_sent: int = 0
    removes_refused: int = 0
    removes_without_owner: int = 0
    refreshed: int = 0

    @property
    def refused(self) -> int:
        return self.sent - self.added

    @property
    def unchanged(self) -> int:
        return max(0, self.members - self.unusable - self.sent)

    def as_json(self) -> dict[str, int]:
        return {
            "members": self.members,
            "unusable": self.unusable,
            "refused": self.refused,
            "unchanged": self.unchanged,
            "removes_sent": self.removes_sent,
            "removes_refused": self.removes_refused,
            "removed_records_without_owner": self.removes_without_owner,
            "refreshed": self.refreshed,
        }


class Tally:
    """A run's figures as its chunks are confirmed, written through to the job's `metrics`."""

    def __init__(self, metrics: JobMetrics) -> None:
        self.metrics = metrics
        self.refused = 0  # records the platform refused in this run
        self.sent_to = OwnerTally()  # members whose records were sent to be added
        self.added = OwnerTally()  # members with at least one record the platform accepted
        self.figures = Figures()
        self.removed = RemovedMembers()
        # `k1`, `k2` of the records this run re-sends for freshness only (`refreshing`).
        self.refresh_keys = pl.DataFrame(schema=dict.fromkeys(KEYS, pl.UInt64))
        self.refreshed = OwnerTally()  # members with a refresh record accepted

    def diagnose(self, current: Current) -> None:
        """The prepared members' figures and drops, before anything is sent."""
        self.figures = Figures(members=current.members, unusable=current.unusable_members)
        self.count_members(sent=0, added=0)
        self.metrics.details["members"] = current.members
        self.metrics.details["prepared_members"] = current.prepared_members
        counts = drop_counts(current.drops["dropped"])  # read once, for both
        self.metrics.details["dropped"] = dict(by_reason(counts))
        current.diagnostics.count(counts)
        self.metrics.diagnostics = current.diagnostics

    def count_members(self, *, sent: int, added: int) -> None:
        """The job's member figures from this run's members sent to be added and accepted
        (see `Figures`)."""
        figures = self.figures
        figures.sent, figures.added = sent, added
        self.metrics.profiles_sent = sent
        self.metrics.profiles_added = added
        self.metrics.profiles_failed = figures.unusable + figures.refused
        self.metrics.details["figures"] = figures.as_json()

    def accepted_for_processing(self, result: AudienceSyncResult) -> None:
        """Requests the platform accepted and processes later are kept for the confirmation
        step; row-level warnings at acceptance are added up on the job."""
        if result.details.get("requests_pending"):
            self.metrics.pending_requests.extend(result.request_ids)
        warnings = result.details.get("field_warnings") or {}
        if warnings:
            held = self.metrics.details.setdefault("field_warnings", {})
            for reason, count in warnings.items():
                held[reason] = held.get(reason, 0) + int(count)

    def refused_adds(self, owners: pl.Series) -> None:
        """Members whose records the platform refused to add, for the diagnostics."""
        if self.metrics.diagnostics is not None:
            self.metrics.diagnostics.add_refused(owners)

    def refreshing(self, records: pl.DataFrame) -> None:
        """Records (`k1`, `k2`) this run re-sends for freshness alone: counted as `refreshed`,
        not as added."""
        self.refresh_keys = records.select(KEYS).unique()

    def adds_confirmed(self, chunk: pl.DataFrame, accepted: pl.DataFrame) -> None:
        """A checkpoint's adds: `chunk` was sent, `accepted` of it taken."""
        chunk = self.split_refreshes(chunk)[0]
        accepted, refreshed = self.split_refreshes(accepted)
        self.added.add(accepted["owner"])
        self.sent_to.add(chunk["owner"])
        self.refreshed.add(refreshed["owner"])
        self.figures.refreshed = self.refreshed.count
        self.count_members(sent=self.sent_to.count, added=self.added.count)

    def split_refreshes(self, rows: pl.DataFrame) -> tuple[pl.DataFrame, pl.DataFrame]:
        """Rows (`record_hash`, `owner`, ...) as (new records, records re-sent for freshness)."""
        if self.refresh_keys.is_empty():
            return rows, rows.clear()
        keyed = rows.with_columns(hash_keys())
        fresh = keyed.join(self.refresh_keys, on=KEYS, how="semi", maintain_order="left")
        new = keyed.join(self.refresh_keys, on=KEYS, how="anti", maintain_order="left")
        return new.drop(KEYS), fresh.drop(KEYS)

    def removes_confirmed(
        self, chunk: pl.DataFrame, accepted: pl.DataFrame, failed: int, superseded: bool
    ) -> None:
        """A checkpoint's removes (`superseded`: replaced by a record of the same person, so
        nobody left and no member is counted removed)."""
        if not superseded:
            self.removed.add(accepted)
        self.metrics.profiles_removed = self.removed.count
        self.figures.removes_without_owner = self.removed.without_owner
        self.figures.removes_sent += len(chunk)
        self.figures.removes_refused += failed
        self.metrics.details["figures"] = self.figures.as_json()
