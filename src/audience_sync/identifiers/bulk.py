"""The fast bulk path: the rules of `rules.py` over millions of values, in Polars and C.

How each field is done (measured by `make bench`):
- `hash_many` of emails and of the mobile ids a platform hashes, given as a list: the ASCII
  rows in C (`_digest.emails` / `_digest.mobile_ids`: trim, lowercase, check, SHA-256 on every
  core, then the strings), and the non-ASCII emails too (CPython's NFC and lowercase, see
  `_digest.c`); the few other rows as below. Elsewhere, where the compiled `_digest` is
  built, `hash_many` hashes with OpenSSL (`_digest.sha256_digests`) rather than the plugin.
- email, mobile id, external id: Polars string expressions and SHA-256 from the polars-hash
  plugin over the ASCII rows (and the emails of Latin-1 letters), on both cores (the streaming
  engine); the rare other non-ASCII row (NFC, Unicode case and whitespace) goes through the
  per-item reference. `hash_many` cuts a long batch into pieces: Polars works on the next
  pieces (background queries) while the caller's thread turns the finished ones into Python
  strings (`pieces.py`). Google's gmail rewrite runs on the rows it changes only (`_on_rows`).
- phone: stored E.164 (`+16505551212`, see `phone.E164Table`) is only formatted and hashed in
  Polars; a pre-hashed digest passes through; anything else is parsed per item (~20 µs).
- the enhanced fields (names, city, state, zip, country, gender): few distinct values, so the
  reference runs once per distinct value and the results are joined back.
Every path agrees with `rules.normalize` value for value; the tests check it on random input.
The Polars expressions are `vectorized.py`; the pipeline of pieces, `pieces.py`.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from types import ModuleType
from typing import Any

import polars as pl

from audience_sync.domain.models import IdentifierType
from audience_sync.identifiers.fields import Field, Reason, as_field
from audience_sync.identifiers.pieces import as_lists, pieces
from audience_sync.identifiers.platforms import PlatformRules, as_platform
from audience_sync.identifiers.rules import Outcome, Platform, is_hashed, normalize
from audience_sync.identifiers.text import WHITESPACE
from audience_sync.identifiers.vectorized import (
    RULES,
    Values,
    collect,
    is_stored_e164,
    to_series,
)

# The fast path's API; `is_stored_e164` (the import's phone shortcut uses it) is one of the
# Polars expressions of `vectorized.py`.
__all__ = [
    "BulkResult",
    "hash_many",
    "hash_many_with_reasons",
    "hash_series",
    "hash_series_with_reasons",
    "is_stored_e164",
]

# An email whose trimmed text is of these is done right in Polars, non-ASCII as it is: NFC
# leaves such text (and the whitespace trimmed off it) as it is, Rust lowercases it as Python
# does, and no Unicode whitespace is left inside for the ASCII patterns to miss.
_LATIN1_LETTERS = re.compile(r"[\x00-\x7f\xc0-\xd6\xd8-\xf6\xf8-\xff]*")


def _load_digest() -> ModuleType | None:
    """OpenSSL's SHA-256 straight into Python strings, for `hash_many` (see `_digest.c`); None
    when it was not built (no C compiler or OpenSSL headers, see setup.py): then the plugin."""
    try:
        from audience_sync.identifiers import _digest
    except ImportError:
        return None
    return _digest


_DIGEST = _load_digest()
_IN_C = frozenset({Field.EMAIL, Field.MOBILE_ID})  # `hash_many` does their ASCII rows in C
_REASONS = {reason.value: reason for reason in Reason}
# `hash_many`'s pieces: small enough for the list of one to be built while Polars works on the
# next ones, large enough for a query's fixed cost not to matter.
_PIECE = 62_500


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
    platform: Platform,
    *,
    region: str = "US",
) -> list[str | None]:
    """`hash_identifier` for every value, in order, on the fast path."""
    field, target = as_field(identifier_type), as_platform(platform)
    in_c = field in _IN_C and field in target.supported and is_hashed(target, field)
    if in_c and _DIGEST is not None and isinstance(values, list | tuple):
        return _in_c(values, field, target, region)
    return _in_polars(values, field, target, region)


def _in_c(
    values: Sequence[str | None], field: Field, platform: PlatformRules, region: str
) -> list[str | None]:
    """`hash_many` of emails and hashed mobile ids: the ASCII rows and nearly all non-ASCII
    emails normalized and hashed in C (see `_digest.c`), a piece at a time (Python's other
    threads get the GIL between pieces); the rows C defers (Unicode whitespace inside an email,
    non-ASCII mobile ids, not a str) on the Polars path. Mobile ids sent as they are (Meta,
    Google) stay on the Polars path: without hashing to save, C was slower there (reading each
    string again to copy it)."""
    assert _DIGEST is not None
    sent: list[str | None] = []
    deferred: list[int] = []
    for start in range(0, len(values), _PIECE):
        part, rows = _in_c_piece(values[start : start + _PIECE], field, platform)
        deferred += [start + i for i in rows]
        sent += part
    if deferred:
        settled = _in_polars([values[i] for i in deferred], field, platform, region)
        for i, value in zip(deferred, settled, strict=True):
            sent[i] = value
    return sent


def _in_c_piece(
    values: Sequence[str | None], field: Field, platform: PlatformRules
) -> tuple[list[str | None], list[int]]:
    assert _DIGEST is not None
    if field is Field.EMAIL:
        # `_digest.emails`' local_rule is the `EmailRule` value: gmail rewrite 1, +tag 2.
        return _DIGEST.emails(values, int(platform.email))  # type: ignore[no-any-return]
    return _DIGEST.mobile_ids(values)  # type: ignore[no-any-return]


def _in_polars(
    values: Values, field: Field, target: PlatformRules, region: str
) -> list[str | None]:
    """`hash_many` on the Polars path."""
    if field not in RULES or field not in target.supported:
        column, _ = _run(values, field, target, region, False)
        return column.to_list()
    # As `_run`, but the few slow rows are patched into the list, not scattered into the column;
    # and a piece at a time, so that Polars works on the next piece while this thread (holding
    # the GIL) turns one into Python strings.
    sent: list[str | None] = []
    settle = _reference(field, target, region)
    hash_later = _DIGEST is not None and is_hashed(target, field)
    ready = pieces(values, field, target, hash_later, _PIECE)
    digest = _DIGEST if hash_later else None
    for start, series, odd, frame, part in as_lists(ready, digest):
        for i in _slow_rows(frame, series, odd):
            part[i] = settle(values[start + i])[0]
        sent += part
    return sent


def hash_many_with_reasons(
    values: Values,
    identifier_type: Field | IdentifierType | str,
    platform: Platform,
    *,
    region: str = "US",
) -> BulkResult:
    """`hash_many` plus the reason code of every dropped value, for the sync's diagnostics."""
    sent, reasons = _run(values, as_field(identifier_type), as_platform(platform), region, True)
    assert reasons is not None
    return BulkResult(sent.to_list(), [_REASONS.get(r) for r in reasons.to_list()])


