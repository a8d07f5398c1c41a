"""The fast bulk path: the rules of `rules.py` over millions of values, in Polars.

How each field is done (measured by `make bench`):
- email, mobile id, external id: Polars string expressions and SHA-256 from the polars-hash
  plugin over the ASCII rows (and the emails of Latin-1 letters), on both cores (the streaming
  engine); the rare other non-ASCII row (NFC, Unicode case and whitespace) goes through the
  per-item reference. `hash_many` cuts a long batch into pieces: worker threads have Polars
  work on the next pieces while the caller's thread turns the finished ones into Python strings.
- phone: stored E.164 (`+16505551212`, see `phone.E164Table`) is only formatted and hashed in
  Polars; a pre-hashed digest passes through; anything else is parsed per item (~20 µs).
- the enhanced fields (names, city, state, zip, country, gender): few distinct values, so the
  reference runs once per distinct value and the results are joined back.
Every path agrees with `rules.normalize` value for value; the tests check it on random input.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from functools import cache
from typing import Any

import polars as pl
import polars_hash  # noqa: F401  (registers the `chash` namespace on expressions)

from audience_sync.domain.models import IdentifierType, SyncPlatform
from audience_sync.identifiers.fields import INVALID, Field, Reason, as_field, as_platform
from audience_sync.identifiers.phone import e164_table
from audience_sync.identifiers.rules import (
    GOOGLE,
    SUPPORTED,
    TIKTOK,
    ZERO_MAID,
    is_hashed,
    normalize,
)
from audience_sync.identifiers.text import ASCII_WHITESPACE, WHITESPACE, is_utf8

Values = Sequence[str | None] | pl.Series

_WS = r"\t\n\x0B\x0C\r "  # ASCII_WHITESPACE as a regex class body
_PREHASHED = r"^[0-9a-fA-F]{64}$"
_EMAIL = rf"^[^@{_WS}]+@[^@{_WS}.]+(?:\.[^@{_WS}.]+)+$"
_UUID = r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$"
# The ASCII characters of Unicode's punctuation categories (P*); `$+<=>^`|~` are symbols (S*).
_ASCII_PUNCTUATION = "[" + "".join(f"\\x{ord(c):02X}" for c in "!\"#%&'()*,-./:;?@[\\]_{}") + "]"
# An email whose trimmed text is of these is done right in Polars, non-ASCII as it is: NFC
# leaves such text (and the whitespace trimmed off it) as it is, Rust lowercases it as Python
# does, and no Unicode whitespace is left inside for the ASCII patterns to miss.
_LATIN1_LETTERS = re.compile(r"[\x00-\x7f\xc0-\xd6\xd8-\xf6\xf8-\xff]*")
_REASONS = {reason.value: reason for reason in Reason}
# `hash_many`'s pieces: small enough for the list of one to be built while Polars works on the
# next ones, large enough for a query's fixed cost not to matter.
_PIECE = 125_000
_WORKERS = 2


@dataclass(slots=True)
class BulkResult:
    """What is sent for each value (None when dropped) and, for each dropped value, why."""

    sent: list[str | None]
    reasons: list[Reason | None]

    def counts(self) -> dict[str, int]:
        """Diagnostics: `present`, `usable`, and one count per reason code that occurred."""
        dropped = Counter(reason for reason in self.reasons if reason is not None)
        usable = len(self.sent) - sum(dropped.values())
        present = len(self.sent) - dropped.get(Reason.EMPTY, 0)
        return {"present": present, "usable": usable, **{str(r): n for r, n in dropped.items()}}


def hash_many(
    values: Values,
    identifier_type: Field | IdentifierType | str,
    platform: SyncPlatform | str,
    *,
    region: str = "US",
) -> list[str | None]:
    """`hash_identifier` for every value, in order, on the fast path."""
    field, target = as_field(identifier_type), as_platform(platform)
    if field not in _RULES or field not in SUPPORTED[target]:
        column, _ = _run(values, field, target, region, False)
        return column.to_list()
    # As `_run`, but the few slow rows are patched into the list, not scattered into the column;
    # and a piece at a time, so that Polars works on the next piece while this thread (holding
    # the GIL) turns one into Python strings.
    sent: list[str | None] = []
    for start, series, odd, frame in _pieces(values, field, target):
        part: list[str | None] = frame.get_column("sent").to_list()
        for i in _slow_rows(frame, series, odd):
            part[i] = normalize(values[start + i], field, target, region)[0]
        sent += part
    return sent


def hash_many_with_reasons(
    values: Values,
    identifier_type: Field | IdentifierType | str,
    platform: SyncPlatform | str,
    *,
    region: str = "US",
) -> BulkResult:
    """`hash_many` plus the reason code of every dropped value, for the sync's diagnostics."""
    sent, reasons = _run(values, as_field(identifier_type), as_platform(platform), region, True)
    assert reasons is not None
    return BulkResult(sent.to_list(), [_REASONS.get(r) for r in reasons.to_list()])


