"""Rows of many member batches go to the platform in whole chunks, in order."""

from __future__ import annotations

import polars as pl
from hypothesis import given
from hypothesis import strategies as st

from audience_sync.sync.chunks import (
    CHUNK_BATCHES,
    CHUNK_BYTES,
    MIN_CHUNK_BATCHES,
    Waiting,
    chunk_size,
)


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


def test_a_checkpoint_holds_about_chunk_bytes_of_records_within_its_bounds() -> None:
    def size(record_bytes: int) -> int:
        sample = pl.DataFrame({"record": ["x" * record_bytes] * 10})
        return chunk_size(1_000, sample)

    assert size(10) == 1_000 * CHUNK_BATCHES  # narrow records: the most batches
    assert size(10**6) == 1_000 * MIN_CHUNK_BATCHES  # wide ones: the fewest
    middle = CHUNK_BYTES // (1_000 * 15)
    assert size(middle) == CHUNK_BYTES // middle  # in between: by the bytes
