"""Read profile rows from CSV or JSON Lines into records, or rejections with a line number.

A row is the profile's whole current state. Known columns are fields or identifiers; any other
column becomes a trait. A CSV cell may hold several identifiers separated by `;`; JSON Lines use a
list. Reading streams: one row in memory at a time, whatever the file size.
"""

from __future__ import annotations

import csv
import gzip
import hashlib
import json
import math
import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, cast

from audience_sync.domain.data_use import CONSENT_FIELDS, LDU_COLUMN, parse_consent, parse_ldu
from audience_sync.domain.models import IdentifierType, MobileIdKind
from audience_sync.domain.profiles import PROFILE_FIELDS
from audience_sync.exceptions import ValidationError

IDENTIFIER_COLUMNS = {
    "email": IdentifierType.EMAIL,
    "phone": IdentifierType.PHONE,
    "mobile_id": IdentifierType.MOBILE_ID,
    "external_id": IdentifierType.EXTERNAL_ID,
}
# What the member allows (`domain.data_use`): a value outside the column's words rejects the row.
DATA_USE_PARSERS: dict[str, Callable[[object], str | None]] = {
    **dict.fromkeys(CONSENT_FIELDS, parse_consent),
    LDU_COLUMN: parse_ldu,
}
# Columns of identifiers hashed before they reached us (SHA-256 hex of the normalized value):
# kept as identifiers of their type; at sync a 64-hex value is sent as the digest it is.
HASHED_COLUMNS = {
    "email_sha256": IdentifierType.EMAIL,
    "phone_sha256": IdentifierType.PHONE,
}
SHA256_HEX = re.compile(r"^[0-9A-Fa-f]{64}$")
KNOWN_COLUMNS = frozenset(
    {
        "profile_id",
        "mobile_id_kind",
        *PROFILE_FIELDS,
        *DATA_USE_PARSERS,
        *IDENTIFIER_COLUMNS,
        *HASHED_COLUMNS,
    }
)
# Cells that mean "no value" in real exports, matched exactly after trimming: pandas' default
# `na_values` (pandas.read_csv, "By default the following values are interpreted as NaN") minus
# `NA`, which is Namibia's country code, plus Excel's `#NULL!`, MySQL's `(null)` and the casings
# of null/none people type. Case matters: `Nan` and `Nil` are given names.
NULL_TOKENS = frozenset(
    {
        "#N/A", "#N/A N/A", "#NA", "-1.#IND", "-1.#QNAN", "-NaN", "-nan", "1.#IND", "1.#QNAN",
        "<NA>", "N/A", "n/a", "NULL", "NaN", "None", "nan", "null",
        "Null", "NONE", "none", "(null)", "#NULL!",
    }
)  # fmt: skip
MOBILE_KINDS = {
    "idfa": MobileIdKind.IDFA,
    "ios": MobileIdKind.IDFA,
    "gaid": MobileIdKind.GAID,
    "aaid": MobileIdKind.GAID,
    "adid": MobileIdKind.GAID,
    "android": MobileIdKind.GAID,
}
# Column sizes in the schema; longer values are refused rather than truncated.
MAX_LENGTH = {"profile_id": 255, "zip": 32, "country": 64, "date_of_birth": 32, "gender": 32}
MAX_FIELD_LENGTH = 255
MAX_IDENTIFIER_LENGTH = 512
MAX_LINE_BYTES = 1_000_000
# Bytes that were not UTF-8, as decoded with errors="surrogateescape".
UNDECODABLE = re.compile("[\udc80-\udcff]")
# Text no database stores: PostgreSQL refuses NUL in text and JSON, and a lone surrogate (a JSON
# escape such as "\ud800") cannot be encoded at all. Either one rejects its row, never the chunk.
BAD_TEXT = re.compile("[\x00\ud800-\udfff]")
# A value nested deeper (lists and objects) rejects its row: deep values break JSON encoders and
# readers far from here (a RecursionError in an export, an API answer).
MAX_DEPTH = 32
# An integer longer than this rejects its row: Python refuses to print one of more than 4,300
# digits (a ValueError where the row is hashed), and no trait needs one.
MAX_NUMBER_DIGITS = 100
_NUMBER_LIMIT = 10**MAX_NUMBER_DIGITS
# What a row refused by the database (or that cannot be hashed) is reported as: the database's
# message is never shown, it may quote the row's values.
REFUSED_REASON = "the database refused a value of this row; nothing of it was stored"
NOT_A_DIGEST = "not a SHA-256 digest (64 hex characters): dropped"
NUL_REASON = "contains a NUL character"
NUMBER_REASON = f"holds a number longer than {MAX_NUMBER_DIGITS} digits"
SURROGATE_REASON = "is not valid Unicode (it holds a lone surrogate such as \\ud800)"


