"""`OwnerTally` counts each member once over a run's chunks, in any order."""

from __future__ import annotations

import polars as pl
from hypothesis import given, settings
from hypothesis import strategies as st

from audience_sync.sync.figures import OwnerTally, _Bits, _Members

# Members dense in their span (counted as bits) and members far apart (kept as integers), and
# chunks mixing both.
OWNERS = st.one_of(st.integers(0, 60), st.integers(0, 2**40), st.integers(2**40 - 200, 2**40))
CHUNKS = st.lists(st.lists(OWNERS, max_size=15), max_size=12)


@given(chunks=CHUNKS, ordered=st.booleans())
@settings(max_examples=400, deadline=None)
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


def test_dense_members_are_held_as_bits() -> None:
    tally = OwnerTally()
    tally.add(pl.Series("owner", range(0, 128_000, 2)))  # half the span: a bit each
    tally.add(pl.Series("owner", [5, 10**12]))  # far apart: as integers
    assert tally.parts[0].seen(pl.Series([-1, 0, 1, 127_998, 128_000])).to_list() == [
        False,
        True,
        False,
        True,
        False,
    ]
    assert tally.count == 64_002
    dense, apart = tally.parts
    assert isinstance(dense, _Bits)
    assert len(dense.bits) == 127_999
    assert isinstance(apart, _Members)
    assert apart.members.to_list() == [5, 10**12]