def hash_series_with_reasons(
    values: pl.Series,
    identifier_type: Field | IdentifierType | str,
    platform: Platform,
    *,
    region: str = "US",
) -> tuple[pl.Series, pl.Series]:
    """`hash_many_with_reasons` for a Polars column: what is sent and the reason code (its
    string value, null when sent) of each row, as columns."""
    sent, reasons = _run(values, as_field(identifier_type), as_platform(platform), region, True)
    assert reasons is not None
    return sent, reasons


def hash_series(
    values: pl.Series,
    identifier_type: Field | IdentifierType | str,
    platform: Platform,
    *,
    region: str = "US",
) -> pl.Series:
    """`hash_many` for a Polars string column, returning a column (no Python lists in between)."""
    sent, _ = _run(values, as_field(identifier_type), as_platform(platform), region, False)
    return sent


# --- the engine -------------------------------------------------------------------------------


def _run(
    values: Values, field: Field, platform: PlatformRules, region: str, with_reasons: bool
) -> tuple[pl.Series, pl.Series | None]:
    series, odd = to_series(values)
    size = len(series)
    if field not in platform.supported:
        reason = pl.Series("reason", [Reason.UNSUPPORTED.value] * size, dtype=pl.String)
        return pl.Series("sent", [None] * size, dtype=pl.String), reason if with_reasons else None
    if field in RULES:
        frame = collect(series, field, platform, with_reasons)
        sent = frame.get_column("sent")
        reasons = frame.get_column("reason") if with_reasons else None
        slow_rows = _slow_rows(frame, series, odd)
    else:
        sent, reasons = _by_distinct_value(series, field, platform, region)
        slow_rows = sorted(odd)
    if slow_rows:  # the per-item reference, for the few rows the vectorized rules do not cover
        settle = _reference(field, platform, region)
        outcomes = [settle(values[i]) for i in slow_rows]
        index = pl.Series(slow_rows, dtype=pl.UInt32)
        sent = sent.scatter(index, pl.Series([o[0] for o in outcomes], dtype=pl.String))
        if reasons is not None:
            fixed = pl.Series([None if o[1] is None else o[1].value for o in outcomes])
            reasons = reasons.scatter(index, fixed.cast(pl.String))
    return sent, reasons if with_reasons else None


def _reference(field: Field, platform: PlatformRules, region: str) -> Callable[[Any], Outcome]:
    """`normalize`, once per distinct string: the junk of an export repeats (the benchmark's
    0.6% of 'john smith@x.io', settled one by one at ~16 µs, cost Google's emails ~90 ms a
    million on the caller's thread)."""
    outcomes: dict[str, Outcome] = {}

    def settle(value: Any) -> Outcome:
        if not isinstance(value, str):
            return normalize(value, field, platform, region)
        outcome = outcomes.get(value)
        if outcome is None:
            outcome = outcomes[value] = normalize(value, field, platform, region)
        return outcome

    return settle


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
    return sorted(set(slow_rows) | set(odd)) if odd else slow_rows


def _by_distinct_value(
    series: pl.Series, field: Field, platform: PlatformRules, region: str
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
