"""A run's record keys (`k1`, `k2`, `owner`), left where they were written and read a piece at
a time.

Every current record's keys are 24 bytes a record: 260 MB at ten million members, which, held
through a run, were most of what a 10M sync's peak had over a 1M one's. They are on disk
already — in the records' spilled parts (`members.current_records`) and in the member state's
kept parts (`prepare.Preparer._kept`) — so a run keeps only where they are (`RecordKeys`), and
each use reads them back a piece at a time: a scan for a few keys or owners, a count, the
repeated keys of a create. Frames in memory can be pieces too (an update's few changed members).
"""

from __future__ import annotations

import dataclasses
import itertools
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, TypeVar

import polars as pl

KEY_SCHEMA = {"k1": pl.UInt64, "k2": pl.UInt64, "owner": pl.Int64}
NO_KEYS = pl.DataFrame(schema=KEY_SCHEMA)

# Columns of millions of integers are counted or searched for repeats a piece at a time
# (`distinct_count`, `repeated`): equal values share their remainder by `PIECES`, so each piece
# is done on its own. At once, the hash table of a count (or the sorted copy) of ten million
# keys took ~86 MB beside the run's index, at its peak. `STRETCH`: values filtered at a time.
PIECES = 8
STRETCH = 1_000_000


def distinct_count(values: pl.Series) -> int:
    """`values.n_unique()` of integers, a piece at a time (`PIECES`)."""
    if len(values) <= STRETCH:
        return values.n_unique()
    return sum(_piece(values, piece).n_unique() for piece in range(PIECES))


def repeated(values: pl.Series) -> pl.Series:
    """The integers that `values` holds more than once (each once), a piece at a time."""
    if len(values) <= STRETCH:
        return _repeats(values)
    return pl.concat([_repeats(_piece(values, piece)) for piece in range(PIECES)])


def _repeats(values: pl.Series) -> pl.Series:
    ordered = values.sort()
    return ordered.filter(ordered == ordered.shift(1)).unique()


def _piece(values: pl.Series, piece: int) -> pl.Series:
    """The values whose remainder by `PIECES` is `piece`, filtered a `STRETCH` at a time."""
    stretches = (values.slice(start, STRETCH) for start in range(0, len(values), STRETCH))
    return pl.concat([part.filter(part % PIECES == piece) for part in stretches])


class Stretch(Protocol):
    """A run of rows written or read in owner order: a piece of keys, a page of contents."""

    @property
    def rows(self) -> int: ...
    @property
    def low(self) -> int: ...  # its lowest and highest owner (0, -1 when empty)
    @property
    def high(self) -> int: ...
    @property
    def ordered(self) -> bool: ...  # its owners in order


S = TypeVar("S", bound=Stretch)


def in_owner_order(stretches: Sequence[Stretch]) -> bool:
    """Every owner in order, stretch after stretch (empty ones aside)."""
    filled = [stretch for stretch in stretches if stretch.rows]
    in_order = all(a.high < b.low for a, b in itertools.pairwise(filled))
    return in_order and all(stretch.ordered for stretch in filled)


def crossing(stretches: Sequence[S], low: int, high: int) -> list[S]:
    """The stretches whose owners' span meets `low`..`high`."""
    return [stretch for stretch in stretches if stretch.low <= high and low <= stretch.high]


@dataclass(frozen=True, slots=True)
class _Piece:
    """Keyed rows in a file (an Arrow IPC file with `k1`, `k2`, `owner` columns among others;
    rows with a null `k1`, a member with no record, are not keys) or in memory."""

    source: Path | pl.DataFrame
    start: int  # its first key's place among every key
    rows: int  # its keys
    low: int  # its lowest and highest owner (0, -1 when empty)
    high: int
    ordered: bool  # its owners in order
    keyless: bool  # it holds rows with no key, skipped when read

    def read(self, columns: list[str]) -> pl.DataFrame:
        if isinstance(self.source, pl.DataFrame):
            frame = self.source
        else:
            wanted = [*columns, "k1"] if self.keyless and "k1" not in columns else columns
            frame = pl.read_ipc(self.source, columns=wanted)
        if self.keyless:
            frame = frame.filter(pl.col("k1").is_not_null())
        return frame.select(columns)


