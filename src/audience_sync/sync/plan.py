"""Plan a sync set-wise: what to add and remove, from current identifiers vs the snapshot.

Both sides are frames of `(key, value)`: `key` the platform's wire key (e.g. `EMAIL`,
`PHONE_SHA256`), `value` exactly what is sent. The snapshot holds only what this system added and
the platform confirmed, so a removal can never touch an identifier someone else put there; an
identifier still held by any current member is in `current`, so it is never removed. Pure Polars
joins: no Python loop over members, whatever their number.
"""

from __future__ import annotations

from dataclasses import dataclass

import polars as pl

PAIR_SCHEMA = {"key": pl.String, "value": pl.String}


@dataclass(frozen=True, slots=True)
class Plan:
    adds: pl.DataFrame  # (key, value) the platform should gain
    removes: pl.DataFrame  # (key, value) the platform should lose
    unchanged: int  # pairs already confirmed and still current

    def counts_by_key(self) -> dict[str, dict[str, int]]:
        """Per wire key: how many adds and removes (for dry runs and diagnostics)."""
        out: dict[str, dict[str, int]] = {}
        for name, frame in (("adds", self.adds), ("removes", self.removes)):
            for key, count in frame.group_by("key").len().iter_rows():
                out.setdefault(key, {"adds": 0, "removes": 0})[name] = count
        return out


def empty_pairs() -> pl.DataFrame:
    return pl.DataFrame(schema=PAIR_SCHEMA)


def plan_delta(current: pl.LazyFrame, snapshot: pl.LazyFrame) -> Plan:
    """adds = current − snapshot; removes = snapshot − current (set-wise, duplicates ignored)."""
    current = current.select("key", "value").unique()
    snapshot = snapshot.select("key", "value").unique()
    adds, removes, unchanged = pl.collect_all(
        [
            current.join(snapshot, on=["key", "value"], how="anti"),
            snapshot.join(current, on=["key", "value"], how="anti"),
            current.join(snapshot, on=["key", "value"], how="semi").select(pl.len()),
        ]
    )
    return Plan(adds, removes, int(unchanged.item()))


def plan_replace(current: pl.LazyFrame) -> Plan:
    """A native replace sends every current pair; what the platform held goes away with it."""
    adds = current.select("key", "value").unique().collect()
    return Plan(adds, empty_pairs(), 0)
