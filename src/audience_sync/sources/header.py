"""A CSV file's header: its delimiter (given or detected), its column names as ours (`--map`),
and messages that say how to fix a header that cannot be imported."""

from __future__ import annotations

from collections.abc import Mapping

from audience_sync.domain.profiles import END_LINE, LINE
from audience_sync.exceptions import ValidationError
from audience_sync.sources import csvlines

DELIMITERS = (",", ";", "\t", "|")
DELIMITER_NAMES = {"tab": "\t", "\\t": "\t", "comma": ",", "semicolon": ";", "pipe": "|"}


def is_utf8(raw: bytes) -> bool:
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def parse_delimiter(asked: str | None) -> str | None:
    """The `--delimiter` asked for (a name such as `tab`, or the character), None if none."""
    if asked is None:
        return None
    delimiter = DELIMITER_NAMES.get(asked.strip().lower(), asked)
    if len(delimiter) != 1 or delimiter in ('"', "\n", "\r", "\x00") or not delimiter.isascii():
        raise ValidationError(
            f"--delimiter {shown(asked)} is not usable: pass one ASCII character such as "
            "',' ';' '|' or 'tab'."
        )
    return delimiter


def detect_delimiter(header: str, sample: list[bytes]) -> str:
    """The candidate that splits the header into the most columns, consistently with the lines
    after it: most agreeing sample lines first, then most columns, then the order , ; tab |."""
    texts = [t.removesuffix("\r") for t in (_text(raw) for raw in sample) if t is not None]
    texts = [t for t in texts if t.strip(csvlines.BLANK)]
    best, best_score = ",", (-1, 0, 0)
    for order, candidate in enumerate(DELIMITERS):
        columns = _width(header, candidate)
        if columns < 2:
            continue
        agree = sum(1 for t in texts if _width(t, candidate) == columns)
        score = (agree, columns, -order)
        if score > best_score:
            best, best_score = candidate, score
    return best


def _text(raw: bytes) -> str | None:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return None


def _width(text: str, delimiter: str) -> int:
    try:
        return len(csvlines.parse(text, delimiter))
    except (csvlines.OpenQuoteError, csvlines.MalformedError):
        return 0


def canonical_columns(names: list[str], mapping: Mapping[str, str], delimiter: str) -> list[str]:
    """The file's column names trimmed, lowercased, renamed by `mapping` (our → theirs); a
    ValidationError saying what to do when they cannot be imported."""
    columns = [name.strip().lower() for name in names]
    renamed = list(columns)
    for ours, theirs in mapping.items():
        key = theirs.strip().lower()
        if key not in columns:
            raise ValidationError(
                f"--map {shown(ours)}={shown(theirs)}: the file has no column {shown(theirs)}; "
                f"its columns are: {listed(columns)}."
            )
        renamed[columns.index(key)] = ours.strip().lower()
    reserved = sorted({n for n in renamed if n in (LINE, END_LINE)})
    if reserved:
        raise ValidationError(
            f"The file has a column named {shown(reserved[0])}, a name the importer keeps for "
            "itself: rename that column in the file."
        )
    duplicates = sorted({n for n in renamed if renamed.count(n) > 1})
    if duplicates:
        raise ValidationError(
            f"The file repeats columns (after --map): {listed(duplicates)}. Rename or drop them."
        )
    if "profile_id" not in renamed:
        raise ValidationError(_no_profile_id(renamed, delimiter))
    return renamed


def _no_profile_id(columns: list[str], delimiter: str) -> str:
    if len(columns) == 1:
        inside = [d for d in DELIMITERS if d in columns[0] and d != delimiter]
        if inside:
            d = inside[0].encode("unicode_escape").decode()
            return (
                f"The file has no profile_id column: found one column named "
                f"{shown(columns[0])}: is the delimiter '{d}'? use --delimiter '{d}'."
            )
    return (
        f"The file has no profile_id column; its columns are: {listed(columns)}. "
        "Name the column holding the profile id with --map profile_id=<column>."
    )


def shown(name: str, limit: int = 40) -> str:
    """A name from a file, quoted, printable and short: for messages, never for lookups."""
    text = "".join(c if c.isprintable() else c.encode("unicode_escape").decode() for c in name)
    if len(text) > limit:
        text = text[: limit - 1] + "…"
    return f"'{text}'"


def listed(columns: list[str], limit: int = 30) -> str:
    listed = ", ".join(shown(c) for c in columns[:limit])
    return listed + (f" and {len(columns) - limit} more" if len(columns) > limit else "")