def hash_series(
    values: pl.Series,
    identifier_type: Field | IdentifierType | str,
    platform: SyncPlatform | str,
    *,
    region: str = "US",
) -> pl.Series:
    """`hash_many` for a Polars string column, returning a column (no Python lists in between)."""
    sent, _ = _run(values, as_field(identifier_type), as_platform(platform), region, False)
    return sent


# --- the engine -------------------------------------------------------------------------------


def _run(
    values: Values, field: Field, platform: SyncPlatform, region: str, with_reasons: bool
) -> tuple[pl.Series, pl.Series | None]:
    series, odd = _to_series(values)
    size = len(series)
    if field not in SUPPORTED[platform]:
        reason = pl.Series("reason", [Reason.UNSUPPORTED.value] * size, dtype=pl.String)
        return pl.Series("sent", [None] * size, dtype=pl.String), reason if with_reasons else None
    if field in _RULES:
        frame = _collect(series, field, platform, with_reasons)
        sent = frame.get_column("sent")
        reasons = frame.get_column("reason") if with_reasons else None
        slow_rows = _slow_rows(frame, series, odd)
    else:
        sent, reasons = _by_distinct_value(series, field, platform, region)
        slow_rows = sorted(odd)
    if slow_rows:  # the per-item reference, for the few rows the vectorized rules do not cover
        outcomes = [normalize(values[i], field, platform, region) for i in slow_rows]
        index = pl.Series(slow_rows, dtype=pl.UInt32)
        sent = sent.scatter(index, pl.Series([o[0] for o in outcomes], dtype=pl.String))
        if reasons is not None:
            fixed = pl.Series([None if o[1] is None else o[1].value for o in outcomes])
            reasons = reasons.scatter(index, fixed.cast(pl.String))
    return sent, reasons if with_reasons else None


def _pieces(
    values: Values, field: Field, platform: SyncPlatform
) -> Iterator[tuple[int, pl.Series, list[int], pl.DataFrame]]:
    """`_collect` of consecutive slices of the values (offset, column, odd rows, frame), in
    order. The slices are evaluated on worker threads while the caller uses the ones before
    (Polars releases the GIL while it works)."""
    if not isinstance(values, list | tuple | pl.Series):
        values = list(values)  # a Sequence need not slice
    size = len(values)
    if size <= _PIECE:
        series, odd = _to_series(values)
        yield 0, series, odd, _collect(series, field, platform, False)
        return
    with ThreadPoolExecutor(max_workers=_WORKERS, thread_name_prefix="hash_many") as worker:
        pending: list[tuple[int, pl.Series, list[int], Future[pl.DataFrame]]] = []
        try:
            # The first piece goes off at once; the others are slices of one column of all the
            # values (slicing a list of many values costs about as much as a column of them).
            series, odd = _to_series(values[:_PIECE])
            pending.append(
                (0, series, odd, worker.submit(_collect, series, field, platform, False))
            )
            whole, odd = _to_series(values)
            for start in range(_PIECE, size, _PIECE):
                series = whole.slice(start, _PIECE)
                own = [i - start for i in odd if start <= i < start + _PIECE]
                frame = worker.submit(_collect, series, field, platform, False)
                pending.append((start, series, own, frame))
            for start, series, odd, frame in pending:
                yield start, series, odd, frame.result()
        finally:
            for *_, frame in pending:
                frame.cancel()


