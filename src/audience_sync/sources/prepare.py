"""Rows read from a file → what the profile writer stores, a batch at a time, column-wise.

A tabular batch (CSV, Parquet: every cell text) is prepared with Polars expressions, never row by
row in Python: a million rows take seconds. JSON rows (JSON Lines, `POST /profiles:batch`) are
read into `ProfileRecord`s by `rows.read_object` and turned into the same shape by
`prepare_records`. Both give the same content hash for the same row (`ProfileRecord.content_hash`
is the reference; a property test compares them), so a profile imported from a CSV file and then
from JSON is `unchanged`.

The rules are those of `rows`: values trimmed, blank cells and null tokens absent, one value per
field, several identifiers per cell split on `;`, other columns kept as traits; a value no column
can hold rejects its row with a reason that names the column, never the value.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any, NamedTuple

import polars as pl
import polars_hash  # noqa: F401  (registers the `chash` namespace)

from audience_sync.domain.models import IdentifierType
from audience_sync.domain.profiles import END_LINE, FIELD_COLUMNS, LINE, PROFILE_FIELDS, ROW
from audience_sync.exceptions import ValidationError
from audience_sync.identifiers import normalize_country
from audience_sync.identifiers.rules import split_date_of_birth
from audience_sync.sources.rows import (
    DATA_USE_PARSERS,
    HASHED_COLUMNS,
    IDENTIFIER_COLUMNS,
    KNOWN_COLUMNS,
    MAX_FIELD_LENGTH,
    MAX_IDENTIFIER_LENGTH,
    MAX_LENGTH,
    MOBILE_KINDS,
    NOT_A_DIGEST,
    NUL_REASON,
    NULL_TOKENS,
    SHA256_HEX,
    Rejection,
    column_label,
)

_META = frozenset({LINE, END_LINE, ROW})
# The keys of the content hash's fields object, as `json.dumps(sort_keys=True)` orders them.
_HASH_KEYS = sorted(FIELD_COLUMNS)
_OPTIONAL_KEYS = frozenset(DATA_USE_PARSERS)  # in the hash only when set
# Identifier columns in the order a record lists them: the type each gives, and its rank.
_ID_SOURCES: tuple[tuple[str, IdentifierType], ...] = (
    *IDENTIFIER_COLUMNS.items(),
    *HASHED_COLUMNS.items(),
)
# JSON string escapes as `json.dumps(ensure_ascii=False)` writes them.
_ESCAPES = {"\\": "\\\\", '"': '\\"', "\n": "\\n", "\r": "\\r", "\t": "\\t", "\b": "\\b"}
_ESCAPES["\f"] = "\\f"
for _code in range(0x20):
    _ESCAPES.setdefault(chr(_code), f"\\u{_code:04x}")


_NEEDS_ESCAPE = r'[\\"\x00-\x1f]'


class Warning(NamedTuple):
    """Something kept or dropped that the user should know about; counted, never fatal.

    `value` is shown only for values that identify no one (a country as written)."""

    field: str
    reason: str
    value: str | None = None


UNKNOWN_COUNTRY = "unknown country: phones without a country code are not parsed"
INVALID_DATE_OF_BIRTH = "invalid date of birth (use YYYY-MM-DD or YYYYMMDD): kept, never sent"


@dataclass(slots=True)
class Prepared:
    """One batch ready to write.

    `profiles`: one row per readable row, in file order — `_row` (its index in the batch),
    `_line` and `_end_line` (its first and last line), `profile_id`, the fields, `traits` (JSON
    text), `content_hash`, `region` (where national phone numbers are dialled; null: only
    numbers with a country code are parsed).
    `identifiers`: `_row`, `type`, `value`, `kind`, in each profile's order."""

    profiles: pl.DataFrame
    identifiers: pl.DataFrame
    rejections: list[Rejection] = field(default_factory=list)
    warnings: Counter[Warning] = field(default_factory=Counter)


