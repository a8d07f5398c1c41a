"""Parse a block of whole CSV lines into a frame of cells, each row with its first and last line,
and the lines it rejects or counts blank.

Lines with no quote, no NUL and exactly the header's number of delimiters (the common case)
are parsed in bulk by Polars; every other line goes through `csvlines`, which reads RFC 4180
quoting and decides, line by line, what a broken quote costs.
"""

from __future__ import annotations

from dataclasses import dataclass

import polars as pl

from audience_sync.domain.profiles import END_LINE, LINE
from audience_sync.sources import csvlines
from audience_sync.sources.rows import Rejection

_BLANK_BYTES = csvlines.BLANK.encode()


@dataclass(frozen=True, slots=True)
class Parsed:
    """A block's rows (None: none), rejections, lines read, blank lines, and the lines to read
    again with the next block (a quoted value still open at the end of this one)."""

    frame: pl.DataFrame | None
    rejections: list[Rejection]
    lines: int
    blank: int
    leftover: bytes = b""


def parse_block(
    block: bytes, first: int, dialect: csvlines.Dialect, names: list[str], *, final: bool
) -> Parsed:
    """One block of whole lines, line `first` onwards."""
    count = block.count(b"\n")
    frame = _bulk(block, count, dialect, names)
    if frame is None:
        frame = _bulk_few_quotes(block, count, dialect, names)
    simple = None
    if frame is None:
        simple = _one_line_rows(block, dialect)
        if simple is not None and all(simple):
            frame = _checked(_polars_csv(block, dialect.delimiter, names), count)
    if frame is not None:
        numbers = list(range(first, first + count))
        return Parsed(with_lines(frame, numbers, numbers), [], count, 0)
    lines = block.split(b"\n")[:-1]
    return _careful_block(lines, simple, first, dialect, names, final=final)


def _bulk(
    block: bytes, count: int, dialect: csvlines.Dialect, names: list[str]
) -> pl.DataFrame | None:
    """The block parsed by Polars when every line is a simple one (else None): no quote, no NUL,
    valid UTF-8, exactly the header's number of delimiters. Checked without a Python loop: no
    missing cell and the block's delimiter count is exactly (columns - 1) x lines."""
    if b'"' in block or b"\x00" in block:
        return None
    if block.count(dialect.delimiter.encode()) != (dialect.columns - 1) * count:
        return None
    return _checked(_polars_csv(block, dialect.delimiter, names), count)


def _bulk_few_quotes(
    block: bytes, count: int, dialect: csvlines.Dialect, names: list[str]
) -> pl.DataFrame | None:
    """The block parsed by Polars when its few lines with a quote are each a strict RFC 4180 row
    of the header's width (checked one by one) and every other line is simple (checked in bulk
    as in `_bulk`, the delimiters inside quoted values taken off the count)."""
    if block.count(b'"') > count // 5 or b"\x00" in block:
        return None
    delimiter, inside = dialect.delimiter, 0
    strict = csvlines.strict_row(delimiter)
    found = block.find(b'"')
    while found >= 0:
        start, end = block.rfind(b"\n", 0, found) + 1, block.find(b"\n", found)
        text = csvlines.decoded(block[start:end])
        if text is None or not strict.fullmatch(text := text.removesuffix("\r")):
            return None
        cells = csvlines.parse(text, delimiter)
        if len(cells) != dialect.columns:
            return None
        inside += sum(cell.count(delimiter) for cell in cells)
        found = block.find(b'"', end)
    if block.count(delimiter.encode()) != (dialect.columns - 1) * count + inside:
        return None
    return _checked(_polars_csv(block, delimiter, names), count)


def _one_line_rows(block: bytes, dialect: csvlines.Dialect) -> list[bool] | None:
    """For each line: whether it is a strict RFC 4180 row of the header's width by itself (so
    Polars reads it, quotes and all, as `csvlines` would), decided in bulk by Polars' regex
    engine. None when the block is not UTF-8 (then lines are classified one by one)."""
    try:
        text = block.decode("utf-8")
    except UnicodeDecodeError:
        return None
    lines = pl.Series([text]).str.split("\n").explode().head(-1)
    pattern = csvlines.strict_pattern(dialect.delimiter, dialect.columns)
    simple = (
        lines.str.contains(pattern)
        & (lines.str.strip_chars(csvlines.BLANK) != "")
        & ~lines.str.contains("\x00", literal=True)
    )
    return simple.to_list()


