"""`prepare._span_of`: a stored state part is matched against the stretch of the members'
contents its owners span, found by binary search, and never misses one of its members."""

from __future__ import annotations

import itertools

import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from audience_sync.sync.prepare import SpilledContents, _span_of

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


@settings(max_examples=100, deadline=None)
@given(batches=st.lists(st.integers(0, 9), max_size=12), rows=st.integers(1, 20))
def test_spilled_contents_come_back_in_order_in_groups_of_whole_batches(
    tmp_path_factory: pytest.TempPathFactory, batches: list[int], rows: int
) -> None:
    """A create's contents go to a file a batch as read (`SpilledContents`) and come back
    `rows` members or more a group (the last may be short), every batch whole and in order."""
    spilled = SpilledContents(tmp_path_factory.mktemp("contents"))
    first = 0
    for size in batches:
        spilled.append(contents_of(list(range(first, first + size))))
        first += size
    groups = list(spilled.groups(rows))
    assert pl.concat([contents_of([]), *groups]).equals(contents_of(list(range(first))))
    assert all(len(group) >= rows for group in groups[:-1])
    ends = {sum(batches[: n + 1]) for n in range(len(batches))}
    assert {int(group["owner"].max()) + 1 for group in groups if len(group)} <= ends


@settings(max_examples=300, deadline=None)
@given(
    everyone=members,
    cuts=st.lists(st.integers(0, 60), max_size=6),
    stretch=st.tuples(st.integers(0, 60), st.integers(0, 60)),
    others=st.lists(st.integers(1, 400), max_size=3),
    shuffled=st.booleans(),
    marks=st.lists(st.booleans(), min_size=60, max_size=60),
)
def test_a_parts_span_of_spilled_contents_is_that_of_every_member(
    tmp_path_factory: pytest.TempPathFactory,
    everyone: list[int],
    cuts: list[int],
    stretch: tuple[int, int],
    others: list[int],
    shuffled: bool,
    marks: list[bool],
) -> None:
    """An update's contents spilled a page at a time: a stored part's stretch is read from the
    pages it crosses, says where it starts among every member, and holds every row of the
    part's owners; the unmarked members are those of every member. A part is a stretch of
    the members (as a stored part is), with a few others (members who left)."""
    order = everyone if shuffled else sorted(everyone)
    whole = contents_of(order)
    spilled = SpilledContents(tmp_path_factory.mktemp("contents"))
    edges = sorted({0, len(order), *(min(cut, len(order)) for cut in cuts)})
    for first, last in itertools.pairwise(edges):
        spilled.append(whole.slice(first, last - first))
    part = sorted(everyone)[min(stretch) : max(stretch)] + others
    owners = pl.Series("owner", part, dtype=pl.Int64)
    start, span = spilled.span(owners)
    assert span.equals(whole.slice(start, len(span)))
    mine = pl.col("owner").is_in(owners.implode())
    assert set(span.filter(mine)["owner"]) == set(whole.filter(mine)["owner"])
    marked = pl.Series(marks[: len(order)], dtype=pl.Boolean)
    assert spilled.unmarked(marked).equals(whole.filter(~marked))
