"""The careful path of CSV reading: one row from the line(s) where it starts, or why not.

The fast path (`tabular`) takes lines with no quote, no NUL and the header's number of
delimiters; every other line comes here. A quoted value left open at the end of a line may carry
the row onto the next lines, but only when the row it makes is well-formed with the header's
number of columns, and no line it would take is a good row on its own: a stray quote costs the
line it is on, never the rows after it.
"""

from __future__ import annotations

import csv
import functools
import re
from collections.abc import Sequence
from dataclasses import dataclass

MAX_ROW_LINES = 100
MAX_ROW_BYTES = 1_000_000
# Whitespace for "blank": the same set the fast path strips, so both paths agree.
BLANK = " \t\r\n\f\v"
UNBALANCED = "unbalanced quote (a quoted value is never closed)"
MALFORMED = (
    "malformed quotes: a closing quote must be followed by the delimiter or the end of the line "
    '(write a quote inside a quoted value as "")'
)
NUL = "contains a NUL byte"
# Stands for a line too long to hold in memory (the reader skipped it); NUL-led, so it is never
# a row and never continues one.
OVERLONG = b"\x00<a line too long to read>"
MAX_LINE_HELD = 16 << 20  # more than a row may take (MAX_ROW_BYTES): a block's soft limit
OVERLONG_REASON = f"a line longer than {MAX_LINE_HELD >> 20} MB"
TOO_LONG = f"a row longer than {MAX_ROW_BYTES} bytes or {MAX_ROW_LINES} lines"
# Python's csv reads a lone "\r" as a line end; NUL never reaches the parser (rejected first),
# so it stands in for "\r" while parsing and is turned back after.
_CR_STAND_IN = "\x00"


@dataclass(frozen=True, slots=True)
class Row:
    """A readable row: its cells and how many physical lines it took."""

    cells: list[str]
    lines: int


@dataclass(frozen=True, slots=True)
class Reject:
    reason: str


@dataclass(frozen=True, slots=True)
class Blank:
    pass


@dataclass(frozen=True, slots=True)
class NeedMore:
    """The row may continue past the lines given: call again with more (or at the end)."""


Outcome = Row | Reject | Blank | NeedMore


@dataclass(frozen=True, slots=True)
class Dialect:
    delimiter: str
    columns: int
    invalid_reason: str

    def count_reason(self, found: int) -> str:
        reason = f"expected {self.columns} columns, found {found}"
        if found > self.columns:
            shown = self.delimiter.encode("unicode_escape").decode()
            return f"{reason} — is a value with a '{shown}' missing its quotes?"
        return reason


class OpenQuoteError(Exception):
    """The text ends inside a quoted value."""


class MalformedError(Exception):
    """Something other than the delimiter follows a closing quote."""


def parse(text: str, delimiter: str) -> list[str]:
    """The cells of one record (RFC 4180; `""` inside quotes; a quote inside an unquoted value is
    kept as a character). Raises `OpenQuoteError` when a quoted value is never closed,
    `MalformedError` when something follows a closing quote other than the delimiter."""
    if "\r" in text:
        text = text.replace("\r", _CR_STAND_IN)
    reader = csv.reader([text], delimiter=delimiter, strict=True)
    try:
        cells = next(reader, [])
    except csv.Error as exc:
        if "unexpected end of data" in str(exc):
            raise OpenQuoteError from None
        raise MalformedError(str(exc)) from None
    if _CR_STAND_IN in text:
        cells = [cell.replace(_CR_STAND_IN, "\r") for cell in cells]
    return cells


def is_blank(cells: list[str]) -> bool:
    return all(not cell.strip(BLANK) for cell in cells)


def decoded(raw: bytes) -> str | None:
    """The line as text, or None when it is not UTF-8."""
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return None


def _decode(raw: bytes, dialect: Dialect) -> str | Reject:
    if b"\x00" in raw:
        return Reject(NUL)
    text = decoded(raw)
    return Reject(dialect.invalid_reason) if text is None else text