PROFILE_SCHEMA: dict[str, Any] = {
    ROW: pl.Int64,
    LINE: pl.Int64,
    END_LINE: pl.Int64,
    "profile_id": pl.String,
    **dict.fromkeys(FIELD_COLUMNS, pl.String),
    "traits": pl.String,
    "content_hash": pl.String,
    "region": pl.String,
}
IDENTIFIER_SCHEMA: dict[str, Any] = {
    ROW: pl.Int64,
    "type": pl.String,
    "value": pl.String,
    "kind": pl.String,
}


# --- tabular batches ---------------------------------------------------------------------------


def prepare_frame(frame: pl.DataFrame, default_region: str) -> Prepared:
    """A batch of text cells (columns named as ours, plus `_line`) → `Prepared`."""
    df = _complete(frame).with_row_index(ROW).with_columns(pl.col(ROW).cast(pl.Int64))
    traits = sorted(c for c in df.columns if c and c not in KNOWN_COLUMNS and c not in _META)
    df = df.with_columns(pl.coalesce([*_nul_reasons(frame), pl.lit(None, pl.String)]).alias("_nul"))
    singles = ["profile_id", *FIELD_COLUMNS, *traits]
    df = df.with_columns(_cleaned(pl.col(c)).alias(c) for c in singles)
    df, use_reasons = _data_use(df)
    identifiers, id_reasons, warnings = _identifiers(df)
    reasons = [pl.col("_nul"), *_field_reasons(), *use_reasons, *id_reasons]
    df = df.with_columns(pl.coalesce(reasons).alias("_reason"))
    rejected = df.filter(pl.col("_reason").is_not_null())
    df = df.filter(pl.col("_reason").is_null())
    identifiers = identifiers.join(df.select(ROW), on=ROW, how="semi")
    df = _with_region(df, default_region, warnings)
    _date_of_birth_warnings(df, warnings)
    df = df.with_columns(
        _traits_json(df, traits).alias("traits"),
    )
    df = _with_content_hash(df, identifiers)
    return Prepared(
        profiles=df.select(list(PROFILE_SCHEMA)),
        identifiers=identifiers.select(list(IDENTIFIER_SCHEMA)),
        rejections=_rejections(rejected),
        warnings=warnings,
    )


def _complete(frame: pl.DataFrame) -> pl.DataFrame:
    """Every known column present (absent ones as nulls), every cell text."""
    missing = [c for c in sorted(KNOWN_COLUMNS) if c not in frame.columns]
    frame = frame.with_columns(pl.lit(None, pl.String).alias(c) for c in missing)
    if END_LINE not in frame.columns:
        frame = frame.with_columns(pl.col(LINE).alias(END_LINE))
    return frame


# What Python's `str.strip()` strips (`rows` trims with it): Unicode whitespace and the four
# information separators \x1c-\x1f, which Polars' own `strip_chars()` keeps.
_SPACES = "".join(chr(code) for code in range(0x110000) if chr(code).isspace())


def _cleaned(value: pl.Expr) -> pl.Expr:
    """Trimmed; blank and null tokens become null (`rows._clean`, column-wise)."""
    text = value.str.strip_chars(_SPACES)
    return pl.when((text == "") | text.is_in(NULL_TOKENS)).then(None).otherwise(text)


def _nul_reasons(frame: pl.DataFrame) -> list[pl.Expr]:
    """A NUL in any cell refuses the row (no database stores one), naming the first such column
    in the file's order, as `rows.read_object` does. The reader refuses such lines already;
    this keeps a frame from elsewhere to the same rule."""
    return [
        pl.when(pl.col(name).str.contains("\x00", literal=True)).then(
            pl.lit(f"{column_label(name)} {NUL_REASON}")
        )
        for name in frame.columns
        if name not in _META and frame.schema[name] == pl.String
    ]


