"""The adds of a run in chunks of one checkpoint each, cut across the spilled parts in Polars."""

from __future__ import annotations

from collections.abc import Iterator

import polars as pl

from audience_sync.sync.keys import RecordKeys
from audience_sync.sync.members import CURRENT_SCHEMA, Current
from audience_sync.sync.plan import KEYS

# Records per checkpoint: about CHUNK_BYTES of record text, from MIN_CHUNK_BATCHES to
# CHUNK_BATCHES platform batches. A checkpoint commits its chunk as one snapshot part with the
# job's counters: larger chunks, fewer commits and parts (when the snapshot was rows under a
# random key, 2.4M rows took 37.4 s in chunks of 60,000, 18.1 s in chunks of 240,000). But an
# uploaded chunk is also held as Python objects: 25 batches of Meta's wide rows peaked at 2.5 GB
# for a million members, 10 batches at 1.7 GB. A crash re-sends at most one chunk (the platforms
# take a record twice as once).
CHUNK_BYTES = 32 * 2**20
MIN_CHUNK_BATCHES = 10
CHUNK_BATCHES = 25


class Waiting:
    """Rows gathered into whole chunks of `size` (the last one may be short)."""

    def __init__(self, size: int) -> None:
        self.size = size
        self.frames: list[pl.DataFrame] = []
        self.rows = 0

    def add(self, frame: pl.DataFrame) -> list[pl.DataFrame]:
        """The whole chunks that `frame` completes; the remainder keeps waiting."""
        self.frames.append(frame)
        self.rows += len(frame)
        if self.rows < self.size:
            return []
        whole = pl.concat(self.frames)
        cut = len(whole) - len(whole) % self.size
        self.frames, self.rows = [whole.slice(cut)], len(whole) - cut
        return [whole.slice(start, self.size) for start in range(0, cut, self.size)]

    def rest(self) -> list[pl.DataFrame]:
        """The last, short chunk (if any rows wait)."""
        chunks = [pl.concat(self.frames)] if self.rows else []
        self.frames, self.rows = [], 0
        return chunks


def chunk_size(batch_size: int, sample: pl.DataFrame) -> int:
    """Records per checkpoint: about `CHUNK_BYTES` of record text (judged on a sample of the
    records), from `MIN_CHUNK_BATCHES` to `CHUNK_BATCHES` platform batches of `batch_size`."""
    mean = sample["record"].str.len_bytes().mean()
    wanted = CHUNK_BYTES // max(1, int(mean)) if isinstance(mean, int | float) else 0
    return min(max(wanted, batch_size * MIN_CHUNK_BATCHES), batch_size * CHUNK_BATCHES)


def add_chunks(
    adds: pl.DataFrame | RecordKeys, current: Current, batch_size: int
) -> Iterator[pl.DataFrame]:
    """The adds' rows, read from the spilled parts, in chunks of one checkpoint each. Whole
    chunks across parts: a checkpoint per part would commit small ones."""
    waiting = None
    for rows in _add_rows(adds, current):
        if rows.is_empty():
            continue
        waiting = waiting or Waiting(chunk_size(batch_size, rows))
        yield from waiting.add(rows.select(*CURRENT_SCHEMA))
    if waiting is not None:
        yield from waiting.rest()


def _add_rows(adds: pl.DataFrame | RecordKeys, current: Current) -> Iterator[pl.DataFrame]:
    """The adds' rows of each spilled part."""
    if isinstance(adds, pl.DataFrame) and len(adds) == len(current.keys):
        # Every current record an add, no two sharing a key: every row of every part is sent.
        yield from current.records()
        return
    if isinstance(adds, RecordKeys) and adds.files() == current.parts:
        # Every current record an add (a create): every row of every part is sent, as
        # `adds_of` would find (~2 s of joins for 2.4M records), less the rows left out (the
        # later rows of a shared key, `update.first_of_each`). No frame of every add is made.
        for number, part in enumerate(current.records()):
            mask = adds.left_in(number)
            yield part if mask is None else part.filter(mask)
        return
    if isinstance(adds, RecordKeys):
        adds = adds.frame()
    for part in current.records():
        yield adds_of(part, adds)


def adds_of(part: pl.DataFrame, adds: pl.DataFrame) -> pl.DataFrame:
    """The rows of a spilled part that are adds, each record once."""
    # A part holds one member batch: only the adds of its owners' span are joined
    # (0.14 s → 0.006 s a part against a million adds).
    span = pl.col("owner").is_between(part["owner"].min(), part["owner"].max())
    mine = adds.filter(span)
    rows = part.join(mine, on=[*KEYS, "owner"], how="semi", maintain_order="left")
    # By the 128-bit key (two integers), not the 64-character hash it is cut from.
    return rows.unique(KEYS, keep="first", maintain_order=True)
