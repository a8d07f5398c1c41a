"""The fast bulk path: the rules of `rules.py` over millions of values, in Polars and C.

How each field is done (measured by `make bench`):
- `hash_many` of emails and of the mobile ids a platform hashes, given as a list: the ASCII
  rows in C (`_digest.emails` / `_digest.mobile_ids`: trim, lowercase, check, SHA-256 on every
  core, then the strings), the other rows as below. Elsewhere, where the compiled `_digest` is
  built, `hash_many` hashes with OpenSSL (`_digest.sha256_digests`) rather than the plugin.
- email, mobile id, external id: Polars string expressions and SHA-256 from the polars-hash
  plugin over the ASCII rows (and the emails of Latin-1 letters), on both cores (the streaming
  engine); the rare other non-ASCII row (NFC, Unicode case and whitespace) goes through the
  per-item reference. `hash_many` cuts a long batch into pieces: Polars works on the next
  pieces (background queries) while the caller's thread turns the finished ones into Python
  strings. Google's gmail rewrite runs on the rows it changes only (`_on_rows`).
- phone: stored E.164 (`+16505551212`, see `phone.E164Table`) is only formatted and hashed in
  Polars; a pre-hashed digest passes through; anything else is parsed per item (~20 µs).
- the enhanced fields (names, city, state, zip, country, gender): few distinct values, so the
  reference runs once per distinct value and the results are joined back.
Every path agrees with `rules.normalize` value for value; the tests check it on random input.
"""

from __future__ import annotations

import re
from collections import Counter, deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from functools import cache
from types import ModuleType
from typing import TYPE_CHECKING, Any

import polars as pl
import polars_hash  # noqa: F401  (registers the `chash` namespace on expressions)

from audience_sync.domain.models import IdentifierType
from audience_sync.identifiers.fields import INVALID, Field, Reason, as_field
from audience_sync.identifiers.phone import e164_table
from audience_sync.identifiers.platforms import EmailRule, PlatformRules, as_platform
from audience_sync.identifiers.rules import ZERO_MAID, Outcome, Platform, is_hashed, normalize
from audience_sync.identifiers.text import ASCII_WHITESPACE, WHITESPACE, is_utf8

if TYPE_CHECKING:
    from polars.lazyframe.in_process import InProcessQuery

Values = Sequence[str | None] | pl.Series

