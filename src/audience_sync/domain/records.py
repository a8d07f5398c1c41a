"""A record: what one upload row carries, as canonical text, its SHA-256 (`record_hash`) and that
hash's first 128 bits as two integer keys. The sync plans with them (`sync.plan`) and the store
keeps them (`store.snapshot`); the text and hash must never change, or every stored snapshot
would stop matching.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Sequence
from typing import Any

import polars as pl
import polars_hash  # noqa: F401  (registers the `chash` namespace on expressions)

ON = "record_hash"
KEYS = ("k1", "k2")  # the first 128 bits of `record_hash` as two UInt64 columns


def hash_keys(column: str = ON) -> list[pl.Expr]:
    """`k1`, `k2`: the first 32 hex digits of a SHA-256 as integers. Two distinct records share
    them with odds of about n²/2¹²⁹ (10⁻²⁵ for ten million records)."""
    digits = pl.col(column).str
    return [
        digits.slice(16 * i, 16).str.to_integer(base=16, dtype=pl.UInt64).alias(name)
        for i, name in enumerate(KEYS)
    ]


def encode_record(pairs: Sequence[tuple[str, str]]) -> tuple[str, str]:
    """A record's canonical text (sorted `[key, value]` pairs as JSON) and its SHA-256."""
    text = record_text(pairs)
    return hashlib.sha256(text.encode()).hexdigest(), text


_NEEDS_ESCAPE = re.compile(r'[\x00-\x1f"\\]')


def record_text(pairs: Sequence[tuple[str, str]]) -> str:
    """A record's canonical text: `json.dumps(sorted(pairs), separators=(",", ":"),
    ensure_ascii=False)`, built by joining strings when no character needs escaping (digests
    and keys never do), which is several times faster. The text is what `record_hash` hashes,
    so it must never change: a property test holds the two equal."""
    ordered = sorted(pairs)
    flat = [item for pair in ordered for item in pair]
    if all(type(item) is str for item in flat) and not _NEEDS_ESCAPE.search("".join(flat)):
        return "[" + ",".join([f'["{key}","{value}"]' for key, value in ordered]) + "]"
    return json.dumps(ordered, separators=(",", ":"), ensure_ascii=False)


def record_hashes(texts: pl.Expr) -> pl.Expr:
    """SHA-256 (lowercase hex) of each record text, as `encode_record` computes it."""
    plugin: Any = texts  # polars-hash registers `chash` at import; type checkers cannot see it
    hashed: pl.Expr = plugin.chash.sha2_256()
    return hashed


def decode_record(text: str) -> list[tuple[str, str]]:
    """`record_text`'s pairs back. Text without a backslash has no escaped character, so no
    quote inside a key or value: it is split on the separators (several times `json.loads`)."""
    if "\\" in text or len(text) < 4:
        return [(key, value) for key, value in json.loads(text)]
    flat = iter(text[3:-3].replace('"],["', '","').split('","'))  # key, value, key, value, …
    return list(zip(flat, flat, strict=True))


def owned_text(frame: pl.DataFrame) -> pl.DataFrame:
    """`frame` with its text columns (record hashes, record texts) copied into buffers of their
    own. Rows filtered or gathered from a larger frame keep views into its whole text buffer
    (Polars' string views): a few rows kept from each part or batch read kept every one alive.
    Measured: the 10M PostgreSQL update's process grew by ~630 MB over the removed records'
    reads; the same loop alone, over 200 parts of 25,000 records with 0.75% of rows kept, +555
    MB gathered, +10 MB copied."""
    text = [
        pl.concat_str([pl.col(name), pl.lit("")]).alias(name)
        for name, kind in frame.schema.items()
        if kind == pl.String
    ]
    return frame.with_columns(text)
