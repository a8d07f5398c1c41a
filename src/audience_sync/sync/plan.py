"""Plan a sync set-wise: which records to add and which to remove, current vs the snapshot.

A record is what one upload row carries (see `store.tables.SnapshotRecord`), identified by
`record_hash`. The snapshot holds only records this system sent and the platform confirmed, so a
removal never touches anything someone else put there; a record still produced by any current
member is current, so it is never removed. Pure Polars joins: no Python loop over members.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass

import polars as pl

ON = "record_hash"


def encode_record(pairs: Sequence[tuple[str, str]]) -> tuple[str, str]:
    """A record's canonical text (sorted `[key, value]` pairs as JSON) and its SHA-256."""
    text = json.dumps(sorted(pairs), separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(text.encode()).hexdigest(), text


def decode_record(text: str) -> list[tuple[str, str]]:
    return [(key, value) for key, value in json.loads(text)]


@dataclass(frozen=True, slots=True)
class Plan:
    adds: pl.DataFrame  # current rows whose record the platform does not hold yet
    removes: pl.DataFrame  # snapshot rows no current member produces any more
    unchanged: int  # distinct records already confirmed and still current


def plan_delta(current: pl.LazyFrame, snapshot: pl.LazyFrame) -> Plan:
    """adds = current − snapshot; removes = snapshot − current, by `record_hash`."""
    held = snapshot.select(ON).unique()
    now = current.select(ON).unique()
    adds, removes, unchanged = pl.collect_all(
        [
            current.join(held, on=ON, how="anti"),
            snapshot.unique(ON).join(now, on=ON, how="anti"),
            now.join(held, on=ON, how="semi").select(pl.len()),
        ]
    )
    return Plan(adds, removes, int(unchanged.item()))
