"""Formula-safe CSV cells (OWASP "CSV Injection": https://owasp.org/www-community/attacks/CSV_Injection).

A spreadsheet opening a CSV runs a cell that starts with `=`, `+`, `-` or `@` (and, in some,
after a tab or carriage return) as a formula: a profile id `=HYPERLINK(...)` becomes a link that
leaks data, a phone `-1+2` becomes `1`. So every cell that starts with one of those gets a single
quote in front, and every field is quoted (`csv.QUOTE_ALL`).

The quote is reversible: a value that itself starts with `'` gets one more, so a reader drops
exactly one leading `'` when the next character is one of `= + - @ \\t \\r '` (`unescape`), and
gets back the value as stored. E.164 phones start with `+`: a raw export writes `'+16505550000`.
"""

from __future__ import annotations

import csv
from typing import IO, Any

TRIGGERS = ("=", "+", "-", "@", "\t", "\r", "'")
LIST_SEPARATOR = ";"


def escape(value: str) -> str:
    """`value` as a spreadsheet shows it as text: a `'` in front when it could start a formula."""
    return "'" + value if value.startswith(TRIGGERS) else value


def escape_list(values: list[str]) -> str:
    """A `;`-joined list; each element escaped, so a reader splitting on `;` is safe too."""
    return LIST_SEPARATOR.join(escape(v) for v in values)


def unescape(cell: str) -> str:
    """The value `escape` was given (one leading `'` dropped when a trigger follows it)."""
    return cell[1:] if cell.startswith("'") and cell[1:2] in TRIGGERS else cell


def unescape_list(cell: str) -> list[str]:
    """The list `escape_list` was given (empty cell: no values)."""
    return [unescape(v) for v in cell.split(LIST_SEPARATOR)] if cell else []


def safe_writer(sink: IO[str]) -> Any:
    """A `csv.writer` that quotes every field; write only `escape`d cells through it."""
    return csv.writer(sink, quoting=csv.QUOTE_ALL)


def safe_row(cells: list[Any]) -> list[str]:
    """Each cell as text (`None` → empty), escaped."""
    return [escape("" if cell is None else str(cell)) for cell in cells]
