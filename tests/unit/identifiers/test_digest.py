"""The compiled `_digest`: OpenSSL's SHA-256 of a Polars String column, as hex strings."""

from __future__ import annotations

import hashlib
from types import ModuleType

import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st


def expected(values: list[str | None]) -> list[str | None]:
    return [None if v is None else hashlib.sha256(v.encode()).hexdigest() for v in values]


def hex_digests(digest: ModuleType, column: pl.Series) -> list[str | None]:
    result: list[str | None] = digest.hex_list(digest.sha256_digests(column))
    return result


@settings(
    max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(values=st.lists(st.one_of(st.none(), st.text(max_size=40)), max_size=50))
def test_every_row_is_hashed_as_hashlib_does(
    openssl_digest: ModuleType, values: list[str | None]
) -> None:
    assert hex_digests(openssl_digest, pl.Series(values, dtype=pl.String)) == expected(values)


def test_short_rows_inline_and_long_rows_in_buffers(openssl_digest: ModuleType) -> None:
    # Arrow string_view keeps up to 12 bytes in the view itself, longer text in a data buffer.
    values: list[str | None] = ["", "a" * 12, "b" * 13, "é" * 6, "é" * 7, None, "x" * 5000]
    assert hex_digests(openssl_digest, pl.Series(values)) == expected(values)


def test_a_slice_and_a_column_of_several_chunks(openssl_digest: ModuleType) -> None:
    values: list[str | None] = [f"row {i}" * (i % 4) if i % 7 else None for i in range(300)]
    column = pl.Series(values)
    assert hex_digests(openssl_digest, column.slice(101, 150)) == expected(values[101:251])
    parts = pl.concat([column.slice(0, 100), column.slice(100)], rechunk=False)
    assert parts.n_chunks() == 2
    assert hex_digests(openssl_digest, parts) == expected(values)


def test_an_empty_column(openssl_digest: ModuleType) -> None:
    assert hex_digests(openssl_digest, pl.Series([], dtype=pl.String)) == []


def test_what_is_not_a_string_column_is_refused_with_a_clear_error(
    openssl_digest: ModuleType,
) -> None:
    with pytest.raises(TypeError, match="Polars String column"):
        openssl_digest.sha256_digests(pl.Series([1, 2, 3]))
    with pytest.raises(TypeError, match="bytes sha256_digests returns"):
        openssl_digest.hex_list(b"x" * 34)