def _field_reasons() -> list[pl.Expr]:
    """Why a row's single-value columns reject it, in the order `rows` checks them."""
    reasons = [
        _too_long("profile_id"),
        pl.when(pl.col("profile_id").is_null()).then(pl.lit("missing profile_id")),
    ]
    return reasons + [_too_long(name) for name in PROFILE_FIELDS]


def _too_long(name: str) -> pl.Expr:
    limit = MAX_LENGTH.get(name, MAX_FIELD_LENGTH)
    reason = f"{name} is longer than {limit} characters"
    return pl.when(pl.col(name).str.len_chars() > limit).then(pl.lit(reason))


def _data_use(df: pl.DataFrame) -> tuple[pl.DataFrame, list[pl.Expr]]:
    """Consent and Limited Data Use words → ours; an unknown word rejects the row with the
    parser's own message (its distinct values are few: parsed once each)."""
    reasons: list[pl.Expr] = []
    columns: list[pl.Expr] = []
    for name, parse in DATA_USE_PARSERS.items():
        words, problems = _parse_distinct(df[name], parse)
        reason_name = f"_reason_{name}"
        columns.append(pl.col(name).replace_strict(words, default=None, return_dtype=pl.String))
        columns.append(
            pl.col(name)
            .replace_strict(problems, default=None, return_dtype=pl.String)
            .alias(reason_name)
        )
        reasons.append(pl.col(reason_name))
    return df.with_columns(columns), reasons


def _parse_distinct(
    values: pl.Series, parse: Callable[[object], str | None]
) -> tuple[dict[str, str | None], dict[str, str]]:
    words: dict[str, str | None] = {}
    problems: dict[str, str] = {}
    for value in values.drop_nulls().unique().to_list():
        try:
            words[value] = parse(value)
        except ValidationError as exc:
            problems[value] = str(exc)
    return words, problems


def _identifiers(df: pl.DataFrame) -> tuple[pl.DataFrame, list[pl.Expr], Counter[Warning]]:
    """The long frame of identifiers (`_row`, `type`, `value`, `kind`), the rows' reasons for
    values too long to keep, and the warnings of pre-hashed columns."""
    warnings: Counter[Warning] = Counter()
    columns = [column for column, _ in _ID_SOURCES]
    ranks = {column: rank for rank, column in enumerate(columns)}
    types = {column: identifier_type.value for column, identifier_type in _ID_SOURCES}
    long = _elements(df, columns).with_columns(
        pl.col("_column").replace_strict(ranks, return_dtype=pl.Int32).alias("_rank"),
        pl.col("_column").replace_strict(types, return_dtype=pl.String).alias("type"),
    )
    hashed = pl.col("_column").is_in(list(HASHED_COLUMNS))
    not_digest = hashed & ~pl.col("value").str.contains(SHA256_HEX.pattern)
    dropped = long.filter(not_digest).group_by("_column").len()
    for column, count in dropped.iter_rows():
        warnings[Warning(column, NOT_A_DIGEST)] += count
    long = long.filter(~not_digest)
    too_long = (
        long.filter(pl.col("value").str.len_chars() > MAX_IDENTIFIER_LENGTH)
        .group_by(ROW)
        .agg(pl.col("_rank").min())
    )
    reasons = _too_long_reasons(too_long)
    long = _with_kinds(df, long)
    long = long.sort(ROW, "_rank", "_pos").select(ROW, "type", "value", "kind")
    return long, reasons, warnings


def _elements(df: pl.DataFrame, columns: list[str]) -> pl.DataFrame:
    """One row per distinct non-blank value of each `;`-separated cell: `_row`, `_column`,
    `value`, and `_pos`, its position among the cell's values."""
    cleaned = _cleaned(pl.col("value"))
    return (
        df.select(ROW, *columns)
        .unpivot(index=ROW, variable_name="_column", value_name="value")
        .filter(pl.col("value").is_not_null())
        .with_columns(pl.col("value").str.split(";"))
        .explode("value")
        .with_columns(cleaned.alias("value"))
        .filter(pl.col("value").is_not_null())
        .unique(subset=[ROW, "_column", "value"], keep="first", maintain_order=True)
        .with_columns(_position_in_run(ROW, "_column").alias("_pos"))
    )