def _checked(frame: pl.DataFrame | None, count: int) -> pl.DataFrame | None:
    """The frame if Polars read one row per line and every cell, else None."""
    if frame is None or frame.height != count or _has_null(frame):
        return None
    return frame


def _polars_csv(data: bytes, delimiter: str, names: list[str]) -> pl.DataFrame | None:
    try:
        return pl.read_csv(
            data,
            has_header=False,
            separator=delimiter,
            quote_char='"',
            comment_prefix=None,
            schema=dict.fromkeys(names, pl.String),
            infer_schema=False,
            empty_string_is_null=False,
            raise_if_empty=False,
        )
    except (pl.exceptions.PolarsError, ValueError):  # e.g. bytes that are not UTF-8
        return None


def _has_null(frame: pl.DataFrame) -> bool:
    return bool(frame.null_count().sum_horizontal().item())


def _careful_block(
    lines: list[bytes],
    simple: list[bool] | None,
    first: int,
    dialect: csvlines.Dialect,
    names: list[str],
    *,
    final: bool,
) -> Parsed:
    """Lines one by one: rows that are one line each go to Polars together, the others (quotes
    across lines, broken rows, blank lines) through `csvlines`."""
    if simple is None:
        delimiter, width = dialect.delimiter.encode(), dialect.columns - 1
        simple = [
            b'"' not in raw
            and b"\x00" not in raw
            and raw.count(delimiter) == width
            and bool(raw.strip(_BLANK_BYTES))
            for raw in lines
        ]
    fast: list[int] = []
    careful: list[tuple[int, int, list[str]]] = []
    rejections: list[Rejection] = []
    blank, index, leftover = 0, 0, b""
    while index < len(lines):
        if simple[index]:
            fast.append(index)
            index += 1
            continue
        outcome = csvlines.read_row(lines, index, dialect, final=final)
        if isinstance(outcome, csvlines.NeedMore):
            leftover = b"\n".join(lines[index:]) + b"\n"
            break
        if isinstance(outcome, csvlines.Row):
            careful.append((first + index, first + index + outcome.lines - 1, outcome.cells))
            index += outcome.lines
            continue
        if isinstance(outcome, csvlines.Reject):
            rejections.append(Rejection(first + index, outcome.reason, first + index))
        else:
            blank += 1
        index += 1
    frame, bad = _simple_rows([lines[i] for i in fast], [first + i for i in fast], dialect, names)
    rejections.extend(bad)
    rejections.sort(key=lambda r: r.line)
    frames = [frame] if frame is not None else []
    if careful:
        starts, ends, cells = zip(*careful, strict=True)
        parsed = pl.DataFrame(list(cells), schema=dict.fromkeys(names, pl.String), orient="row")
        frames.append(with_lines(parsed, list(starts), list(ends)))
    merged = pl.concat(frames).sort(LINE) if frames else None
    return Parsed(merged, rejections, index, blank, leftover)


def _simple_rows(
    lines: list[bytes], numbers: list[int], dialect: csvlines.Dialect, names: list[str]
) -> tuple[pl.DataFrame | None, list[Rejection]]:
    """Lines that are rows by themselves: Polars in one go; when that fails (bytes that are not
    UTF-8), line by line with `csvlines`."""
    if not lines:
        return None, []
    frame = _polars_csv(b"\n".join(lines) + b"\n", dialect.delimiter, names)
    if frame is not None and frame.height == len(lines) and not _has_null(frame):
        return with_lines(frame, numbers, numbers), []
    kept: list[list[str]] = []
    kept_lines: list[int] = []
    rejections: list[Rejection] = []
    for raw, number in zip(lines, numbers, strict=True):
        text = csvlines.decoded(raw)
        if text is None:
            rejections.append(Rejection(number, dialect.invalid_reason, number))
            continue
        kept.append(csvlines.parse(text.removesuffix("\r"), dialect.delimiter))
        kept_lines.append(number)
    if not kept:
        return None, rejections
    frame = pl.DataFrame(kept, schema=dict.fromkeys(names, pl.String), orient="row")
    return with_lines(frame, kept_lines, kept_lines), rejections


def with_lines(frame: pl.DataFrame, starts: list[int], ends: list[int]) -> pl.DataFrame:
    """The frame with each row's first and last line."""
    return frame.with_columns(
        pl.Series(LINE, starts, dtype=pl.Int64), pl.Series(END_LINE, ends, dtype=pl.Int64)
    )