class RecordKeys:
    """Record keys (`k1`, `k2`, `owner`) in pieces, in the order added; `without` rows (their
    places among every key) are left out, as `first_of_each` leaves a shared key's later rows."""

    def __init__(self, pieces: Iterable[_Piece] = (), without: pl.Series | None = None) -> None:
        self.pieces = list(pieces)
        none = pl.Series("row", [], pl.UInt64)
        self.without = (without if without is not None else none).cast(pl.UInt64).unique().sort()

    @classmethod
    def of(cls, frame: pl.DataFrame) -> RecordKeys:
        """One frame's keys, in memory."""
        keys = cls()
        keys.add(frame, frame)
        return keys

    def add(self, source: Path | pl.DataFrame, frame: pl.DataFrame) -> None:
        """The keys of `frame`, which is `source` or what was just written to it."""
        keyed = frame.filter(pl.col("k1").is_not_null())
        low, high = owner_span(keyed["owner"]) if len(keyed) else (0, -1)
        keyless = len(keyed) < len(frame)
        if isinstance(source, pl.DataFrame):
            source, keyless = keyed.select(*KEY_SCHEMA), False
        ordered = keyed["owner"].is_sorted()
        self.pieces.append(_Piece(source, self._end, len(keyed), low, high, ordered, keyless))

    @property
    def _end(self) -> int:
        """Where the next piece starts: how many keys the pieces hold."""
        return self.pieces[-1].start + self.pieces[-1].rows if self.pieces else 0

    def __add__(self, other: RecordKeys) -> RecordKeys:
        """These keys, then `other`'s (neither leaving rows out)."""
        if len(self.without) or len(other.without):
            raise ValueError("keys leaving rows out are not joined")
        joined = RecordKeys(self.pieces)
        for piece in other.pieces:
            joined.pieces.append(dataclasses.replace(piece, start=joined._end))
        return joined

    def __len__(self) -> int:
        return self._end - len(self.without)

    def is_empty(self) -> bool:
        return len(self) == 0

    def clear(self) -> pl.DataFrame:
        """No keys, as a frame."""
        return NO_KEYS

    def frames(self, columns: Iterable[str] = KEY_SCHEMA) -> Iterator[pl.DataFrame]:
        """Each piece's keys (`columns` of them), the rows left out dropped."""
        wanted = list(columns)
        for number, piece in enumerate(self.pieces):
            frame = piece.read(wanted)
            mask = self.left_in(number)
            yield frame if mask is None else frame.filter(mask)

    def left_in(self, number: int) -> pl.Series | None:
        """Which keys of piece `number` are not left out (None: all of them)."""
        piece = self.pieces[number]
        end = piece.start + piece.rows
        # `without` is sorted: the piece's rows left out are a slice of it, found by search.
        first = int(self.without.search_sorted(piece.start, side="left"))
        out = self.without.slice(first, int(self.without.search_sorted(end, side="left")) - first)
        if out.is_empty():
            return None
        rows = pl.int_range(piece.start, end, dtype=pl.UInt64, eager=True)
        return ~rows.is_in(out.implode())

    def frame(self) -> pl.DataFrame:
        """Every key at once (for the few uses that need them all: a replace, a plan against
        every hash of the snapshot)."""
        return pl.concat([NO_KEYS, *self.frames()])

    def filter(self, predicate: pl.Expr) -> pl.DataFrame:
        """The keys for which `predicate` holds (a few: each piece is filtered as it is read)."""
        return pl.concat([NO_KEYS, *(frame.filter(predicate) for frame in self.frames())])

    def numbered(self, predicate: pl.Expr) -> pl.DataFrame:
        """`filter`, with each key's place among every key (`row`), the rows left out too."""
        found = [NO_KEYS.with_columns(row=pl.lit(0, pl.UInt64))]
        for piece in self.pieces:
            frame = piece.read(list(KEY_SCHEMA))
            rows = pl.int_range(piece.start, piece.start + piece.rows, dtype=pl.UInt64)
            found.append(frame.with_columns(row=rows).filter(predicate))
        return pl.concat(found)

    def of_owners(self, owners: pl.Series) -> pl.DataFrame:
        """The keys of these members: read from the pieces their span crosses when every piece
        is in owner order (a create's parts, an update's state), else from every piece."""
        if owners.is_empty():
            return NO_KEYS
        pieces = self.pieces
        if in_owner_order(pieces):
            pieces = crossing(pieces, *owner_span(owners))
        chosen = RecordKeys(pieces, self.without)
        return chosen.filter(pl.col("owner").is_in(owners.implode()))

    def column(self, name: str) -> pl.Series:
        """One column of every key, at once (8 bytes a key)."""
        return pl.concat([NO_KEYS[name], *(frame[name] for frame in self.frames([name]))])

    def distinct(self, name: str) -> int:
        """How many different values the column `name` holds: `distinct_count`, each piece of
        values read from every piece of keys."""
        if len(self) <= STRETCH:
            return self.column(name).n_unique()
        return sum(self._values(name, piece).n_unique() for piece in range(PIECES))

    def repeated(self, name: str) -> pl.Series:
        """`repeated` of the column `name`."""
        if len(self) <= STRETCH:
            return _repeats(self.column(name))
        return pl.concat([_repeats(self._values(name, piece)) for piece in range(PIECES)])

    def _values(self, name: str, piece: int) -> pl.Series:
        column = pl.col(name)
        frames = (frame.filter(column % PIECES == piece) for frame in self.frames([name]))
        return pl.concat([NO_KEYS[name], *(frame[name] for frame in frames)])

    def leaving_out(self, rows: pl.Series) -> RecordKeys:
        """These keys without the rows at these places (among every key)."""
        return RecordKeys(self.pieces, pl.concat([self.without, rows.cast(pl.UInt64)]))

    def files(self) -> list[Path] | None:
        """The files the pieces are, in order (None when one is a frame in memory)."""
        files = [piece.source for piece in self.pieces if isinstance(piece.source, Path)]
        return files if len(files) == len(self.pieces) else None


def owner_span(owners: pl.Series) -> tuple[int, int]:
    """The lowest and the highest of these members (not empty). Read through a one-row select:
    `Series.min()` is typed as any literal or None."""
    span = owners.to_frame("owner").select(low=pl.min("owner"), high=pl.max("owner"))
    low, high = span.row(0)
    return int(low), int(high)
