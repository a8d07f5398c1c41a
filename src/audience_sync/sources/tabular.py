"""Read an import file (CSV, JSON Lines, Parquet) into batches of raw cells, every physical line
accounted for: each line is in a row, a rejection, or counted blank.

A CSV file's header is read by `header` (delimiter, column names, `--map`), its lines in blocks
by `csvblocks`: lines with no quote, no NUL and exactly the header's number of delimiters (the
common case) are parsed in bulk by Polars; every other line goes through `csvlines`, which reads
RFC 4180 quoting and decides, line by line, what a broken quote costs. Both give the same cells
for the same line (a test checks it against Python's `csv`).
"""

from __future__ import annotations

import gzip
import json
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, cast

import polars as pl

from audience_sync.domain.profiles import END_LINE, LINE
from audience_sync.exceptions import ValidationError
from audience_sync.sources import csvblocks, csvlines
from audience_sync.sources.encodings import Encoding, utf8_chunks
from audience_sync.sources.header import (
    canonical_columns,
    detect_delimiter,
    is_utf8,
    parse_delimiter,
    shown,
)
from audience_sync.sources.rows import MAX_DEPTH, MAX_LINE_BYTES, NUMBER_REASON, Rejection

SAMPLE_LINES = 20
FORMATS = {
    ".csv": "csv",
    ".tsv": "csv",
    ".txt": "csv",
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".json": "jsonl",
    ".parquet": "parquet",
}
_BLANK_BYTES = csvlines.BLANK.encode()


@dataclass(frozen=True)
class ReadOptions:
    """How to read a file; every None is detected."""

    fmt: str | None = None  # "csv" | "jsonl" | "parquet"; None → from the extension
    delimiter: str | None = None  # None → detected among , ; tab |
    encoding: str | None = None  # None → UTF-8 (with or without BOM), UTF-16 by its BOM
    mapping: Mapping[str, str] = field(default_factory=dict)  # our column → the file's column


@dataclass
class Batch:
    """A run of the file. Over all batches: rows + rejected lines + blank == lines."""

    frame: pl.DataFrame | None  # CSV, Parquet: String cells, `_line`, `_end_line` (Int64)
    objects: list[tuple[int, Any]]  # JSON Lines: (line, decoded value)
    rejections: list[Rejection]
    lines: int  # physical lines consumed (header excluded)
    blank: int  # of which blank

    @property
    def rows(self) -> int:
        return (self.frame.height if self.frame is not None else 0) + len(self.objects)


@dataclass(frozen=True)
class Description:
    """What was detected, for the import's summary."""

    fmt: str
    encoding: str | None = None
    delimiter: str | None = None
    columns: tuple[str, ...] = ()


def detect_format(path: Path, fmt: str | None = None) -> str:
    """The format asked for, or the one the file's extension says."""
    if fmt is not None:
        if fmt not in ("csv", "jsonl", "parquet"):
            raise ValidationError(f"Unknown format {shown(fmt)}: use csv, jsonl or parquet.")
        return fmt
    suffixes = [s.lower() for s in path.suffixes]
    gz = bool(suffixes) and suffixes[-1] == ".gz"
    last = (suffixes[:-1] if gz else suffixes)[-1:] or [""]
    found = FORMATS.get(last[0])
    if found is None or (found == "parquet" and gz):
        raise ValidationError(
            f"Cannot tell the format of {shown(path.name)}: use a .csv, .tsv, .jsonl, .ndjson "
            "or .parquet file (.gz allowed but for Parquet), or pass --format csv|jsonl|parquet."
        )
    return found


def read_batches(
    path: Path,
    options: ReadOptions,
    *,
    rows: int = 50_000,
    on_bytes: Callable[[int], None] | None = None,
) -> Iterator[Batch]:
    """The file's batches in order, each of about `rows` lines. The header is read (and a bad one
    raises ValidationError) before this returns; the file closes when the iterator ends."""
    fmt = detect_format(path, options.fmt)
    if fmt == "parquet":
        return _parquet_batches(path, options, rows, on_bytes)
    stream = _open(path)
    try:
        encoding, chunks = utf8_chunks(stream, options.encoding, on_bytes, _chunk_bytes(rows))
        source = _Lines(chunks)
        if fmt == "jsonl":
            return _closing(stream, _jsonl_batches(source, encoding, rows))
        dialect, names = _csv_header(source, options, encoding, rows)
        return _closing(stream, _csv_batches(source, dialect, names, rows))
    except BaseException:
        stream.close()
        raise


def describe(path: Path, options: ReadOptions) -> Description:
    """Format, encoding, delimiter and columns as `read_batches` would read them."""
    fmt = detect_format(path, options.fmt)
    if fmt == "parquet":
        return Description(fmt, columns=tuple(_parquet_columns(path, options)[1]))
    with _open(path) as stream:
        encoding, chunks = utf8_chunks(stream, options.encoding)
        if fmt == "jsonl":
            return Description(fmt, encoding.name)
        dialect, names = _csv_header(_Lines(chunks), options, encoding, 1_000)
    return Description(fmt, encoding.name, dialect.delimiter, tuple(names))