def _position_in_run(*keys: str) -> pl.Expr:
    """0, 1, 2… along each run of equal `keys` (the frame is ordered by them): a window
    function's result without its hash table."""
    index = pl.int_range(pl.len())
    starts = pl.any_horizontal([pl.col(k).ne_missing(pl.col(k).shift(1)) for k in keys])
    return index - pl.when(starts).then(index).forward_fill()


def _too_long_reasons(too_long: pl.DataFrame) -> list[pl.Expr]:
    if too_long.is_empty():
        return []
    names = {rank: column for rank, (column, _) in enumerate(_ID_SOURCES)}
    limit = MAX_IDENTIFIER_LENGTH
    by_row = dict(
        zip(
            too_long[ROW].to_list(),
            [f"{names[r]} is longer than {limit} characters" for r in too_long["_rank"].to_list()],
            strict=True,
        )
    )
    return [pl.col(ROW).replace_strict(by_row, default=None, return_dtype=pl.String)]


def _with_kinds(df: pl.DataFrame, long: pl.DataFrame) -> pl.DataFrame:
    """Each mobile id's kind: the kind at its position in `mobile_id_kind`, else the last one
    (`rows._record`: one kind for all, or one per id); unknown words give no kind."""
    kinds = _elements(df, ["mobile_id_kind"]).select(
        ROW,
        pl.col("_pos").alias("_kpos"),
        pl.col("value")
        .str.to_lowercase()
        .replace_strict(MOBILE_KINDS, default=None, return_dtype=pl.String)
        .alias("kind"),
    )
    counts = kinds.group_by(ROW).agg(pl.len().alias("_kinds"))
    mobile = pl.col("type") == IdentifierType.MOBILE_ID.value
    long = long.join(counts, on=ROW, how="left").with_columns(
        pl.when(mobile).then(pl.min_horizontal(pl.col("_pos"), pl.col("_kinds") - 1)).alias("_kpos")
    )
    return long.join(kinds, on=[ROW, "_kpos"], how="left", maintain_order="left")


def _with_region(df: pl.DataFrame, default_region: str, warnings: Counter[Warning]) -> pl.DataFrame:
    """The region national phone numbers are dialled in: the row's country, else the tenant's
    default; null when the country is given but unknown (never a guess that contradicts it)."""
    countries = df["country"].drop_nulls()
    codes: dict[str, str | None] = {}
    for value, count in countries.value_counts().iter_rows():
        code = resolve_country(value)
        codes[value] = code
        if code is None:
            warnings[Warning("country", UNKNOWN_COUNTRY, value)] += count
    region = (
        pl.when(pl.col("country").is_null())
        .then(pl.lit(default_region))
        .otherwise(pl.col("country").replace_strict(codes, default=None, return_dtype=pl.String))
    )
    return df.with_columns(region.alias("region"))


@lru_cache(maxsize=65_536)
def resolve_country(value: str) -> str | None:
    """ISO alpha-2, uppercase, for a country as written; None when unknown."""
    code = normalize_country(value)
    return code.upper() if code else None


