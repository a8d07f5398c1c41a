"""Freshness: which held records to re-send before the platform expires them (docs/freshness.md).

A platform with a membership lifetime (Google Customer Match: the list's membership duration)
drops a member that long after its last upload. A record confirmed at `at` must be sent again
before `at + lifetime`; the normal sync re-sends it once its age passes its own threshold:

    threshold = window × (1 − SPREAD × phase),   window = lifetime − margin

where `phase` ∈ [0, 1) comes from the record's key (stable, uniform). A whole audience uploaded
at once thus comes due over `window × SPREAD`, not in one run: each run re-sends about
`interval / (window × SPREAD)` of it at most, ~1.4 × interval / window in steady state. Every
threshold is at most `window`, so a member is re-sent before its lifetime as long as syncs run
at least every `margin`. Pure Polars over keys: no loop over members.
"""

from __future__ import annotations

from datetime import datetime, timedelta

import polars as pl

from audience_sync.domain.records import KEYS

SPREAD = 0.5  # thresholds spread over the last half of the window
PHASE_BITS = 20  # the low bits of `k2` that give a record its phase
TIME = pl.Datetime("us", "UTC")


def refresh_window(lifetime: timedelta | None, margin: timedelta) -> timedelta | None:
    """The age by which every record must have been re-sent; None: nothing to refresh (no
    lifetime, or a zero margin, which turns refresh off). A margin of half the lifetime or more
    is cut to half: a record is never re-sent before half its lifetime."""
    if lifetime is None or margin <= timedelta(0):
        return None
    return lifetime - min(margin, lifetime / 2)


def earliest_threshold(window: timedelta) -> timedelta:
    """The smallest threshold any record has: nothing younger is ever due."""
    return window * (1 - SPREAD)


def thresholds(window: timedelta) -> pl.Expr:
    """Each record's threshold age in microseconds, from its `k2`."""
    span = 1 << PHASE_BITS
    phase = (pl.col("k2") % span).cast(pl.Float64) / span
    whole = window / timedelta(microseconds=1)
    return (whole * (1 - SPREAD * phase)).cast(pl.Int64)


def due_for_refresh(
    times: pl.DataFrame, current: pl.DataFrame, now: datetime, window: timedelta
) -> pl.DataFrame:
    """The current records (`k1`, `k2`, `owner` rows of `current`, each record once) that the
    platform holds (`times`: `k1`, `k2`, `at` of the last confirmed upload) and whose age passed
    their threshold."""
    if times.is_empty() or current.is_empty():
        return current.clear()
    age = (pl.lit(now, dtype=TIME) - pl.col("at")).dt.total_microseconds()
    due = times.filter(age >= thresholds(window)).select(KEYS)
    if due.is_empty():
        return current.clear()
    found = current.join(due, on=KEYS, how="semi", maintain_order="left")
    return found.unique(KEYS, keep="first", maintain_order=True)
