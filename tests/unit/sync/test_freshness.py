"""Which held records a run re-sends before their platform expires them (sync/freshness.py),
simulated over several lifetimes on a large audience, and the registry's lifetimes."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

import polars as pl
import pytest

from audience_sync.connectors.registry import platform_spec
from audience_sync.sync.freshness import TIME, due_for_refresh, refresh_window

START = datetime(2026, 1, 1, tzinfo=UTC)
LIFETIME = timedelta(days=540)
MARGIN = timedelta(days=30)


def audience(n: int, seed: int = 7) -> pl.DataFrame:
    """`n` records with random keys, one owner each (`k1`, `k2`, `owner`)."""
    draw = random.Random(seed)
    return pl.DataFrame(
        {
            "k1": [draw.getrandbits(64) for _ in range(n)],
            "k2": [draw.getrandbits(64) for _ in range(n)],
            "owner": list(range(n)),
        },
        schema={"k1": pl.UInt64, "k2": pl.UInt64, "owner": pl.Int64},
    )


def simulate(
    current: pl.DataFrame, interval: timedelta, runs: int, window: timedelta | None
) -> tuple[list[int], timedelta]:
    """Everyone uploaded at START, then a sync every `interval`: how many records each run
    re-sends, and the oldest any record got before it was re-sent."""
    times = current.select("k1", "k2", at=pl.lit(START, dtype=TIME))
    sent, oldest = [], timedelta(0)
    for run in range(1, runs + 1):
        now = START + run * interval
        age = now - times["at"].min()
        due = current.clear() if window is None else due_for_refresh(times, current, now, window)
        oldest = max(oldest, age if len(due) == 0 else now - times["at"].min())
        sent.append(len(due))
        fresh = due.select("k1", "k2", at=pl.lit(now, dtype=TIME))
        times = pl.concat([times.join(fresh, on=["k1", "k2"], how="anti"), fresh])
    return sent, oldest


def test_daily_syncs_re_send_about_a_windowth_of_the_audience_and_never_let_one_expire() -> None:
    current = audience(20_000)
    window = refresh_window(LIFETIME, MARGIN)
    assert window == timedelta(days=510)
    sent, oldest = simulate(current, timedelta(days=1), 3 * 540, window)
    assert oldest < LIFETIME  # no record ever reached its lifetime
    share = len(current) / 510  # a run's share: interval / window of the audience
    # From the first run on, no burst after the create: a run's count is a draw around its
    # share (sd ~6 here, so the largest of 1,620 runs is ~1.5 × share; 2 × allows for it).
    assert max(sent) < 2 * share
    assert sum(sent) / len(sent) == pytest.approx(share, rel=0.05)
    assert sum(sent[-510:]) == pytest.approx(len(current), rel=0.02)  # each once a window


def test_without_refresh_the_records_pass_their_lifetime() -> None:
    """The simulation can fail: no window, nothing re-sent, every record ages past it."""
    sent, oldest = simulate(audience(1_000), timedelta(days=7), 100, None)
    assert sum(sent) == 0
    assert oldest > LIFETIME


def test_a_weekly_sync_within_the_margin_still_refreshes_in_time() -> None:
    window = refresh_window(LIFETIME, MARGIN)
    sent, oldest = simulate(audience(5_000), timedelta(days=7), 200, window)
    assert oldest <= LIFETIME - MARGIN + timedelta(days=7) < LIFETIME
    assert max(sent) < 2 * 5_000 * 7 / 510


def test_records_the_platform_does_not_hold_are_never_refreshed() -> None:
    current = audience(100)
    long_ago = START - 2 * LIFETIME
    held = current.head(40).select("k1", "k2", at=pl.lit(long_ago, dtype=TIME))
    due = due_for_refresh(held, current, START, timedelta(days=510))
    assert due["owner"].to_list() == list(range(40))  # all overdue, only the held ones


@pytest.mark.parametrize(
    ("lifetime", "margin", "window"),
    [
        (timedelta(days=540), timedelta(days=30), timedelta(days=510)),
        (timedelta(days=40), timedelta(days=30), timedelta(days=20)),  # margin cut to half
        (timedelta(days=540), timedelta(0), None),  # a zero margin turns refresh off
        (None, timedelta(days=30), None),  # members that never expire
    ],
)
def test_the_refresh_window(
    lifetime: timedelta | None, margin: timedelta, window: timedelta | None
) -> None:
    assert refresh_window(lifetime, margin) == window


def test_each_platform_lifetime_comes_from_its_registry_entry() -> None:
    google, snapchat = platform_spec("google"), platform_spec("snapchat")
    assert google.membership_lifetime({}) == timedelta(days=540)
    assert google.membership_lifetime({"membership_days": 90}) == timedelta(days=90)
    assert snapchat.membership_lifetime({}) is None  # 9999: lifetime
    assert snapchat.membership_lifetime({"retention_in_days": 180}) == timedelta(days=180)
    assert platform_spec("meta").membership_lifetime({}) is None
    assert platform_spec("tiktok").membership_lifetime({}) is None
    for spec in (google, snapchat):
        assert spec.membership is not None
        assert spec.membership.source.startswith("https://")


def test_only_meta_documents_deleting_an_unused_audience() -> None:
    created = datetime(2025, 3, 1, tzinfo=UTC)
    assert platform_spec("meta").inactivity_deadline(created) == created + timedelta(days=730)
    for name in ("google", "tiktok", "snapchat"):
        assert platform_spec(name).inactivity_deadline(created) is None