@dataclass(frozen=True, slots=True)
class IdentifierValue:
    type: IdentifierType
    value: str
    kind: MobileIdKind | None = None


@dataclass(slots=True)
class ProfileRecord:
    """One readable row: the profile's whole current state."""

    line: int
    profile_id: str
    fields: dict[str, str | None]
    identifiers: list[IdentifierValue]
    traits: dict[str, Any] = field(default_factory=dict)
    # (column, reason) of values dropped with a warning (a pre-hashed value that is no digest)
    warnings: list[tuple[str, str]] = field(default_factory=list)

    def content_hash(self, region: str) -> str:
        """Same row (and same phone region) → same hash: re-importing it changes nothing.

        `region` is where the row's national phone numbers are dialled ('' when only numbers
        with a country code are parsed): the stored E.164 forms depend on it, so a row whose
        region changes is written again. `prepare._with_content_hash` computes the same hash
        column-wise; keep the two in step."""
        # Data-use columns count only when set: rows imported before they existed keep their hash.
        fields = {k: v for k, v in self.fields.items() if v is not None or k in PROFILE_FIELDS}
        canonical = json.dumps(
            [
                fields,
                [(i.type.value, i.value, i.kind and i.kind.value) for i in self.identifiers],
                self.traits,
                region,
            ],
            sort_keys=True,
            ensure_ascii=False,
            default=str,
        )
        return hashlib.sha256(canonical.encode()).hexdigest()


@dataclass(frozen=True, slots=True)
class Rejection:
    """A row that could not be read; its line number is the line where the row starts, and
    `end_line` the last line it took (None: the same line)."""

    line: int
    reason: str
    end_line: int | None = None  # the row's last line when it spans several


RowResult = ProfileRecord | Rejection


class RowError(Exception):
    """Raised inside row building; becomes a `Rejection` for that line."""


def open_source(path: Path) -> IO[bytes]:
    """Open a file for reading as bytes; `.gz` files are decompressed on the fly."""
    if not path.is_file():
        raise ValidationError(f"{path} does not exist or is not a file.")
    if path.suffix == ".gz":
        return cast(IO[bytes], gzip.open(path, "rb"))
    return path.open("rb")


def detect_format(path: Path) -> str:
    suffixes = [s.lower() for s in path.suffixes if s.lower() != ".gz"]
    last = suffixes[-1] if suffixes else ""
    if last == ".csv":
        return "csv"
    if last in (".jsonl", ".ndjson", ".json"):
        return "jsonl"
    raise ValidationError(
        f"Cannot tell the format of {path.name}: use a .csv, .jsonl or .ndjson file "
        "(optionally .gz), or pass --format csv|jsonl."
    )


def read_rows(
    stream: IO[bytes], fmt: str, on_bytes: Callable[[int], None] | None = None
) -> Iterator[RowResult]:
    """Every row of the stream as a record or a rejection, in file order."""
    lines = _counted_lines(stream, on_bytes)
    if fmt == "csv":
        return _read_csv(lines)
    if fmt == "jsonl":
        return _read_jsonl(lines)
    raise ValidationError(f"Unknown format {fmt!r}: use csv or jsonl.")


def _counted_lines(stream: IO[bytes], on_bytes: Callable[[int], None] | None) -> Iterator[bytes]:
    for raw in stream:
        if on_bytes is not None:
            on_bytes(len(raw))
        yield raw


def _read_csv(lines: Iterator[bytes]) -> Iterator[RowResult]:
    # surrogateescape keeps undecodable bytes visible so the row is rejected, not mangled.
    text = (raw.decode("utf-8", errors="surrogateescape") for raw in lines)
    reader = csv.reader(_strip_bom(text), strict=True)
    header = _read_header(reader)
    while True:
        start = reader.line_num + 1
        try:
            cells = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            yield Rejection(start, f"unreadable CSV: {exc}")
            continue
        if not cells or cells == [""]:
            continue
        yield _csv_row(start, header, cells)