def _open(path: Path) -> IO[bytes]:
    if not path.is_file():
        raise ValidationError(f"{shown(str(path))} does not exist or is not a file.")
    if path.suffix.lower() == ".gz":
        return cast(IO[bytes], gzip.open(path, "rb"))
    return path.open("rb")


def _closing(stream: IO[bytes], batches: Iterator[Batch]) -> Iterator[Batch]:
    with stream:
        yield from batches


def _chunk_bytes(rows: int) -> int:
    return max(256, min(1 << 20, rows * 64))


class _Lines:
    """Blocks of whole lines (each ending with `\\n`) from UTF-8 chunks; lines can be put back.

    A block stops growing at `csvlines.MAX_LINE_HELD` bytes once it holds a whole line, and a
    line longer than that is never held: it is skipped and stands as `csvlines.OVERLONG`, one
    line to reject. So memory stays flat whatever the file holds."""

    def __init__(self, chunks: Iterator[bytes]) -> None:
        self._chunks = chunks
        self._rest = b""
        self.done = False  # no more chunks: the block returned last was the end of the file

    def block(self, at_least: int) -> bytes | None:
        parts, count, size = [self._rest], self._rest.count(b"\n"), len(self._rest)
        limit = csvlines.MAX_LINE_HELD
        while count < at_least and not self.done and not (count and size >= limit):
            if size >= limit:  # no line break in all of it: one overlong line
                rest = self._skip_line()
                parts, count, size = (
                    [csvlines.OVERLONG, b"\n", rest],
                    1 + rest.count(b"\n"),
                    len(rest),
                )
                continue
            chunk = next(self._chunks, None)
            if chunk is None:
                self.done = True
                break
            parts.append(chunk)
            count += chunk.count(b"\n")
            size += len(chunk)
        data = b"".join(parts)
        if self.done:
            self._rest = b""
            if data and not data.endswith(b"\n"):
                data += b"\n"  # the last line had no line break: still a line
            return data or None
        cut = data.rfind(b"\n") + 1
        self._rest = data[cut:]
        return data[:cut]

    def _skip_line(self) -> bytes:
        """Drop chunks up to the next line break; what follows it."""
        while (chunk := next(self._chunks, None)) is not None:
            end = chunk.find(b"\n")
            if end >= 0:
                return chunk[end + 1 :]
        self.done = True
        return b""

    def unread(self, data: bytes) -> None:
        self._rest = data + self._rest


# --- header --------------------------------------------------------------------------------


def _csv_header(
    source: _Lines, options: ReadOptions, encoding: Encoding, rows: int
) -> tuple[csvlines.Dialect, list[str]]:
    block = source.block(max(rows, SAMPLE_LINES + 1))
    header_raw, _, rest = (block or b"").partition(b"\n")
    source.unread(rest)
    if b"\x00" in header_raw or not is_utf8(header_raw):
        raise ValidationError(
            "The CSV header is not valid text: a column name holds a NUL character or bytes "
            "that are not UTF-8. Fix the first line of the file."
            + (
                ""
                if encoding.transcoded
                else " If the file is in another encoding, pass --encoding."
            )
        )
    header = header_raw.decode("utf-8").removesuffix("\r")
    if not header.strip(csvlines.BLANK):
        raise ValidationError("The CSV file is empty: the first line must be a header row.")
    if "\r" in header.strip(csvlines.BLANK):  # lines split on "\n" only: this is one line
        raise ValidationError(
            "The file's lines end with a carriage return alone (the old Mac format): save it "
            "again with LF or CRLF line ends."
        )
    sample = rest.split(b"\n", SAMPLE_LINES)[:SAMPLE_LINES]
    delimiter = parse_delimiter(options.delimiter) or detect_delimiter(header, sample)
    try:
        cells = csvlines.parse(header, delimiter)
    except (csvlines.OpenQuoteError, csvlines.MalformedError):
        raise ValidationError(
            "The CSV header (line 1) has a broken quote: a quoted column name must be closed "
            "and followed by the delimiter."
        ) from None
    names = canonical_columns(cells, options.mapping, delimiter)
    return csvlines.Dialect(delimiter, len(names), encoding.invalid_reason), names


# --- CSV -----------------------------------------------------------------------------------


def _csv_batches(
    source: _Lines, dialect: csvlines.Dialect, names: list[str], rows: int
) -> Iterator[Batch]:
    line = 2  # the header is line 1
    at_least = rows
    while (block := source.block(at_least)) is not None:
        batch, leftover = _csv_block(block, line, dialect, names, final=source.done)
        at_least = rows
        if leftover:
            source.unread(leftover)
            # Enough lines next time for the row that may continue to end or hit its cap.
            at_least = max(rows, leftover.count(b"\n") + csvlines.MAX_ROW_LINES)
        line += batch.lines
        if batch.lines or not leftover:
            yield batch