def _collect(
    series: pl.Series, field: Field, platform: SyncPlatform, with_reasons: bool
) -> pl.DataFrame:
    """`_vectorized`, collected on the streaming engine (which spreads it over the cores)."""
    return _vectorized(series, field, platform, with_reasons).collect(engine="streaming")


def _slow_rows(frame: pl.DataFrame, series: pl.Series, odd: list[int]) -> list[int]:
    """The rows the per-item reference settles: the `slow` column's, the values Polars cannot
    hold, and the `accented` rows (non-ASCII emails) but those of ASCII and Latin-1 letters,
    which Polars has done right (see `_LATIN1_LETTERS`)."""
    slow_rows: list[int] = frame.get_column("slow").arg_true().to_list()
    if "accented" in frame.columns:
        accented = frame.get_column("accented").arg_true()
        texts = series.gather(accented).to_list()
        slow_rows += [
            i
            for i, text in zip(accented.to_list(), texts, strict=True)
            if not _LATIN1_LETTERS.fullmatch(text.strip(WHITESPACE))
        ]
        slow_rows.sort()  # two ascending lists, merged
    if "invalid" in frame.columns:  # Google removes whitespace inside: the reference does that
        invalid = frame.get_column("invalid")
        rows = invalid.is_not_null().arg_true()
        spaced = invalid.gather(rows).str.contains(f"[{_WS}]")
        slow_rows = sorted(set(slow_rows).union(rows.filter(spaced).to_list()))
    return sorted(set(slow_rows) | set(odd)) if odd else slow_rows


def _to_series(values: Values) -> tuple[pl.Series, list[int]]:
    """A String column of the values, and the positions of values Polars cannot hold as text
    (non-strings, lone surrogates): those are left null here and settled by the reference."""
    if isinstance(values, pl.Series):
        return values.cast(pl.String).rename("v"), []
    try:
        return pl.Series("v", values, dtype=pl.String, strict=True), []
    except Exception:  # rare: a non-str or unencodable value somewhere in the batch
        odd = [
            i
            for i, v in enumerate(values)
            if v is not None and not (isinstance(v, str) and is_utf8(v))
        ]
        odd_set = set(odd)
        kept = [None if i in odd_set else v for i, v in enumerate(values)]
        return pl.Series("v", kept, dtype=pl.String), odd


def _vectorized(
    series: pl.Series, field: Field, platform: SyncPlatform, with_reasons: bool
) -> pl.LazyFrame:
    """The columns `sent`, `slow` (needs the per-item reference) and, when asked, `reason`, for
    the fields done in Polars."""
    raw, text = pl.col("v"), pl.col("t")
    # Staged columns are computed once, however many expressions read them. Every non-ASCII row
    # but a phone's goes to the reference, so Rust's Unicode trim (the cheaper one) is the ASCII
    # trim on the rows whose result is kept; phones trim ASCII whitespace only (see `slow`).
    trimmed = (
        raw.str.strip_chars(ASCII_WHITESPACE) if field is Field.PHONE else raw.str.strip_chars()
    )
    frame = series.to_frame().lazy().with_columns(trimmed.alias("t"))
    if field is not Field.PHONE:
        frame = frame.with_columns(text.str.to_lowercase().alias("lower"))
    if field is Field.EMAIL:
        frame = frame.with_columns(pl.col("lower").str.contains(_EMAIL).alias("valid"))
        if platform is GOOGLE:
            frame = frame.with_columns(**_gmail_columns()).with_columns(local=_gmail_local())
    empty = text.is_null() | (text.str.len_bytes() == 0)
    non_ascii = raw.str.len_bytes() != raw.str.len_chars()
    hashed = is_hashed(platform, field)
    # Phones: a pre-hashed digest is rare there; it is left to the reference (a slow row).
    check_prehashed = hashed and field is not Field.PHONE
    prehashed = text.str.contains(_PREHASHED) if check_prehashed else pl.lit(False)
    value, usable, invalid, slow = _RULES[field](text, platform)
    columns = []
    if field is Field.PHONE:  # non-ASCII phones never look like stored E.164: parsed anyway
        slow = ~empty & slow
    elif field is Field.EMAIL:  # see `_slow_rows`: these may be right already
        columns.append(non_ascii.alias("accented"))
        if platform is GOOGLE:  # the invalid rows, which may hold whitespace: see `_slow_rows`
            columns.append(pl.when(~pl.col("valid")).then(pl.col("lower")).alias("invalid"))
    else:  # the reference settles non-ASCII rows (NFC, Unicode case and whitespace)
        slow = slow | non_ascii
    digest = _sha256(value) if hashed else value
    # An empty or null row is never `usable` nor `prehashed`, so it falls through to None.
    sent = (
        pl.when(prehashed)
        .then(pl.col("lower") if check_prehashed else None)
        .when(usable)
        .then(digest)
        .otherwise(None)
    )
    columns += [sent.alias("sent"), slow.alias("slow")]
    if with_reasons:
        reason = (
            pl.when(empty)
            .then(pl.lit(Reason.EMPTY.value))
            .when(prehashed | usable)
            .then(None)
            .otherwise(invalid)
        )
        columns.append(reason.alias("reason"))
    return frame.select(columns)