_WS = r"\t\n\x0B\x0C\r "  # ASCII_WHITESPACE as a regex class body
_PREHASHED = r"^[0-9a-fA-F]{64}$"
_EMAIL = rf"^[^@{_WS}]+@[^@{_WS}.]+(?:\.[^@{_WS}.]+)+$"
# Google's rows not sent as lowercased: the valid ones with a dot or +tag in the local part at
# gmail.com or googlemail.com (rewritten in Polars), the invalid ones with whitespace inside
# (which Google removes: valid ones have none). One pattern costs less than two checks.
_GOOGLE_REDO = rf"[{_WS}]|[.+][^@]*@g(?:oogle)?mail\.com$"
_UUID = r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$"
# The ASCII characters of Unicode's punctuation categories (P*); `$+<=>^`|~` are symbols (S*).
_ASCII_PUNCTUATION = "[" + "".join(f"\\x{ord(c):02X}" for c in "!\"#%&'()*,-./:;?@[\\]_{}") + "]"
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
    """`hash_many` of emails and hashed mobile ids: the ASCII rows normalized and hashed in C
    (see `_digest.c`), a piece at a time (Python's other threads get the GIL between pieces);
    the other rows (non-ASCII, not a str) on the Polars path. Mobile ids sent as they are (Meta,
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
        return _DIGEST.emails(values, int(platform.email))  # type: ignore[no-any-return]
    return _DIGEST.mobile_ids(values)  # type: ignore[no-any-return]


def _in_polars(
    values: Values, field: Field, target: PlatformRules, region: str
) -> list[str | None]:
    """`hash_many` on the Polars path."""
    if field not in _RULES or field not in target.supported:
        column, _ = _run(values, field, target, region, False)
        return column.to_list()
    # As `_run`, but the few slow rows are patched into the list, not scattered into the column;
    # and a piece at a time, so that Polars works on the next piece while this thread (holding
    # the GIL) turns one into Python strings.
    sent: list[str | None] = []
    settle = _reference(field, target, region)
    hash_later = _DIGEST is not None and is_hashed(target, field)
    pieces = _pieces(values, field, target, hash_later)
    for start, series, odd, frame, part in _as_lists(pieces, hash_later):
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
    series, odd = _to_series(values)
    size = len(series)
    if field not in platform.supported:
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
        settle = _reference(field, platform, region)
        outcomes = [settle(values[i]) for i in slow_rows]
        index = pl.Series(slow_rows, dtype=pl.UInt32)
        sent = sent.scatter(index, pl.Series([o[0] for o in outcomes], dtype=pl.String))
        if reasons is not None:
            fixed = pl.Series([None if o[1] is None else o[1].value for o in outcomes])
            reasons = reasons.scatter(index, fixed.cast(pl.String))
    return sent, reasons if with_reasons else None


Piece = tuple[int, pl.Series, list[int], pl.DataFrame]  # offset, column, odd rows, frame
ListedPiece = tuple[int, pl.Series, list[int], pl.DataFrame, list[str | None]]  # + `sent`


def _as_lists(pieces: Iterator[Piece], hash_later: bool) -> Iterator[ListedPiece]:
    """Each piece with its `sent` column as a list. With `hash_later`, OpenSSL hashes a piece's
    `sent` on a thread of its own, without the GIL, while this thread makes the strings of the
    piece before (see `_digest.c`); and the pre-hashed digests, left out of `sent`, are put
    back in their rows."""
    if not hash_later:
        for piece in pieces:
            yield *piece, piece[3].get_column("sent").to_list()
        return
    assert _DIGEST is not None
    digest = _DIGEST

    def finish(piece: Piece, digests: Future[bytes]) -> ListedPiece:
        sent: list[str | None] = digest.hex_list(digests.result())
        frame = piece[3]
        if "prehashed" in frame.columns:
            given = frame.get_column("prehashed")
            rows = given.is_not_null().arg_true()
            for i, value in zip(rows.to_list(), given.gather(rows).to_list(), strict=True):
                sent[i] = value
        return *piece, sent

    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="sha256") as pool:
        queued: deque[tuple[Piece, Future[bytes]]] = deque()
        for piece in pieces:
            queued.append((piece, pool.submit(digest.sha256_digests, piece[3].get_column("sent"))))
            if len(queued) > 1:
                yield finish(*queued.popleft())
        while queued:
            yield finish(*queued.popleft())


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


def _pieces(
    values: Values, field: Field, platform: PlatformRules, hash_later: bool
) -> Iterator[Piece]:
    """`_collect` of consecutive slices of the values (offset, column, odd rows, frame), in
    order. The slices are all sent off at once as background queries, run by Polars' threads
    while the caller uses the ones before. Two Python worker threads did it ~10% slower on
    Google's emails (each needs the GIL between slices, which the caller holds while it makes
    strings); so did slices of 125,000 (measured on 1M emails, 2 cores)."""
    if not isinstance(values, list | tuple | pl.Series):
        values = list(values)  # a Sequence need not slice
    size = len(values)
    if size <= _PIECE:
        series, odd = _to_series(values)
        yield 0, series, odd, _collect(series, field, platform, False, hash_later)
        return
    pending: list[tuple[int, pl.Series, list[int], InProcessQuery]] = []
    try:
        # The first piece goes off at once; the others are slices of one column of all the
        # values (slicing a list of many values costs about as much as a column of them).
        series, odd = _to_series(values[:_PIECE])
        pending.append((0, series, odd, _background(series, field, platform, hash_later)))
        whole, odd = _to_series(values)
        for start in range(_PIECE, size, _PIECE):
            series = whole.slice(start, _PIECE)
            own = [i - start for i in odd if start <= i < start + _PIECE]
            pending.append((start, series, own, _background(series, field, platform, hash_later)))
        for start, series, odd, query in pending:
            yield start, series, odd, query.fetch_blocking()
    finally:
        for *_, query in pending:
            query.cancel()


def _background(
    series: pl.Series, field: Field, platform: PlatformRules, hash_later: bool
) -> InProcessQuery:
    """`_collect`, started: `fetch_blocking` waits for the frame (without the GIL)."""
    query = _vectorized(series, field, platform, False, hash_later)
    return query.collect(engine="streaming", background=True)


def _collect(
    series: pl.Series,
    field: Field,
    platform: PlatformRules,
    with_reasons: bool,
    hash_later: bool = False,
) -> pl.DataFrame:
    """`_vectorized`, collected on the streaming engine (which spreads it over the cores)."""
    query = _vectorized(series, field, platform, with_reasons, hash_later)
    return query.collect(engine="streaming")


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
    series: pl.Series,
    field: Field,
    platform: PlatformRules,
    with_reasons: bool,
    hash_later: bool = False,
) -> pl.LazyFrame:
    """The columns `sent`, `slow` (needs the per-item reference) and, when asked, `reason`, for
    the fields done in Polars. With `hash_later`, `sent` holds what is to be hashed, unhashed,
    and the pre-hashed digests are in a column of their own, `prehashed` (see `_as_lists`)."""
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
        if platform.email is EmailRule.GMAIL:
            redo = pl.col("lower").str.contains(_GOOGLE_REDO).fill_null(False)
            email = _on_rows(pl.col("redo"), pl.col("lower"), _gmail_local)
            frame = frame.with_columns(redo=redo).with_columns(email=email)
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
    else:  # the reference settles non-ASCII rows (NFC, Unicode case and whitespace)
        slow = slow | non_ascii
    # An empty or null row is never `usable` nor `prehashed`, so it is None. The plugin skips
    # nulls (half of them halve its time): only the usable rows are hashed.
    kept = pl.when(usable).then(value)
    if hash_later:
        sent = pl.when(prehashed).then(None).otherwise(kept) if check_prehashed else kept
        if check_prehashed:
            columns.append(pl.when(prehashed).then(pl.col("lower")).alias("prehashed"))
    else:
        sent = _sha256(kept) if hashed else kept
        if check_prehashed:
            sent = pl.when(prehashed).then(pl.col("lower")).otherwise(sent)
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


def _on_rows(rows: pl.Expr, column: pl.Expr, fix: Callable[[pl.Expr], pl.Expr]) -> pl.Expr:
    """The column, with `fix` applied to the `rows` (a Boolean column without nulls) alone.

    A string expression costs about as much on a row it leaves alone (or a blank one) as on one
    it changes: the fixed rows are appended to the column and gathered into their places, for
    ~25 ms a million rows (one thread). Google's gmail rewrite of the benchmark's emails (a
    fifth of the rows) went from ~330 ms to ~160 ms a million so; blanking the other rows, or
    `when(rows).then(...)` to put them back, cost more. Not worth it for one cheap expression
    (TikTok's tag: ~75 ms on every row, ~105 ms on the rows with a +)."""
    fixed = pl.when(rows).then(rows.cum_sum() + pl.len() - 1)  # their place after the column
    index = fixed.otherwise(pl.int_range(pl.len(), dtype=pl.UInt32))
    return column.append(fix(column.filter(rows))).gather(index)


def _gmail_local(lower: pl.Expr) -> pl.Expr:
    """A valid gmail.com or googlemail.com address without the dots and +tag of its local part
    ('@gmail.com' when nothing is left of it; the invalid `redo` rows' results are not used).
    Every dot goes, then the tag, and the domain's only dot is put back: a pattern sparing the
    domain's dot (`$1` replacements, captures) measured 2-4× slower."""
    local = lower.str.replace_all(".", "", literal=True).str.replace(r"\+[^@]*@", "@")
    return pl.concat_str(local.str.strip_suffix("com"), pl.lit(".com"))


def _email(text: pl.Expr, platform: PlatformRules) -> _Exprs:
    # `valid` has no whitespace inside (Google removes it: see `_GOOGLE_REDO`).
    valid, invalid = pl.col("valid"), pl.lit(Reason.INVALID_EMAIL.value)
    if platform.email is EmailRule.GMAIL:  # gmail.com / googlemail.com: no dots, no +tag
        email, redo = pl.col("email"), pl.col("redo")
        # The invalid `redo` rows are those with whitespace inside, which Google removes (and a
        # few that stay invalid): the reference settles them (see `_GOOGLE_REDO`).
        return email, valid & ~email.str.starts_with("@"), invalid, redo & ~valid
    if platform.email is EmailRule.PLUS_TAG:  # the first + of the local part, any domain
        email = pl.col("lower").str.replace(r"\+[^@]*@", "@")
        return email, valid & ~email.str.starts_with("@"), invalid, pl.lit(False)
    # The pattern has already checked the local part is not empty.
    return pl.col("lower"), valid, invalid, pl.lit(False)


def _mobile_id(text: pl.Expr, platform: PlatformRules) -> _Exprs:
    zeroed = text == ZERO_MAID
    usable = ~zeroed & text.str.contains(_UUID)
    value = text.str.to_uppercase() if platform.mobile_id_upper else pl.col("lower")
    invalid = (
        pl.when(zeroed)
        .then(pl.lit(Reason.ZEROED_MAID.value))
        .otherwise(pl.lit(Reason.INVALID_MOBILE_ID.value))
    )
    return value, usable, invalid, pl.lit(False)


@cache
def _stored_e164_keys() -> list[int]:
    return sorted(e164_table().head_length_keys())


def is_stored_e164(text: pl.Expr) -> pl.Expr:
    """`E164Table.canonical(text) == text`, vectorized (never null): `+` and digits whose first
    four and count are among `E164Table.head_length_keys`, so libphonenumber would keep them
    exactly as written and call them possible."""
    digits = text.str.slice(1)
    head = digits.str.slice(0, 4).cast(pl.Int64, strict=False)
    shaped = text.str.contains(r"^\+[1-9][0-9]{3,}$")
    stored = shaped & (head * 100 + digits.str.len_bytes()).is_in(_stored_e164_keys())
    return stored.fill_null(False)


def _phone(text: pl.Expr, platform: PlatformRules) -> _Exprs:
    """Stored E.164 as `E164Table.canonical` tells it (`is_stored_e164`)."""
    stored = is_stored_e164(text)
    value = text if platform.phone_with_plus else text.str.slice(1)
    return (
        value,
        stored,
        pl.lit(INVALID[Field.PHONE].value),
        ~stored,
    )


def _external_id(text: pl.Expr, platform: PlatformRules) -> _Exprs:
    return text, text.str.len_bytes() > 0, pl.lit(None, dtype=pl.String), pl.lit(False)


def _name(text: pl.Expr, platform: PlatformRules, field: Field) -> _Exprs:
    if platform.letters_only_names:  # letters only (rules._first_name); non-ASCII: redone
        name = pl.col("lower").str.replace_all("[^a-z]", "")
    else:
        name = (
            pl.col("lower")
            .str.replace_all(_ASCII_PUNCTUATION, "")
            .str.replace_all(f"[{_WS}]+", " ")
            .str.strip_chars(" ")
        )
    return name, name.str.len_bytes() > 0, pl.lit(INVALID[field].value), pl.lit(False)


def _first_name(text: pl.Expr, platform: PlatformRules) -> _Exprs:
    return _name(text, platform, Field.FIRST_NAME)


def _last_name(text: pl.Expr, platform: PlatformRules) -> _Exprs:
    return _name(text, platform, Field.LAST_NAME)


def _city(text: pl.Expr, platform: PlatformRules) -> _Exprs:
    city = pl.col("lower").str.replace_all("[^a-z]", "")
    return city, city.str.len_bytes() > 0, pl.lit(INVALID[Field.CITY].value), pl.lit(False)


def _zip(text: pl.Expr, platform: PlatformRules) -> _Exprs:
    if platform.raw_zip:  # postalCode: trimmed, raw
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