def _csv_block(
    block: bytes, first: int, dialect: csvlines.Dialect, names: list[str], *, final: bool
) -> tuple[Batch, bytes]:
    """One block of whole lines (line `first` onwards) as a batch, and the lines to read again
    with the next block (a quoted value still open at the end of this one)."""
    parsed = csvblocks.parse_block(block, first, dialect, names, final=final)
    return _batch(parsed.frame, parsed.rejections, parsed.lines, parsed.blank), parsed.leftover


def _batch(
    frame: pl.DataFrame | None, rejections: list[Rejection], lines: int, blank: int
) -> Batch:
    """A batch with rows whose every cell is blank taken out of the frame, their lines counted."""
    if frame is not None and frame.height:
        cells = [c for c in frame.columns if c not in (LINE, END_LINE)]
        first = pl.col(cells[0]).str.strip_chars(csvlines.BLANK) == ""
        if frame.select(first.any()).item():
            empty = pl.all_horizontal(
                pl.col(c).is_null() | (pl.col(c).str.strip_chars(csvlines.BLANK) == "")
                for c in cells
            )
            taken = pl.col(END_LINE) - pl.col(LINE) + 1  # a blank row may span lines
            blank += frame.select(taken.filter(empty).sum()).item()
            frame = frame.filter(~empty)
    return Batch(frame, [], rejections, lines, blank)


# --- JSON Lines ----------------------------------------------------------------------------


def _jsonl_batches(source: _Lines, encoding: Encoding, rows: int) -> Iterator[Batch]:
    line = 1
    while (block := source.block(rows)) is not None:
        batch = Batch(None, [], [], 0, 0)
        for raw in block.split(b"\n")[:-1]:
            _jsonl_line(raw, line + batch.lines, batch, encoding)
            batch.lines += 1
        line += batch.lines
        yield batch


def _jsonl_line(raw: bytes, number: int, batch: Batch, encoding: Encoding) -> None:
    reason: str | None = None
    if not raw.strip():
        batch.blank += 1
        return
    if len(raw) > MAX_LINE_BYTES or raw == csvlines.OVERLONG:
        reason = f"line longer than {MAX_LINE_BYTES} bytes"
    else:
        try:
            batch.objects.append((number, json.loads(raw)))
        except UnicodeDecodeError:  # a ValueError too: caught first
            reason = encoding.invalid_reason
        except json.JSONDecodeError as exc:  # a ValueError too: caught before the next one
            reason = f"malformed JSON: {exc.msg} at column {exc.colno}"
        except ValueError:  # int() of more than 4,300 digits; the message quotes no value
            reason = f"a value {NUMBER_REASON}"
        except RecursionError:  # the decoder's own stack guard, thousands of levels deep
            reason = f"a value is nested deeper than {MAX_DEPTH} levels"
    if reason is not None:
        batch.rejections.append(Rejection(number, reason, number))


# --- Parquet -------------------------------------------------------------------------------


def _parquet_columns(path: Path, options: ReadOptions) -> tuple[pl.LazyFrame, list[str]]:
    if not path.is_file():
        raise ValidationError(f"{shown(str(path))} does not exist or is not a file.")
    try:
        frame = pl.scan_parquet(path)
        schema = frame.collect_schema()
    except (pl.exceptions.PolarsError, OSError) as exc:
        raise ValidationError(
            f"{shown(path.name)} is not a readable Parquet file ({type(exc).__name__})."
        ) from None
    names = canonical_columns(list(schema.names()), options.mapping, ",")
    columns = [
        _as_string(pl.col(source), dtype, name).alias(name)
        for (source, dtype), name in zip(schema.items(), names, strict=True)
    ]
    return frame.select(columns), names


def _as_string(expr: pl.Expr, dtype: Any, name: str) -> pl.Expr:
    """A Parquet column as text: lists joined with ';', dates ISO, booleans true/false."""
    if isinstance(dtype, pl.List | pl.Array):
        inner = _as_string(pl.element(), dtype.inner, name)
        listed = expr if isinstance(dtype, pl.List) else expr.arr.to_list()
        return listed.list.eval(inner).list.join(";")
    if isinstance(dtype, pl.Struct):
        return expr.struct.json_encode()
    if isinstance(dtype, pl.Binary):
        raise ValidationError(
            f"The Parquet column {shown(name)} holds binary values: export it as text."
        )
    return expr.cast(pl.String)


def _parquet_batches(
    path: Path, options: ReadOptions, rows: int, on_bytes: Callable[[int], None] | None
) -> Iterator[Batch]:
    frame, _ = _parquet_columns(path, options)
    return _parquet_run(frame, path.stat().st_size, rows, on_bytes)


def _parquet_run(
    frame: pl.LazyFrame, size: int, rows: int, on_bytes: Callable[[int], None] | None
) -> Iterator[Batch]:
    total = frame.select(pl.len()).collect().item() or 1
    line, reported = 2, 0
    for chunk in frame.collect_batches(chunk_size=rows):
        numbers = list(range(line, line + chunk.height))
        line += chunk.height
        if on_bytes is not None:
            done = size * (line - 2) // total
            on_bytes(done - reported)
            reported = done
        yield _batch(csvblocks.with_lines(chunk, numbers, numbers), [], chunk.height, 0)