def _sha256(expr: pl.Expr) -> pl.Expr:
    """Lowercase hex SHA-256 of each UTF-8 string, by the polars-hash plugin (Rust `sha2`)."""
    plugin: Any = expr  # polars-hash registers `chash` at import; type checkers cannot see it
    result: pl.Expr = plugin.chash.sha2_256()
    return result


_Exprs = tuple[pl.Expr, pl.Expr, pl.Expr, pl.Expr]  # value, usable, invalid reason, slow


def _gmail_columns() -> dict[str, pl.Expr]:
    """Which valid addresses are at gmail.com and at googlemail.com (Google's rewrite)."""
    lower, valid = pl.col("lower"), pl.col("valid")
    return {
        "gmail": valid & lower.str.ends_with("@gmail.com"),
        "googlemail": valid & lower.str.ends_with("@googlemail.com"),
    }


def _gmail_local() -> pl.Expr:
    """The local part of a gmail address without its dots and +tag; '' for the other rows.

    A string expression costs about as much on a row it leaves alone as on one it changes, and
    less on an empty string: the other rows are blanked before the rewrite."""
    gmail = pl.col("gmail") | pl.col("googlemail")
    return (
        pl.when(gmail)
        .then(pl.col("lower"))
        .otherwise(pl.lit(""))
        .str.strip_suffix("@gmail.com")
        .str.strip_suffix("@googlemail.com")
        .str.replace(r"\+.*", "")  # to the end: a valid address has no newline
        .str.replace_all(".", "", literal=True)
    )


def _email(text: pl.Expr, platform: SyncPlatform) -> _Exprs:
    # `valid` has no whitespace inside; Google removes it, so its invalid rows with some are
    # left to the reference (see `_slow_rows`).
    valid, invalid = pl.col("valid"), pl.lit(Reason.INVALID_EMAIL.value)
    if platform is GOOGLE:  # gmail.com / googlemail.com: no dots, no +tag in the local part
        gmail, googlemail, local = pl.col("gmail"), pl.col("googlemail"), pl.col("local")
        email = (
            pl.when(gmail)
            .then(pl.concat_str(local, pl.lit("@gmail.com")))
            .when(googlemail)
            .then(pl.concat_str(local, pl.lit("@googlemail.com")))
            .otherwise(pl.col("lower"))
        )
        emptied = (gmail | googlemail) & (local.str.len_bytes() == 0)
        return email, valid & ~emptied, invalid, pl.lit(False)
    if platform is TIKTOK:  # the first + of the local part, to the @, on any domain
        email = pl.col("lower").str.replace(r"\+[^@]*@", "@")
        return email, valid & ~email.str.starts_with("@"), invalid, pl.lit(False)
    # The pattern has already checked the local part is not empty.
    return pl.col("lower"), valid, invalid, pl.lit(False)


def _mobile_id(text: pl.Expr, platform: SyncPlatform) -> _Exprs:
    zeroed = text == ZERO_MAID
    usable = ~zeroed & text.str.contains(_UUID)
    value = text.str.to_uppercase() if platform is GOOGLE else pl.col("lower")
    invalid = (
        pl.when(zeroed)
        .then(pl.lit(Reason.ZEROED_MAID.value))
        .otherwise(pl.lit(Reason.INVALID_MOBILE_ID.value))
    )
    return value, usable, invalid, pl.lit(False)


