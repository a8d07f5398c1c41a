"""`hash_many`'s pipeline: a long batch cut into pieces that Polars works on in the background
while the caller's thread turns the finished ones into Python strings (and, with the compiled
`_digest`, OpenSSL hashes them on a thread of its own)."""

from __future__ import annotations

from collections import deque
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from types import ModuleType
from typing import TYPE_CHECKING

import polars as pl

from audience_sync.identifiers.fields import Field
from audience_sync.identifiers.platforms import PlatformRules
from audience_sync.identifiers.vectorized import Values, background, collect, to_series

if TYPE_CHECKING:
    from polars.lazyframe.in_process import InProcessQuery

Piece = tuple[int, pl.Series, list[int], pl.DataFrame]  # offset, column, odd rows, frame
ListedPiece = tuple[int, pl.Series, list[int], pl.DataFrame, list[str | None]]  # + `sent`


def as_lists(ready: Iterator[Piece], digest: ModuleType | None) -> Iterator[ListedPiece]:
    """Each piece with its `sent` column as a list. With the compiled `digest` (`sent` left
    unhashed: `hash_later`), OpenSSL hashes a piece's `sent` on a thread of its own, without the
    GIL, while this thread makes the strings of the piece before (see `_digest.c`); and the
    pre-hashed digests, left out of `sent`, are put back in their rows."""
    if digest is None:
        for piece in ready:
            yield *piece, piece[3].get_column("sent").to_list()
        return

    def finish(piece: Piece, digests: Future[bytes]) -> ListedPiece:
        sent: list[str | None] = digest.hex_list(digests.result())
        frame = piece[3]
        if "prehashed" in frame.columns:
            given = frame.get_column("prehashed")
            rows = given.is_not_null().arg_true()
            for i, value in zip(rows.to_list(), given.gather(rows).to_list(), strict=True):
                sent[i] = value
        return *piece, sent

    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="sha256") as pool:
        queued: deque[tuple[Piece, Future[bytes]]] = deque()
        for piece in ready:
            queued.append((piece, pool.submit(digest.sha256_digests, piece[3].get_column("sent"))))
            if len(queued) > 1:
                yield finish(*queued.popleft())
        while queued:
            yield finish(*queued.popleft())


def pieces(
    values: Values, field: Field, platform: PlatformRules, hash_later: bool, piece: int
) -> Iterator[Piece]:
    """`collect` of consecutive slices of `piece` values (offset, column, odd rows, frame), in
    order. The slices are all sent off at once as background queries, run by Polars' threads
    while the caller uses the ones before. Two Python worker threads did it ~10% slower on
    Google's emails (each needs the GIL between slices, which the caller holds while it makes
    strings); so did slices of 125,000 (measured on 1M emails, 2 cores)."""
    if not isinstance(values, list | tuple | pl.Series):
        values = list(values)  # a Sequence need not slice
    size = len(values)
    if size <= piece:
        series, odd = to_series(values)
        yield 0, series, odd, collect(series, field, platform, False, hash_later)
        return
    pending: list[tuple[int, pl.Series, list[int], InProcessQuery]] = []
    try:
        # The first piece goes off at once; the others are slices of one column of all the
        # values (slicing a list of many values costs about as much as a column of them).
        series, odd = to_series(values[:piece])
        pending.append((0, series, odd, background(series, field, platform, hash_later)))
        whole, odd = to_series(values)
        for start in range(piece, size, piece):
            series = whole.slice(start, piece)
            own = [i - start for i in odd if start <= i < start + piece]
            pending.append((start, series, own, background(series, field, platform, hash_later)))
        for start, series, odd, query in pending:
            yield start, series, odd, query.fetch_blocking()
    finally:
        for *_, query in pending:
            query.cancel()
