"""The rules of `rules.py` as Polars expressions, for the fields done in Polars (`bulk.py`)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from functools import cache
from typing import TYPE_CHECKING, Any

import polars as pl
import polars_hash  # noqa: F401  (registers the `chash` namespace on expressions)

from audience_sync.identifiers.fields import INVALID, Field, Reason
from audience_sync.identifiers.phone import e164_table
from audience_sync.identifiers.platforms import EmailRule, PlatformRules
from audience_sync.identifiers.rules import ZERO_MAID, is_hashed
from audience_sync.identifiers.text import ASCII_WHITESPACE, is_utf8

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


def to_series(values: Values) -> tuple[pl.Series, list[int]]:
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


def background(
    series: pl.Series, field: Field, platform: PlatformRules, hash_later: bool
) -> InProcessQuery:
    """`collect`, started: `fetch_blocking` waits for the frame (without the GIL)."""
    query = lazy_columns(series, field, platform, False, hash_later)
    return query.collect(engine="streaming", background=True)


def collect(
    series: pl.Series,
    field: Field,
    platform: PlatformRules,
    with_reasons: bool,
    hash_later: bool = False,
) -> pl.DataFrame:
    """`lazy_columns`, collected on the streaming engine (which spreads it over the cores)."""
    query = lazy_columns(series, field, platform, with_reasons, hash_later)
    return query.collect(engine="streaming")


def lazy_columns(
    series: pl.Series,
    field: Field,
    platform: PlatformRules,
    with_reasons: bool,
    hash_later: bool = False,
) -> pl.LazyFrame:
    """The columns `sent`, `slow` (needs the per-item reference) and, when asked, `reason`, for
    the fields done in Polars. With `hash_later`, `sent` holds what is to be hashed, unhashed,
    and the pre-hashed digests are in a column of their own, `prehashed` (see `pieces.as_lists`)."""
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
    value, usable, invalid, slow = RULES[field](text, platform)
    columns = []
    if field is Field.PHONE:  # non-ASCII phones never look like stored E.164: parsed anyway
        slow = ~empty & slow
    elif field is Field.EMAIL:  # see `bulk._slow_rows`: these may be right already
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


RULES = {
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