def _date_of_birth_warnings(df: pl.DataFrame, warnings: Counter[Warning]) -> None:
    """Count the dates of birth the sync will drop (`rules.split_date_of_birth`): a value that
    is plainly `YYYY-MM-DD` or `YYYYMMDD` of a real day passes column-wise; the rest (few) are
    judged by the sync's own rule."""
    dob = pl.col("date_of_birth")
    digits = pl.when(dob.str.contains(r"^\d{4}-\d{2}-\d{2}$")).then(dob.str.replace_all("-", ""))
    plain = digits.otherwise(dob)
    day = plain.str.strptime(pl.Date, "%Y%m%d", strict=False)
    valid = plain.str.contains(r"^\d{8}$") & day.is_not_null()
    doubtful = df.filter(dob.is_not_null() & ~valid.fill_null(False))["date_of_birth"]
    bad = 0
    for value, count in doubtful.value_counts().iter_rows():
        if split_date_of_birth(value) is None:
            bad += count
    if bad:
        warnings[Warning("date_of_birth", INVALID_DATE_OF_BIRTH)] += bad


def _traits_json(df: pl.DataFrame, traits: Sequence[str]) -> pl.Expr:
    """`json.dumps(traits, sort_keys=True, ensure_ascii=False)` of each row's set traits."""
    quoted = _quoter(df, traits)
    pairs = [pl.lit(_json(name) + ": ") + quoted(name) for name in traits]
    if not pairs:
        return pl.lit("{}")
    inner = pl.concat_str(pairs, separator=", ", ignore_nulls=True)
    return pl.lit("{") + inner.fill_null("") + pl.lit("}")


def _with_content_hash(df: pl.DataFrame, identifiers: pl.DataFrame) -> pl.DataFrame:
    """`ProfileRecord.content_hash`, column-wise: the same canonical JSON, the same SHA-256."""
    item = pl.concat_str(
        pl.lit('["'),
        pl.col("type"),
        pl.lit('", '),
        _quoter(identifiers, ["value"])("value"),
        pl.lit(", "),
        _quoter(identifiers, ["kind"])("kind").fill_null("null"),
        pl.lit("]"),
    )
    listed = identifiers.group_by(ROW, maintain_order=True).agg(item.str.join(", ").alias("_ids"))
    df = df.join(listed, on=ROW, how="left", maintain_order="left")
    quoted = _quoter(df, _HASH_KEYS)
    fields = []
    for key in _HASH_KEYS:
        pair = pl.lit(_json(key) + ": ") + quoted(key)
        fields.append(pair if key in _OPTIONAL_KEYS else pair.fill_null(_json(key) + ": null"))
    canonical = pl.concat_str(
        pl.lit("[{"),
        pl.concat_str(fields, separator=", ", ignore_nulls=True),
        pl.lit("}, ["),
        pl.col("_ids").fill_null(""),
        pl.lit("], "),
        pl.col("traits"),
        pl.lit(", "),
        _quoter(df, ["region"])("region").fill_null('""'),
        pl.lit("]"),
    )
    digest: Any = canonical
    return df.with_columns(digest.chash.sha2_256().alias("content_hash"))


def _json(text: str) -> str:
    return json.dumps(text, ensure_ascii=False)


def _quoter(df: pl.DataFrame, columns: Sequence[str]) -> Callable[[str], pl.Expr]:
    """A function giving each column's values as JSON string literals (null stays null), as
    `json.dumps(ensure_ascii=False)` writes them. Escaping is paid only by the columns of this
    batch that hold a character to escape (one scan each): most hold none."""
    checks = [pl.col(c).str.contains(_NEEDS_ESCAPE).any() for c in columns]
    found = df.select(checks).row(0) if checks else ()
    escape = {column for column, needed in zip(columns, found, strict=True) if needed}

    def quoted(column: str) -> pl.Expr:
        value = pl.col(column)
        if column in escape:
            value = value.str.replace_many(list(_ESCAPES), list(_ESCAPES.values()))
        return pl.lit('"') + value + pl.lit('"')

    return quoted


def _rejections(rejected: pl.DataFrame) -> list[Rejection]:
    return [
        Rejection(line, reason, end)
        for line, end, reason in rejected.select(LINE, END_LINE, "_reason").iter_rows()
    ]


# --- JSON rows ----------------------------------------------------------------------------------