def _strip_bom(text: Iterator[str]) -> Iterator[str]:
    first = next(text, None)
    if first is None:
        return
    yield first.removeprefix("\ufeff")
    yield from text


def _read_header(reader: Iterator[list[str]]) -> list[str]:
    header = next(reader, None)
    if not header:
        raise ValidationError("The CSV file is empty: the first line must be a header row.")
    names = [name.strip().lower() for name in header]
    if any(BAD_TEXT.search(name) for name in names):  # never echoed: it is not printable
        raise ValidationError(
            "The CSV header is not valid text: a column name holds a NUL character or bytes "
            "that are not UTF-8. Fix the first line of the file."
        )
    if "profile_id" not in names:
        raise ValidationError(
            "The CSV header has no profile_id column; expected columns: profile_id, email, "
            "phone, mobile_id, mobile_id_kind, external_id, first_name, last_name, city, state, "
            "zip, country, date_of_birth, gender, consent_ad_user_data, "
            "consent_ad_personalization, limited_data_use (any other column becomes a trait)."
        )
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise ValidationError(f"The CSV header repeats columns: {', '.join(duplicates)}.")
    return names


def _csv_row(line: int, header: list[str], cells: list[str]) -> RowResult:
    if len(cells) != len(header):
        return Rejection(line, f"expected {len(header)} columns, found {len(cells)}")
    if UNDECODABLE.search("".join(cells)):
        return Rejection(line, "not valid UTF-8")
    return _build(line, dict(zip(header, cells, strict=True)))


def _read_jsonl(lines: Iterator[bytes]) -> Iterator[RowResult]:
    for number, raw in enumerate(lines, start=1):
        if not raw.strip():
            continue
        if len(raw) > MAX_LINE_BYTES:
            yield Rejection(number, f"line longer than {MAX_LINE_BYTES} bytes")
            continue
        try:
            data = json.loads(raw)
        except UnicodeDecodeError:  # a ValueError too: caught first
            yield Rejection(number, "not valid UTF-8")
            continue
        except json.JSONDecodeError as exc:  # a ValueError too: caught before the next one
            yield Rejection(number, f"malformed JSON: {exc.msg} at column {exc.colno}")
            continue
        except ValueError:  # int() of more than 4,300 digits; the message quotes no value
            yield Rejection(number, f"a value {NUMBER_REASON}")
            continue
        except RecursionError:  # the decoder's own stack guard, thousands of levels deep
            yield Rejection(number, f"a value is nested deeper than {MAX_DEPTH} levels")
            continue
        yield read_object(number, data)


def read_object(line: int, data: Any) -> RowResult:
    """One decoded JSON row (a JSON Lines line, a row of `POST /profiles:batch`) as a record or
    a rejection; never raises, whatever `data` holds."""
    if not isinstance(data, dict):
        return Rejection(line, f"expected a JSON object, found {type(data).__name__}")
    return _build(line, {str(k).strip().lower(): v for k, v in data.items()})


def _build(line: int, values: dict[str, Any]) -> RowResult:
    try:
        return _record(line, values)
    except RowError as exc:
        return Rejection(line, str(exc))


def _record(line: int, values: dict[str, Any]) -> ProfileRecord:
    _check_values(values)
    profile_id = _scalar("profile_id", values.get("profile_id"))
    if profile_id is None:
        raise RowError("missing profile_id")
    fields = {name: _scalar(name, values.get(name)) for name in PROFILE_FIELDS}
    for name, parse in DATA_USE_PARSERS.items():
        try:
            fields[name] = parse(_scalar(name, values.get(name)))
        except ValidationError as exc:
            raise RowError(str(exc)) from None
    kinds = _kinds(values.get("mobile_id_kind"))
    identifiers: list[IdentifierValue] = []
    for column, identifier_type in IDENTIFIER_COLUMNS.items():
        for position, value in enumerate(_many(column, values.get(column))):
            kind = None
            if identifier_type is IdentifierType.MOBILE_ID and kinds:
                kind = kinds[position] if position < len(kinds) else kinds[-1]
            identifiers.append(IdentifierValue(identifier_type, value, kind))
    warnings: list[tuple[str, str]] = []
    for column, identifier_type in HASHED_COLUMNS.items():
        for value in _many(column, values.get(column)):
            if SHA256_HEX.match(value):
                identifiers.append(IdentifierValue(identifier_type, value))
            else:
                warnings.append((column, NOT_A_DIGEST))
    traits = {k: _trait(v) for k, v in values.items() if k and k not in KNOWN_COLUMNS}
    traits = {k: v for k, v in traits.items() if v is not None}
    return ProfileRecord(line, profile_id, fields, identifiers, traits, warnings)


