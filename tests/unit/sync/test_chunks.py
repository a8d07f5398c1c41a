"""Rows of many member batches go to the platform in whole chunks, in order."""

from __future__ import annotations

import polars as pl
from hypothesis import given
from hypothesis import strategies as st

from audience_sync.sync.runner import Waiting


@given(st.lists(st.integers(0, 30), max_size=12), st.integers(1, 10))
def test_parts_become_whole_chunks_in_order(sizes: list[int], size: int) -> None:
    waiting, chunks, start = Waiting(size), [], 0
    for n in sizes:
        chunks += waiting.add(pl.DataFrame({"i": range(start, start + n)}))
        start += n
    chunks += waiting.rest()
    assert [len(c) for c in chunks[:-1]] == [size] * (len(chunks) - 1)
    assert all(0 < len(c) <= size for c in chunks)
    assert pl.concat([pl.DataFrame({"i": []}, schema={"i": pl.Int64}), *chunks])[
        "i"
    ].to_list() == list(range(start))
    assert waiting.rest() == []
