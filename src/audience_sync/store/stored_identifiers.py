"""A profile's identifiers as stored: one text in the profile's own row (`profiles.identifiers`).

The text lists the profile's identifiers in its own order, each as four fields — `type` (an
`IdentifierType` value), `value` (as imported, trimmed), `e164` (a phone's parsed number; empty
when it could not be parsed, and for other types), `kind` (a mobile id's `idfa` | `gaid`, or
empty) — fields separated by U+001F (unit separator), identifiers by U+001E (record separator),
the ASCII separators made for this. A value holding U+001B, U+001E or U+001F (none should, but
nothing stops an external id from it) has them written as U+001B followed by U+001B, `^` or `_`,
so the separators stay unambiguous. A profile without identifiers holds ''.

Why a text in the row and not a row per identifier: an import writes every profile's
identifiers, a sync reads them all, and nothing looks a profile up by an identifier. As rows of
a table of their own, a million profiles' ~3 million identifiers were most of an import's time:
~4.5 µs a row on SQLite, ~10 µs on PostgreSQL, where the two foreign-key checks of each row
(~3.7 µs each) cost more than the `COPY` itself. In the profile's row they are one more column of
the same statement. Not JSON: Polars decoded 3 million identifiers from JSON in 4.8–9.4 s, from
this in 0.5 s (encoding: 0.7 s). Both ways are column-wise, never a Python loop.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, NamedTuple

import polars as pl

# The long form readers work with: one row per identifier, in each profile's order.
IDENTIFIER_SCHEMA: dict[str, Any] = {
    "profile_pk": pl.Int64,
    "type": pl.String,
    "value": pl.String,
    "e164": pl.String,
    "kind": pl.String,
}
ITEM = ("type", "value", "e164", "kind")
NONE = ""
FIELD, RECORD, ESCAPE = "\x1f", "\x1e", "\x1b"
_RAW = [ESCAPE, FIELD, RECORD]
_ESCAPED = [ESCAPE + ESCAPE, ESCAPE + "_", ESCAPE + "^"]


def encode(identifiers: pl.DataFrame, key: str) -> pl.DataFrame:
    """(`key`, `identifiers`): the stored text of each key's identifiers (columns `ITEM`, in
    frame order). Keys without identifiers are absent: fill them with `NONE`."""
    item = pl.concat_str(
        pl.col("type"),
        pl.col("value").str.replace_many(_RAW, _ESCAPED),
        pl.col("e164").fill_null(""),
        pl.col("kind").cast(pl.String).fill_null(""),
        separator=FIELD,
    )
    grouped = identifiers.select(key, item.alias("identifiers")).group_by(key, maintain_order=True)
    return grouped.agg("identifiers").with_columns(pl.col("identifiers").list.join(RECORD))


def decode(profiles: pl.DataFrame, types: tuple[str, ...] | None = None) -> pl.DataFrame:
    """The long frame (`IDENTIFIER_SCHEMA`) of the stored texts of `profiles` (`profile_pk`,
    `identifiers`), in their order; `types`: only these identifier types (None: all)."""
    items = (
        profiles.select("profile_pk", pl.col("identifiers").str.split(RECORD))
        .explode("identifiers")
        .filter(pl.col("identifiers") != NONE)
    )
    fields = pl.col("identifiers").str.split_exact(FIELD, len(ITEM) - 1)
    long = items.select("profile_pk", fields.struct.rename_fields(list(ITEM)).struct.unnest())
    if types is not None:
        long = long.filter(pl.col("type").is_in(types))
    return long.select(
        pl.col("profile_pk").cast(pl.Int64),
        "type",
        pl.col("value").str.replace_many(_ESCAPED, _RAW),
        pl.col("e164").replace("", None),
        pl.col("kind").replace("", None),
    )


class StoredIdentifier(NamedTuple):
    type: str
    value: str
    e164: str | None
    kind: str | None


def items(text: str) -> list[StoredIdentifier]:
    """One profile's stored text as a list (for a single profile; readers of many use `decode`)."""
    long = decode(pl.DataFrame({"profile_pk": [0], "identifiers": [text]}))
    return [StoredIdentifier(*row) for row in long.drop("profile_pk").iter_rows()]


def text_of(identifiers: Iterable[tuple[str, str, str | None, str | None]]) -> str:
    """The stored text of (type, value, e164, kind) tuples, in order: `encode` for one profile
    (seeding tests and benchmarks; the importer encodes column-wise)."""
    escape = str.maketrans(dict(zip(_RAW, _ESCAPED, strict=True)))
    return RECORD.join(
        FIELD.join((str(kind), value.translate(escape), e164 or "", str(mobile or "")))
        for kind, value, e164, mobile in identifiers
    )
