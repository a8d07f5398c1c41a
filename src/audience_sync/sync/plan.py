"""Plan a sync set-wise: which records to add and which to remove, current vs the snapshot.

A record is what one upload row carries (see `store.tables.SnapshotPart`), identified by
`record_hash`. The snapshot holds only records this system sent and the platform confirmed, so a
removal never touches anything someone else put there; a record still produced by any current
member is current, so it is never removed. Pure Polars joins: no Python loop over members.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import polars as pl
import polars_hash  # noqa: F401  (registers the `chash` namespace on expressions)

# A record's text, hash and keys are the domain's (the store keeps them too); re-exported here.
from audience_sync.domain.records import (
    KEYS,
    ON,
    decode_record,
    encode_record,
    hash_keys,
    owned_text,
    record_hashes,
    record_text,
)
from audience_sync.sync.keys import RecordKeys, distinct_count, repeated

__all__ = [
    "KEYS",
    "ON",
    "Plan",
    "decode_record",
    "distinct_count",
    "encode_record",
    "hash_keys",
    "plan_delta",
    "plan_streamed",
    "record_hashes",
    "record_text",
    "repeated",
]


@dataclass(frozen=True, slots=True)
class Plan:
    # Current rows whose record the platform does not hold yet: every current record of a
    # create, left where it is (`RecordKeys`), else a frame.
    adds: pl.DataFrame | RecordKeys
    removes: pl.DataFrame  # snapshot rows no current member produces any more
    unchanged: int  # distinct records already confirmed and still current
    held: int = 0  # distinct records in the snapshot


def plan_delta(current: pl.LazyFrame, snapshot: pl.LazyFrame) -> Plan:
    """adds = current − snapshot; removes = snapshot − current, by `record_hash`."""
    held = snapshot.select(ON).unique()
    now = current.select(ON).unique()
    adds, removes, unchanged, count = pl.collect_all(
        [
            current.join(held, on=ON, how="anti"),
            snapshot.unique(ON).join(now, on=ON, how="anti"),
            now.join(held, on=ON, how="semi").select(pl.len()),
            held.select(pl.len()),
        ]
    )
    return Plan(adds, removes, int(unchanged.item()), int(count.item()))


def plan_streamed(current: pl.DataFrame | RecordKeys, snapshot: Iterable[pl.DataFrame]) -> Plan:
    """`plan_delta` for large audiences. `current` has `k1`, `k2` (see `hash_keys`) and any
    other columns (the runner's `owner`); `snapshot` yields frames with a `record_hash` column,
    and its `k1`, `k2` when known (a hash may come in more than one frame: the snapshot's parts
    may each hold it).

    `adds` are current rows (keys and the rest), `removes` snapshot rows (`record_hash`). Each
    snapshot batch is looked up in the sorted current keys as it arrives (its removed hashes
    kept), and only its keys are held (16 bytes a record, not ~80 for the hex). Membership is a
    binary search in sorted keys, not a hash join, whose tables would triple the memory at ten
    million records."""
    now: SortedKeys | None = None  # sorted at the first snapshot batch: none for a create
    held_parts: list[pl.DataFrame] = [pl.DataFrame(schema=dict.fromkeys(KEYS, pl.UInt64))]
    removed_parts: list[pl.DataFrame] = [pl.DataFrame(schema={ON: pl.String})]
    for batch in snapshot:
        now = now or SortedKeys(_whole(current))
        # The snapshot's parts store the keys; a batch of hashes alone gets them computed.
        known = set(KEYS) <= set(batch.columns)
        keyed = batch.select(ON, *KEYS) if known else batch.select(ON, *hash_keys())
        gone = keyed.filter(~now.contains(keyed)).select(pl.col(ON).cast(pl.String))
        # Copied out: a filtered string column shares its batch's buffers, which would keep
        # every hash read alive (640 MB at ten million records).
        removed_parts.append(owned_text(gone))
        held_parts.append(keyed.select(KEYS))
    del now
    held = SortedKeys(pl.concat(held_parts))
    del held_parts
    removes = pl.concat(removed_parts).unique(maintain_order=True)
    # Nothing held (a create): every current row is an add, and no copy of them is made.
    adds = _not_held(current, held) if len(held.keys) else current
    count = held.distinct()
    return Plan(adds, removes, count - len(removes), count)


def _whole(current: pl.DataFrame | RecordKeys) -> pl.DataFrame:
    return current.frame() if isinstance(current, RecordKeys) else current


def _not_held(current: pl.DataFrame | RecordKeys, held: SortedKeys) -> pl.DataFrame:
    """The rows of `current` whose key `held` does not hold (a piece at a time)."""
    if isinstance(current, pl.DataFrame):
        return current.filter(~held.contains(current))
    return pl.concat([current.clear(), *(f.filter(~held.contains(f)) for f in current.frames())])


class SortedKeys:
    """A set of (`k1`, `k2`) keys, sorted once, asked by binary search on `k1`."""

    def __init__(self, frame: pl.DataFrame) -> None:
        # Sorted on `k1` alone (a one-column sort needs no row encoding: half the memory);
        # rows with equal `k1` are adjacent, which is all the search and the check below need.
        self.keys = frame.select(KEYS).sort("k1")
        k1, k2 = self.keys["k1"], self.keys["k2"]
        n = len(k1)
        # Two records sharing their first 64 bits (odds ~n²/2⁶⁵): a search on `k1` alone could
        # miss, so such a set answers by a hash join, which compares both keys.
        self.exact = n > 1 and bool(
            ((k1.slice(1) == k1.slice(0, n - 1)) & (k2.slice(1) != k2.slice(0, n - 1))).any()
        )

    def distinct(self) -> int:
        """How many different keys the set holds. Sorted on `k1`, equal keys are adjacent
        unless two keys share `k1` (`exact`): then a hash count."""
        if self.exact:
            return self.keys.n_unique()
        k1, k2 = self.keys["k1"], self.keys["k2"]
        n = len(k1)
        if n < 2:
            return n
        same = (k1.slice(1) == k1.slice(0, n - 1)) & (k2.slice(1) == k2.slice(0, n - 1))
        return n - int(same.sum())

    def contains(self, probe: pl.DataFrame) -> pl.Series:
        """Whether each row's (`k1`, `k2`) is in the set."""
        keys = self.keys
        if keys.is_empty():
            # Not a list of Python bools: 80 MB at ten million probes (a create's plan).
            return pl.repeat(False, len(probe), dtype=pl.Boolean, eager=True).alias("found")
        if self.exact:
            marked = keys.unique().with_columns(_in=pl.lit(True))
            joined = probe.select(KEYS).join(marked, on=KEYS, how="left", maintain_order="left")
            return joined["_in"].fill_null(False).alias("found")
        k1, k2 = keys["k1"], keys["k2"]
        at = k1.search_sorted(probe["k1"], side="left").clip(0, len(keys) - 1)
        return ((k1.gather(at) == probe["k1"]) & (k2.gather(at) == probe["k2"])).alias("found")


@dataclass(frozen=True, slots=True)
class Delta:
    """What a converged member state tells about the snapshot without reading it."""

    # `k1`, `k2`: every record of the state, which the snapshot holds exactly (where they are)
    held: pl.DataFrame | RecordKeys
    gone: pl.DataFrame  # `k1`, `k2`: records of members who changed or left (held, maybe shared)
    fresh: pl.DataFrame  # `k1`, `k2`, `owner`: records of the members prepared in this run


@dataclass(frozen=True, slots=True)
class KeyPlan:
    """`Plan`, with removals as keys (`k1`, `k2`) to be looked up in the snapshot."""

    adds: pl.DataFrame
    removes: pl.DataFrame
    unchanged: int
    held: int


def plan_from_delta(delta: Delta, current: pl.DataFrame | RecordKeys) -> KeyPlan:
    """`plan_streamed`'s answer when the snapshot holds exactly `delta.held`: the other members'
    records are unchanged by construction, so adds are the fresh records not held, and removes
    the gone records no current member still produces. Scans of the held keys for the few
    fresh and gone ones, instead of reading millions of hashes."""
    adds = _absent(delta.fresh, delta.held)
    removes = _absent(delta.gone.unique(), current)
    # Distinct records by `k1` alone (a 64-bit key: two records sharing it are ~1 in 10⁷ at
    # millions): a figure for the job and the guard rail, a tenth of a two-column count's cost.
    held = _distinct(delta.held, "k1")
    return KeyPlan(adds, removes, held - len(removes), held)


def _distinct(keys: pl.DataFrame | RecordKeys, name: str) -> int:
    if isinstance(keys, RecordKeys):
        return keys.distinct(name)
    return distinct_count(keys[name])


def _absent(probe: pl.DataFrame, keys: pl.DataFrame | RecordKeys) -> pl.DataFrame:
    """The rows of `probe` (a few thousand) whose (`k1`, `k2`) is not in `keys` (millions).
    The millions are scanned against a set of the few `k1` (a bit a key, and the matches),
    then the probe is joined exactly against those matches. The other way round, a set of
    the millions, took 310 MB at once and 1.4 s at ten million keys (80,000 probed), this way
    16 MB and 0.08 s."""
    near = keys.filter(pl.col("k1").is_in(probe["k1"].implode())).select(KEYS).unique()
    if near.is_empty():
        return probe
    return probe.join(near, on=KEYS, how="anti", maintain_order="left")
