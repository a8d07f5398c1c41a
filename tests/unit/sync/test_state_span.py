"""`prepare._span_of`: a stored state part is matched against the stretch of the members'
contents its owners span, found by binary search, and never misses one of its members."""

from __future__ import annotations

import polars as pl
from hypothesis import given, settings
from hypothesis import strategies as st

from audience_sync.sync.prepare import _span_of

members = st.lists(st.integers(1, 400), unique=True, max_size=60)


def contents_of(owners: list[int]) -> pl.DataFrame:
    return pl.DataFrame(
        {"owner": owners, "content": [o * 7 for o in owners]},
        schema={"owner": pl.Int64, "content": pl.UInt64},
    )


@settings(max_examples=300, deadline=None)
@given(everyone=members, part=st.lists(st.integers(1, 400), max_size=30), shuffled=st.booleans())
def test_a_parts_span_holds_every_content_row_of_its_owners(
    everyone: list[int], part: list[int], shuffled: bool
) -> None:
    order = sorted(everyone) if not shuffled else everyone
    contents = contents_of(order)
    owners = pl.Series("owner", part, dtype=pl.Int64)
    ordered = contents["owner"].is_sorted()
    start, span = _span_of(contents, owners, ordered)
    # The span is where it says it is in the contents...
    assert span.equals(contents.slice(start, len(span)))
    # ...and holds every row of the part's owners.
    wanted = contents.filter(pl.col("owner").is_in(owners.implode()))
    assert set(span.filter(pl.col("owner").is_in(owners.implode()))["owner"]) == set(
        wanted["owner"]
    )
    if ordered and part:
        # Sorted contents: nothing outside the owners' range.
        assert span["owner"].is_between(min(part), max(part)).all()


def test_unsorted_contents_are_matched_whole() -> None:
    contents = contents_of([5, 1, 3])
    start, span = _span_of(contents, pl.Series([1], dtype=pl.Int64), False)
    assert (start, span.equals(contents)) == (0, True)
