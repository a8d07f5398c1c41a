"""`update.first_of_each`: each new record once, by its first owner, without a table of every
key (a create has millions of adds)."""

from __future__ import annotations

import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from audience_sync.sync import keys
from audience_sync.sync.plan import KEYS
from audience_sync.sync.update import first_of_each

SCHEMA = {"k1": pl.UInt64, "k2": pl.UInt64, "owner": pl.Int64}


@settings(deadline=None, max_examples=200)
@given(st.lists(st.tuples(st.integers(0, 6), st.integers(0, 3), st.integers(0, 50)), max_size=60))
def test_it_is_unique_keeping_the_first_in_order(rows: list[tuple[int, int, int]]) -> None:
    adds = pl.DataFrame(rows, schema=SCHEMA, orient="row")
    expected = adds.unique(KEYS, keep="first", maintain_order=True)
    assert first_of_each(adds).to_dicts() == expected.to_dicts()


def test_with_no_key_shared_the_adds_are_returned_as_they_are() -> None:
    adds = pl.DataFrame({"k1": [3, 1, 2], "k2": [1, 1, 1], "owner": [1, 2, 3]}, schema=SCHEMA)
    assert first_of_each(adds) is adds


@settings(deadline=None, max_examples=200)
@given(
    values=st.lists(st.integers(-(2**40), 2**40) | st.integers(0, 20), max_size=80),
    stretch=st.integers(1, 30),
)
def test_counts_and_repeats_a_piece_at_a_time_are_those_of_the_whole(
    values: list[int], stretch: int
) -> None:
    """`keys.distinct_count` and `keys.repeated` split a column by remainder into pieces, each
    filtered a stretch at a time: the same answers as the whole column's, negatives too."""
    series = pl.Series(values, dtype=pl.Int64)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(keys, "STRETCH", stretch)
        counted, repeats = keys.distinct_count(series), keys.repeated(series)
    assert counted == series.n_unique()
    twice = {value for value in values if values.count(value) > 1}
    assert sorted(repeats.to_list()) == sorted(twice)