def read_row(lines: Sequence[bytes], start: int, dialect: Dialect, *, final: bool) -> Outcome:
    """What the row starting at `lines[start]` is (lines without their `\\n`). `NeedMore` when
    the row may go on past `lines` and `final` is false."""
    if lines[start] == OVERLONG:
        return Reject(OVERLONG_REASON)
    text = _decode(lines[start], dialect)
    if isinstance(text, Reject):
        return text
    text = text.removesuffix("\r")
    if not text.strip(BLANK):
        return Blank()
    try:
        return _checked(parse(text, dialect.delimiter), 1, dialect)
    except MalformedError:
        return Reject(MALFORMED)
    except OpenQuoteError:
        pass
    return _continued(lines, start, dialect, final=final)


def _checked(cells: list[str], lines: int, dialect: Dialect) -> Outcome:
    if len(cells) != dialect.columns:
        return Reject(dialect.count_reason(len(cells)))
    if is_blank(cells):
        return Blank()
    return Row(cells, lines)


def _continued(lines: Sequence[bytes], start: int, dialect: Dialect, *, final: bool) -> Outcome:
    size = len(lines[start])
    for end in range(start + 1, start + MAX_ROW_LINES):
        if end >= len(lines):
            return Reject(UNBALANCED) if final else NeedMore()
        raw = lines[end]
        size += len(raw) + 1
        if size > MAX_ROW_BYTES:
            return Reject(TOO_LONG)
        if b"\x00" in raw or stands_alone(raw, dialect):
            return Reject(UNBALANCED)
        if b'"' not in raw:  # an open quoted value cannot close on this line
            continue
        outcome = _candidate(lines[start : end + 1], dialect)
        if outcome is not None:
            return outcome
    return Reject(UNBALANCED)


def _candidate(lines: Sequence[bytes], dialect: Dialect) -> Outcome | None:
    """The row these lines make, a reject of the first line alone, or None while still open."""
    try:
        text = b"\n".join(lines).decode("utf-8").removesuffix("\r")
        cells = parse(text, dialect.delimiter)
    except UnicodeDecodeError:
        return Reject(UNBALANCED)
    except MalformedError:
        return Reject(UNBALANCED)
    except OpenQuoteError:
        return None
    if len(cells) != dialect.columns:
        return Reject(UNBALANCED)
    return Row(cells, len(lines))


def stands_alone(raw: bytes, dialect: Dialect) -> bool:
    """Whether a line is, on its own, a strictly well-formed row of the header's width (RFC 4180:
    a quote only around a value or doubled inside one). Strict, because the last line of a real
    multi-line value (`end of value",next,cells`) always has a quote inside an unquoted value:
    it must not count as a row that stops the value."""
    try:
        text = raw.decode("utf-8").removesuffix("\r")
        cells = parse(text, dialect.delimiter)
    except (UnicodeDecodeError, OpenQuoteError, MalformedError):
        return False
    return (
        len(cells) == dialect.columns and strict_row(dialect.delimiter).fullmatch(text) is not None
    )


@functools.cache
def strict_row(delimiter: str) -> re.Pattern[str]:
    """One line of RFC 4180 fields: quoted (`""` inside) or without any quote."""
    d, field = _field(delimiter)
    return re.compile(f"{field}(?:{d}{field})*")


def strict_pattern(delimiter: str, columns: int) -> str:
    """A whole line of exactly `columns` RFC 4180 fields (then an optional CR), written for
    both Python's `re` and Rust's `regex` (Polars)."""
    d, field = _field(delimiter)
    return f"^{field}(?:{d}{field}){{{columns - 1}}}\\r?$"


def _field(delimiter: str) -> tuple[str, str]:
    d = f"\\x{ord(delimiter):02X}"  # the delimiter as an escape both engines read
    return d, f'(?:"(?:[^"]|"")*"|[^"{d}\\n]*)'