def _trait(value: Any) -> Any:
    """A trait as kept: text trimmed, blank and null tokens absent; other values as they are."""
    if isinstance(value, str):
        text = value.strip()
        return None if not text or text in NULL_TOKENS else text
    return value


def _check_values(values: dict[str, Any]) -> None:
    """Refuse the row when any value (a field, an identifier, a trait at any depth) could not be
    stored or hashed. The reason names the column, never the value."""
    for key, value in values.items():
        if BAD_TEXT.search(key):
            raise RowError(f"a column name {_text_reason(key)}")
        problem = value_problem(value)
        if problem is not None:
            raise RowError(f"{column_label(key)} {problem}")


def value_problem(value: Any) -> str | None:
    """Why a decoded JSON value cannot be stored, or None.

    Walks the value with its own stack, not recursion: a value nested thousands of levels deep
    is refused, not a RecursionError."""
    stack: list[tuple[Any, int]] = [(value, 0)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, str):
            if BAD_TEXT.search(item):
                return _text_reason(item)
        elif isinstance(item, bool) or item is None:
            continue
        elif isinstance(item, int):
            if not -_NUMBER_LIMIT < item < _NUMBER_LIMIT:
                return NUMBER_REASON
        elif isinstance(item, float):
            if not math.isfinite(item):  # NaN, Infinity, 1e999: not JSON, PostgreSQL refuses them
                return "holds a number that is not finite (NaN or Infinity)"
        elif isinstance(item, dict | list):
            if depth >= MAX_DEPTH:
                return f"is nested deeper than {MAX_DEPTH} levels"
            children = [*item.keys(), *item.values()] if isinstance(item, dict) else item
            stack.extend((child, depth + 1) for child in children)
    return None


def _text_reason(text: str) -> str:
    found = BAD_TEXT.search(text)
    return NUL_REASON if found is not None and found.group() == "\x00" else SURROGATE_REASON


def column_label(key: str) -> str:
    """A column's name for a reason: known columns and short plain trait names as they are."""
    if key in KNOWN_COLUMNS:
        return key
    if len(key) <= 64 and key.isprintable():
        return f"trait {key!r}"
    return "a trait"


def _scalar(name: str, value: Any) -> str | None:
    if isinstance(value, list):
        raise RowError(f"{name} must be a single value, not a list")
    if isinstance(value, dict):
        raise RowError(f"{name} must be a single value, not an object")
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    text = _clean(name, str(value))
    limit = MAX_LENGTH.get(name, MAX_FIELD_LENGTH)
    if text is not None and len(text) > limit:
        raise RowError(f"{name} is longer than {limit} characters")
    return text


def _many(name: str, value: Any) -> list[str]:
    items: Iterable[Any]
    if value is None:
        return []
    if isinstance(value, list):
        items = value
    elif isinstance(value, str):
        items = value.split(";")
    elif isinstance(value, dict | bool):
        raise RowError(f"{name} must be a string or a list of strings")
    else:
        items = [value]
    out: list[str] = []
    for item in items:
        if isinstance(item, dict | list | bool):
            raise RowError(f"{name} must be a string or a list of strings")
        text = _clean(name, str(item)) if item is not None else None
        if text is None:
            continue
        if len(text) > MAX_IDENTIFIER_LENGTH:
            raise RowError(f"{name} is longer than {MAX_IDENTIFIER_LENGTH} characters")
        if text not in out:
            out.append(text)
    return out


def _clean(name: str, text: str) -> str | None:
    if BAD_TEXT.search(text):  # str() of a value checked by `_check_values`; kept as a guard
        raise RowError(f"{name} {_text_reason(text)}")
    text = text.strip()
    return None if not text or text in NULL_TOKENS else text


def _kinds(value: Any) -> list[MobileIdKind | None]:
    raw = _many("mobile_id_kind", value) if value not in (None, "") else []
    return [MOBILE_KINDS.get(item.lower()) for item in raw]
