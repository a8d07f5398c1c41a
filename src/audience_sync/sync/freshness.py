"""Freshness: which held records to re-send before the platform expires them (docs/freshness.md).

A platform with a membership lifetime (Google Customer Match: the list's membership duration)
drops a member that long after its last upload. Each record must therefore be sent again less
than `lifetime` after its last confirmed upload `at`. Every record has a phase `p` ∈ [0, 1)
from its key (stable, uniform) and refresh slots on a fixed grid of period `window`:

    slot_j = (j + p) × window,   window = lifetime − margin

and a run re-sends the records whose last upload is older than their latest slot. Phases are
uniform, so each run re-sends about `interval / window` of the audience, whatever happened
before (a whole audience uploaded at once included): no run re-sends everything, and no
cohort of records comes due together. A record's next slot is at most `window` after its
upload, and the run after it at most `interval` later, so as long as syncs run at least every
`margin` no record passes its lifetime. A new record is re-sent once at its first slot, which
may be early: the price of keeping the load flat. Pure Polars over keys: no loop over members.

(Age thresholds per record, `age ≥ window × (1 − p/2)`, were tried first: the records re-sent
in one run keep coming due in the same later run, and cohorts pile up on the runs of
common multiples — up to a third of the audience in one run in the test.)
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import polars as pl

from audience_sync.domain.records import KEYS
from audience_sync.sync.keys import RecordKeys

PHASE_BITS = 20  # the low bits of `k2` that give a record its phase
TIME = pl.Datetime("us", "UTC")
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def refresh_window(lifetime: timedelta | None, margin: timedelta) -> timedelta | None:
    """The slot period: a record is re-sent at least this often; None: nothing to refresh (no
    lifetime, or a zero margin, which turns refresh off). A margin of half the lifetime or more
    is cut to half."""
    if lifetime is None or margin <= timedelta(0):
        return None
    return lifetime - min(margin, lifetime / 2)


def last_slot(now: datetime, window: timedelta) -> pl.Expr:
    """Each record's latest refresh slot at or before `now`, in microseconds since the epoch,
    from its `k2` (float: exact to a microsecond for the next few centuries)."""
    span = 1 << PHASE_BITS
    phase = (pl.col("k2") % span).cast(pl.Float64) / span
    period = window / timedelta(microseconds=1)
    at_now = (now - EPOCH) / timedelta(microseconds=1)
    return ((pl.lit(at_now) / period - phase).floor() + phase) * period


def due_for_refresh(
    times: pl.DataFrame, current: pl.DataFrame | RecordKeys, now: datetime, window: timedelta
) -> pl.DataFrame:
    """The current records (`k1`, `k2`, `owner` rows of `current`, each record once) that the
    platform holds (`times`: `k1`, `k2`, `at` of the last confirmed upload, each record once)
    and that were last uploaded before their latest slot."""
    if times.is_empty() or current.is_empty():
        return current.clear()
    uploaded = (pl.col("at") - pl.lit(EPOCH, dtype=TIME)).dt.total_microseconds()
    due = times.filter(uploaded.cast(pl.Float64) < last_slot(now, window)).select(KEYS)
    if due.is_empty():
        return current.clear()
    # The current rows of the due keys' `k1` (a scan, a piece at a time for `RecordKeys`),
    # then joined on both keys.
    near = current.filter(pl.col("k1").is_in(due["k1"].implode()))
    found = near.join(due, on=KEYS, how="semi", maintain_order="left")
    return found.unique(KEYS, keep="first", maintain_order=True)
