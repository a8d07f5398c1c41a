"""The compiled `_digest`: OpenSSL's SHA-256 of a Polars String column, as hex strings."""

from __future__ import annotations

import hashlib
import random
import unicodedata
from types import ModuleType

import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from audience_sync.domain.models import SyncPlatform
from audience_sync.identifiers import Field, hash_many, normalize


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


# --- hash_many's ASCII emails and mobile ids, done in C ----------------------------------------

ascii_emails = st.text(alphabet="aB9.+_-@ \t\r\x0b\x0c\x1c", max_size=14).flatmap(
    lambda local: st.sampled_from(
        ["gmail.com", "GoogleMail.com", "gmail.co", "x.gmail.com", "b.c", "b..c", "b.", ""]
    ).map(lambda domain: local + domain)
)
ascii_mobile_ids = st.one_of(
    st.uuids().map(str),
    st.uuids().map(lambda u: f" {str(u).upper()}\r\n"),
    st.text(alphabet="0aF-g ", min_size=30, max_size=40),
    st.just("00000000-0000-0000-0000-000000000000"),
)


@pytest.mark.parametrize("platform", list(SyncPlatform))
@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(data=st.data())
def test_ascii_rows_in_c_equal_the_reference(
    openssl_digest: ModuleType, platform: SyncPlatform, data: st.DataObject
) -> None:
    for field, values in (
        (Field.EMAIL, ascii_emails),
        (Field.MOBILE_ID, ascii_mobile_ids),
    ):
        batch = data.draw(st.lists(st.one_of(values, st.none()), max_size=20))
        assert hash_many(batch, field, platform) == [
            normalize(v, field, platform)[0] for v in batch
        ]


def test_rows_c_leaves_to_polars_and_many_rows_on_several_threads(
    openssl_digest: ModuleType,
) -> None:
    rnd = random.Random(5)
    pool: list[str | None] = [
        None,
        "",
        " x@Y.io ",
        "é@b.fr",
        "\u3000a@b.co",
        "a" * 2000 + "@b.co",  # longer than C takes
        "j.o+x@gmail.com",
        "6D92078A-8246-4BA4-AE5B-76104861E7DC",
        " 6d92078a-8246-4ba4-ae5b-76104861e7dc\u3000",
        "A" * 64,
    ]
    values = [rnd.choice(pool) for _ in range(40_000)]  # several threads' shares
    for platform in SyncPlatform:
        for field in (Field.EMAIL, Field.MOBILE_ID):
            expected = [normalize(v, field, platform)[0] for v in values]
            assert hash_many(values, field, platform) == expected
            assert hash_many(tuple(values), field, platform) == expected


def test_a_value_that_is_not_a_str_is_left_to_the_reference(openssl_digest: ModuleType) -> None:
    values = ["a@b.co", 42, b"a@b.co", None]
    assert hash_many(values, "email", "meta") == [  # type: ignore[arg-type]
        hashlib.sha256(b"a@b.co").hexdigest(),
        None,
        None,
        None,
    ]


# Non-ASCII emails: C takes them after CPython's NFC, lowercasing them itself (see `_digest.c`).
# The alphabet holds the traps: upper case of other scripts, İ and Σ (whose `str.lower` is not
# one code point to one), combining marks and Hangul jamo (NFC composes them), singletons NFC
# replaces (Å U+212B, Ω U+2126), Unicode whitespace, a lone surrogate, and the email's ASCII
# punctuation.
_PIECES = [
    *"aZ9.+@ \t\xa0\u3000\u2028\x85éÉßẞİıΣσςÅΩǅÿŸ例え\U0001d400Ꭰꭰ\ud800",
    "e\u0301",  # NFC: é
    "A\u030a",  # NFC: Å
    "\u1100\u1161",  # NFC: a Hangul syllable
    "\u212b",  # NFC: Å (a singleton)
    "\u0327\u0301",  # marks alone
    "aΣ",  # a final sigma when nothing cased follows
]
unicode_text = st.lists(
    st.one_of(st.sampled_from(_PIECES), st.characters(codec="utf-8")), max_size=8
).map("".join)
unicode_emails = st.one_of(
    st.tuples(unicode_text, unicode_text, st.sampled_from(["", ".de", ".jp", ".COM"])).map(
        lambda parts: f"{parts[0]}@{parts[1]}{parts[2]}"
    ),
    st.tuples(unicode_text, st.sampled_from(["gmail.com", "Gmail.com", "müller.de"])).map(
        lambda parts: f"{parts[0]}@{parts[1]}"
    ),
    unicode_text,
)


@pytest.mark.parametrize("platform", list(SyncPlatform))
@settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(batch=st.lists(st.one_of(unicode_emails, st.none()), max_size=20))
def test_non_ascii_emails_in_c_equal_the_reference(
    openssl_digest: ModuleType, platform: SyncPlatform, batch: list[str | None]
) -> None:
    assert hash_many(batch, Field.EMAIL, platform) == [
        normalize(v, Field.EMAIL, platform)[0] for v in batch
    ]


ASSIGNED = [
    chr(c) for c in range(0x80, 0x110000) if unicodedata.category(chr(c)) not in ("Cn", "Co", "Cs")
]


@pytest.mark.parametrize(
    "template",
    [
        "Ab{c}z@x.io",  # lowercased by C
        "{c}Σ@{c}.io",  # lowercased by str.lower (Σ), then C's lowercase again
        "\u3000x{c}\u0301@b{c}.c{c}",  # NFC composes the mark with the character
    ],
)
def test_every_code_point_in_an_email_is_lowercased_as_python_does(
    openssl_digest: ModuleType, template: str
) -> None:
    # Every assigned code point (unassigned ones have no case nor decomposition).
    values = [template.format(c=c) for c in ASSIGNED]
    _, deferred = openssl_digest.emails(values, 0)
    assert len(deferred) < 100  # C takes all but Unicode whitespace
    expected = [normalize(v, Field.EMAIL, "meta")[0] for v in values]
    assert hash_many(values, Field.EMAIL, "meta") == expected