@cache
def _stored_e164_keys() -> list[int]:
    return sorted(e164_table().head_length_keys())


def _phone(text: pl.Expr, platform: SyncPlatform) -> _Exprs:
    """Stored E.164 as `E164Table.canonical` tells it, vectorized: `+` and digits whose first
    four and count are among `E164Table.head_length_keys`."""
    digits = text.str.slice(1)
    head = digits.str.slice(0, 4).cast(pl.Int64, strict=False)
    shaped = text.str.contains(r"^\+[1-9][0-9]{3,}$")
    stored = shaped & (head * 100 + digits.str.len_bytes()).is_in(_stored_e164_keys())
    value = text if platform is GOOGLE else digits
    return (
        value,
        stored.fill_null(False),
        pl.lit(INVALID[Field.PHONE].value),
        ~stored.fill_null(False),
    )


def _external_id(text: pl.Expr, platform: SyncPlatform) -> _Exprs:
    return text, text.str.len_bytes() > 0, pl.lit(None, dtype=pl.String), pl.lit(False)


def _name(text: pl.Expr, platform: SyncPlatform, field: Field) -> _Exprs:
    name = (
        pl.col("lower")
        .str.replace_all(_ASCII_PUNCTUATION, "")
        .str.replace_all(f"[{_WS}]+", " ")
        .str.strip_chars(" ")
    )
    return name, name.str.len_bytes() > 0, pl.lit(INVALID[field].value), pl.lit(False)


def _first_name(text: pl.Expr, platform: SyncPlatform) -> _Exprs:
    return _name(text, platform, Field.FIRST_NAME)


def _last_name(text: pl.Expr, platform: SyncPlatform) -> _Exprs:
    return _name(text, platform, Field.LAST_NAME)


def _city(text: pl.Expr, platform: SyncPlatform) -> _Exprs:
    city = pl.col("lower").str.replace_all("[^a-z]", "")
    return city, city.str.len_bytes() > 0, pl.lit(INVALID[Field.CITY].value), pl.lit(False)


def _zip(text: pl.Expr, platform: SyncPlatform) -> _Exprs:
    if platform is GOOGLE:  # postalCode: trimmed, raw
        return text, text.str.len_bytes() > 0, pl.lit(None, dtype=pl.String), pl.lit(False)
    code = pl.col("lower").str.replace_all(f"[{_WS}-]", "")
    code = pl.when(code.str.contains(r"^(?:[0-9]{5}|[0-9]{9})$")).then(code.str.slice(0, 5))
    code = code.otherwise(pl.col("lower").str.replace_all(f"[{_WS}-]", ""))
    return code, code.str.len_bytes() > 0, pl.lit(INVALID[Field.ZIP].value), pl.lit(False)


_RULES = {
    Field.EMAIL: _email,
    Field.PHONE: _phone,
    Field.MOBILE_ID: _mobile_id,
    Field.EXTERNAL_ID: _external_id,
    Field.FIRST_NAME: _first_name,
    Field.LAST_NAME: _last_name,
    Field.CITY: _city,
    Field.ZIP: _zip,
}
"""The fields done in Polars (country, state and gender have few distinct values: see below)."""


def _by_distinct_value(
    series: pl.Series, field: Field, platform: SyncPlatform, region: str
) -> tuple[pl.Series, pl.Series]:
    """Run the reference once per distinct value and join the results back."""
    distinct = series.drop_nulls().unique()
    outcomes = [normalize(v, field, platform, region) for v in distinct.to_list()]
    sent_of = dict(zip(distinct.to_list(), [o[0] for o in outcomes], strict=True))
    reason_of = dict(
        zip(
            distinct.to_list(),
            [None if o[1] is None else o[1].value for o in outcomes],
            strict=True,
        )
    )
    sent = series.replace_strict(sent_of, default=None, return_dtype=pl.String)
    reasons = series.replace_strict(reason_of, default=None, return_dtype=pl.String)
    reasons = pl.select(
        pl.when(series.is_null()).then(pl.lit(Reason.EMPTY.value)).otherwise(reasons)
    ).to_series()
    return sent.rename("sent"), reasons.rename("reason")
