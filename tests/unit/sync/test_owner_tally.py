"""`OwnerTally` counts each member once over a run's chunks, in any order."""

from __future__ import annotations

import polars as pl
from hypothesis import given, settings
from hypothesis import strategies as st

from audience_sync.sync.figures import OwnerTally

CHUNKS = st.lists(st.lists(st.integers(0, 60), max_size=15), max_size=12)


@given(chunks=CHUNKS, ordered=st.booleans())
@settings(max_examples=200, deadline=None)
def test_each_member_is_counted_once(chunks: list[list[int]], ordered: bool) -> None:
    # In member order (as the spill's chunks come, a member straddling two of them) or not
    # (a removal's owners): the same count as a set's.
    if ordered:
        flat = sorted(owner for chunk in chunks for owner in chunk)
        sizes = [len(chunk) for chunk in chunks]
        starts = [sum(sizes[:i]) for i in range(len(sizes))]
        chunks = [flat[start : start + size] for start, size in zip(starts, sizes, strict=True)]
    tally, seen = OwnerTally(), set[int]()
    for chunk in chunks:
        new = set(chunk) - seen
        assert tally.add(pl.Series("owner", chunk, dtype=pl.Int64)) == len(new)
        seen |= new
    assert tally.count == len(seen)


def test_a_member_straddling_two_chunks_in_order_counts_once() -> None:
    tally = OwnerTally()
    added = [
        tally.add(pl.Series("owner", range(max(start - 1, 0), start + 100)))
        for start in range(0, 1_000, 100)  # each chunk repeats the last member of the one before
    ]
    assert added == [100] * 10
    assert tally.count == 1_000
