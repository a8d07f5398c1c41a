"""The fast bulk path agrees with the per-item reference, value for value, reason for reason."""

from __future__ import annotations

import hashlib
import random

import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from audience_sync.domain.models import SyncPlatform
from audience_sync.identifiers import (
    Field,
    Reason,
    bulk,
    hash_many,
    hash_many_with_reasons,
    hash_series,
    hash_series_with_reasons,
    normalize,
)
from audience_sync.identifiers.phone import e164_table

PLATFORMS = list(SyncPlatform)


@pytest.fixture(autouse=True, params=["openssl", "polars-hash"])
def hashing(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Every test here runs on both of `hash_many`'s ways of hashing: OpenSSL through the
    compiled `_digest` (when built) and the polars-hash plugin (its fallback)."""
    if request.param == "openssl":
        request.getfixturevalue("openssl_digest")
    else:
        monkeypatch.setattr(bulk, "_DIGEST", None)
    return str(request.param)


FAST = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# --- messy input ------------------------------------------------------------------------------

# \u2000 is whitespace that NFC turns into other whitespace (\u2002).
whitespace = st.sampled_from(["", " ", "  ", "\t", "\n", "\u3000", "\xa0", "\u2000"])
pad = st.one_of(whitespace, st.just("\x1c"))  # \x1c: str.isspace() says yes, Unicode says no
hexchars = st.text(alphabet="0123456789abcdefABCDEF", min_size=64, max_size=64)
junk = st.text(max_size=12)
ascii_junk = st.text(alphabet=st.characters(max_codepoint=127), max_size=12)


@st.composite
def emails(draw: st.DrawFn) -> str:
    # Latin-1 letters (done in Polars), and what is not: ×, µ, a combining accent, NBSP.
    local = draw(st.text(alphabet="abcXYZ._+-é \u3000ÀÞßÿ×µ\u0301\xa0", min_size=0, max_size=8))
    domain = draw(
        st.sampled_from(
            [
                "gmail.com",
                "GoogleMail.com",
                "GMAIL.COM",
                "exámple.fr",
                "example.co.uk",
                "b",
                "b.",
                ".b",
                "a..b",
                "ex ample.com",
            ]
        )
    )
    at = draw(st.sampled_from(["@", "@", "@@", ""]))
    return draw(pad) + local + at + domain + draw(pad)


@st.composite
def phones(draw: st.DrawFn) -> str:
    code = draw(st.sampled_from(sorted(e164_table().codes)))
    digits = draw(st.text(alphabet="0123456789", min_size=1, max_size=14))
    shapes = [
        f"+{code}{digits}",
        f"00{code}{digits}",
        f"+{code} {digits[:3]}-{digits[3:]}",
        f"({digits[:3]}) {digits[3:]}",
        f"+0{digits}",
        digits,
    ]
    return draw(pad) + draw(st.sampled_from(shapes)) + draw(pad)


@st.composite
def mobile_ids(draw: st.DrawFn) -> str:
    raw = draw(st.uuids()).hex
    uid = f"{raw[:8]}-{raw[8:12]}-{raw[12:16]}-{raw[16:20]}-{raw[20:]}"
    shapes = [
        uid,
        uid.upper(),
        "00000000-0000-0000-0000-000000000000",
        uid.replace("-", ""),
        uid[:-1] + "g",
        uid + "0",
    ]
    return draw(pad) + draw(st.sampled_from(shapes)) + draw(pad)


names = st.sampled_from(
    ["Mary", "O'Brien", "Mary-Jane", "Valéry", "  anne  MARIE", "정", "...", "New York",
     "California", "94035-1234", "SW1A 1AA", "United Kingdom", "GBR", "Female", "m", "x"]
)  # fmt: skip

MESSY: dict[Field, st.SearchStrategy[str]] = {
    Field.EMAIL: emails(),
    Field.PHONE: phones(),
    Field.MOBILE_ID: mobile_ids(),
    Field.EXTERNAL_ID: st.text(alphabet="AB12-_ \u3000é", max_size=8),
}


def batches(field: Field) -> st.SearchStrategy[list[str | None]]:
    item = st.one_of(
        MESSY.get(field, names),
        names,
        junk,
        ascii_junk,
        hexchars.map(lambda h: f" {h} "),
        st.none(),
    )
    return st.lists(item, max_size=25)


def reference(
    values: list[str | None], field: Field, platform: SyncPlatform, region: str
) -> tuple[list[str | None], list[Reason | None]]:
    outcomes = [normalize(v, field, platform, region) for v in values]
    return [o[0] for o in outcomes], [o[1] for o in outcomes]


# --- agreement ----------------------------------------------------------------------------------


@pytest.mark.parametrize("field", list(Field))
@FAST
@given(data=st.data())
def test_the_fast_path_equals_the_reference_on_messy_input(
    field: Field, data: st.DataObject
) -> None:
    platform = data.draw(st.sampled_from(PLATFORMS))
    region = data.draw(st.sampled_from(["US", "GB", "DE", "AM"]))
    values = data.draw(batches(field))
    result = hash_many_with_reasons(values, field, platform, region=region)
    assert (result.sent, result.reasons) == reference(values, field, platform, region)
    assert hash_many(values, field, platform, region=region) == result.sent


@settings(max_examples=60, deadline=None)
@given(values=st.lists(st.text(max_size=70), max_size=20), field=st.sampled_from(list(Field)))
def test_arbitrary_strings_never_raise(values: list[str], field: Field) -> None:
    for platform in PLATFORMS:
        result = hash_many_with_reasons(values, field, platform)
        assert len(result.sent) == len(values)
        for sent, reason in zip(result.sent, result.reasons, strict=True):
            assert (sent is None) != (reason is None)


@settings(max_examples=20, deadline=None)
@given(digest=hexchars, left=whitespace, right=whitespace)
def test_a_prehashed_digest_passes_through_every_hashed_field(
    digest: str, left: str, right: str
) -> None:
    for platform, fields in {
        SyncPlatform.META: [f for f in Field if f not in (Field.MOBILE_ID, Field.EXTERNAL_ID)],
        SyncPlatform.GOOGLE: [Field.EMAIL, Field.PHONE, Field.FIRST_NAME, Field.LAST_NAME],
        SyncPlatform.TIKTOK: [Field.EMAIL, Field.PHONE, Field.MOBILE_ID],
        SyncPlatform.SNAPCHAT: [Field.EMAIL, Field.PHONE, Field.MOBILE_ID],
    }.items():
        for field in fields:
            value = left + digest + right
            assert hash_many([value, None], field, platform) == [digest.lower(), None]


def test_values_that_polars_cannot_hold_are_settled_by_the_reference() -> None:
    values = ["a@b.com", "\ud800@b.com", 42, None]
    result = hash_many_with_reasons(values, "email", "meta")  # type: ignore[arg-type]
    assert result.sent[0] == hashlib.sha256(b"a@b.com").hexdigest()
    assert result.sent[1:] == [None, None, None]
    assert result.reasons[1:] == [Reason.INVALID_EMAIL, Reason.INVALID_EMAIL, Reason.EMPTY]
    assert hash_many(values, "email", "meta") == result.sent  # type: ignore[arg-type]


def _big_messy_batch(field: Field, size: int, seed: int) -> list[str | None]:
    """Many rows from a few hundred messy values, shuffled: spans several Polars morsels."""
    rnd = random.Random(seed)
    pool: list[str | None] = [None, "", " ", "\u3000x", "é@b.com", "+16505551212 ", "bad"]
    domains = ["gmail.com", "googlemail.com", "x.io"]
    for _ in range(300):
        digits = "".join(rnd.choices("0123456789", k=rnd.randint(6, 12)))
        hexes = "".join(rnd.choices("0123456789abcdefABCDEF", k=32))
        uid = f"{hexes[:8]}-{hexes[8:12]}-{hexes[12:16]}-{hexes[16:20]}-{hexes[20:]}"
        pool += [
            f" {rnd.choice(['Ann', 'j.o+x', 'BOB'])}{digits[:3]}@{rnd.choice(domains)}",
            f"+{rnd.choice(['1', '44', '49', '374', '55'])}{digits}",
            f"({digits[:3]}) {digits[3:]}",
            rnd.choice([uid, uid.upper(), "00000000-0000-0000-0000-000000000000"]),
            rnd.choice(["United Kingdom", "usa", "DE", "Atlantis"]),
        ]
    return [rnd.choice(pool) for _ in range(size)]


@pytest.mark.parametrize("field", [Field.EMAIL, Field.PHONE, Field.MOBILE_ID, Field.COUNTRY])
def test_a_large_batch_keeps_its_order_across_both_cores(field: Field) -> None:
    values = _big_messy_batch(field, 6_000, seed=7)
    for platform in PLATFORMS:
        result = hash_many_with_reasons(values, field, platform)
        assert (result.sent, result.reasons) == reference(values, field, platform, "US")


def test_a_column_in_gives_a_column_out() -> None:
    column = pl.Series(["+16505551212", None, "(650)555-1212"])
    out = hash_series(column, "phone", "google")
    assert out.to_list() == hash_many(column.to_list(), "phone", "google")


@pytest.mark.parametrize("field", [Field.EMAIL, Field.PHONE, Field.MOBILE_ID, Field.FIRST_NAME])
def test_a_column_in_gives_columns_of_sent_values_and_reasons_out(field: Field) -> None:
    values = _big_messy_batch(field, 500, seed=3)
    for platform in PLATFORMS:
        sent, reasons = hash_series_with_reasons(
            pl.Series(values, dtype=pl.String), field, platform
        )
        expected = hash_many_with_reasons(values, field, platform)
        assert sent.to_list() == expected.sent
        assert reasons.to_list() == [r and r.value for r in expected.reasons]


def test_diagnostics_count_present_usable_and_each_reason() -> None:
    values = ["a@b.com", "bad", None, " ", "x@y.org"]
    counts = hash_many_with_reasons(values, "email", "meta").counts()
    assert counts == {"present": 3, "usable": 2, "empty": 2, "invalid_email": 1}


def test_an_unsupported_field_drops_every_value() -> None:
    result = hash_many_with_reasons(["x", None], "city", "tiktok")
    assert result.sent == [None, None]
    assert result.reasons == [Reason.UNSUPPORTED, Reason.UNSUPPORTED]


@pytest.mark.parametrize("field", list(Field))
def test_an_empty_batch_gives_an_empty_list(field: Field) -> None:
    assert hash_many([], field, "meta") == []
    assert hash_many_with_reasons([], field, "google").counts() == {"present": 0, "usable": 0}


# --- the paths of the email rules -------------------------------------------------------------

LATIN1 = "".join(map(chr, range(0xC0, 0x100)))  # letters, and × ÷


@st.composite
def accented_emails(draw: st.DrawFn) -> str:
    """Emails of ASCII and Latin-1 (the non-ASCII rows Polars does) and a little else."""
    odd = ["a", "Z", ".", "+", "µ", "\xa0", "\u0301", "İ", "\u3000", " ", "e"]  # e+\u0301: é
    char = st.one_of(st.sampled_from(odd), st.sampled_from(LATIN1))
    part = st.lists(char, max_size=6).map("".join)
    domain = draw(st.sampled_from(["gmail.com", "GoogleMail.com", "exÄmple.fr", "x.io", "b"]))
    return draw(whitespace) + draw(part) + "@" + domain + draw(whitespace)


@FAST
@given(values=st.lists(st.one_of(accented_emails(), emails(), st.none()), max_size=30))
def test_latin1_emails_are_done_in_polars_as_the_reference_does_them(
    values: list[str | None],
) -> None:
    for platform in PLATFORMS:
        result = hash_many_with_reasons(values, Field.EMAIL, platform)
        assert (result.sent, result.reasons) == reference(values, Field.EMAIL, platform, "US")
        assert hash_many(values, Field.EMAIL, platform) == result.sent


def test_google_rewrites_only_gmail_rows_and_leaves_inner_whitespace_to_the_reference() -> None:
    values = [
        " J.Doe+news@Gmail.com ",  # dots and tag go
        "j.doe+news@example.com",  # another domain: kept as is
        "ann.lee@googlemail.com",
        "+tag@gmail.com",  # nothing left of the local part
        "jo hn@gmail.com",  # whitespace inside: Google removes it (the reference does)
        "jo\thn @ x.io",
        "José.Ñ+x@gmail.com",  # Latin-1 letters: done in Polars
        "\u3000zoë@gmail.com\u3000",
        None,
        "",
    ]
    sent = hash_many(values, "email", "google")
    assert sent == [normalize(v, "email", "google")[0] for v in values]
    sha = hashlib.sha256
    assert sent[0] == sha(b"jdoe@gmail.com").hexdigest()
    assert sent[1] == sha(b"j.doe+news@example.com").hexdigest()
    assert sent[2] == sha(b"annlee@googlemail.com").hexdigest()
    assert sent[3] is None
    assert sent[4] == sha(b"john@gmail.com").hexdigest()
    assert sent[5] == sha(b"john@x.io").hexdigest()
    assert sent[6] == sha("josé.ñ".replace(".", "").encode() + b"@gmail.com").hexdigest()
    assert sent[7] == sha("zoë@gmail.com".encode()).hexdigest()
    assert sent[8:] == [None, None]


@pytest.mark.parametrize("platform", PLATFORMS)
def test_an_all_null_or_empty_batch_gives_none_for_every_value(platform: SyncPlatform) -> None:
    for values in ([None] * 5, ["", "  ", "\u3000", None]):
        assert hash_many(values, "email", platform) == [None] * len(values)
        assert set(hash_many_with_reasons(values, "email", platform).reasons) == {Reason.EMPTY}


# --- hash_many's pieces -----------------------------------------------------------------------


@pytest.mark.parametrize("field", [Field.EMAIL, Field.PHONE, Field.MOBILE_ID, Field.CITY])
def test_pieces_of_a_batch_keep_their_order_and_slow_rows(
    field: Field, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(bulk, "_PIECE", 7)  # many pieces, and a short one at the end
    values: list[str | None] = _big_messy_batch(field, 60, seed=3)
    values[50] = "\ud800@b.com"  # Polars cannot hold it: settled by the reference
    values[9] = "Zoë@Example.fr"
    values[10] = "\u3000x@b.com"
    for platform in PLATFORMS:
        expected = [normalize(v, field, platform)[0] for v in values]
        assert hash_many(values, field, platform) == expected
        assert hash_many(pl.Series(values[:49]), field, platform) == expected[:49]


def test_pieces_of_nothing_but_gaps(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(bulk, "_PIECE", 4)
    assert hash_many([None] * 9, "email", "meta") == [None] * 9
    values: list[str | None] = [None, "", "a@b.co", *([None] * 6), "A@B.co"]
    assert hash_many(values, "email", "tiktok") == [
        normalize(v, "email", "tiktok")[0] for v in values
    ]


# --- Google's gmail rewrite, done on the rows it changes --------------------------------------

GMAIL_CASES = [
    "j.doe@gmail.com",  # a dot
    "J.D.O.E@GMAIL.COM",  # dots and case
    "jdoe+news@gmail.com",  # a tag
    "j.doe+news.letter@googlemail.com",  # a tag with a dot in it
    "a+b+c@gmail.com",  # the first + starts the tag
    "  J.Doe+x@GoogleMail.com\t",  # padding
    "jdoe@gmail.com",  # nothing to rewrite
    ".@gmail.com",  # nothing left of the local part
    "..+x@googlemail.com",
    "+@gmail.com",
    "j. doe@gmail.com",  # whitespace inside: Google removes it
    "j.doe@g mail.com",
    "jo\thn@x.io",
    "j.doe@@gmail.com",  # invalid, and stays so
    "j.doe@gmail..com",
    "j.doe@gmail.com.",
    "j.doe@sub.gmail.com",  # not Gmail's domain
    "j.doe@notgmail.com",
    "j.doe@gmail.co",
    "j.doe+x@example.com",
    "josé.ñ+x@gmail.com",  # Latin-1 letters
    "zoë.\u0301x@gmail.com",  # a combining accent: the reference's
    "a.b@gmail.com\u3000",
    "0" * 64,  # a digest
    None,
    "",
]


def test_google_rewrites_each_kind_of_gmail_address_as_the_reference_does() -> None:
    result = hash_many_with_reasons(GMAIL_CASES, Field.EMAIL, SyncPlatform.GOOGLE)
    expected = reference(GMAIL_CASES, Field.EMAIL, SyncPlatform.GOOGLE, "US")
    assert (result.sent, result.reasons) == expected
    assert hash_many(GMAIL_CASES, Field.EMAIL, SyncPlatform.GOOGLE) == result.sent
    sha = hashlib.sha256
    assert result.sent[1] == sha(b"jdoe@gmail.com").hexdigest()
    assert result.sent[3] == sha(b"jdoe@googlemail.com").hexdigest()
    assert result.sent[4] == sha(b"a@gmail.com").hexdigest()
    assert result.sent[7:10] == [None, None, None]
    assert result.sent[10] == sha(b"jdoe@gmail.com").hexdigest()
    assert result.sent[11] == sha(b"jdoe@gmail.com").hexdigest()


@pytest.mark.parametrize("piece", [3, 1_000])
def test_rewritten_rows_go_back_to_their_places(
    piece: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The rewrite runs on the rows it changes and is gathered back: first, last, none, all."""
    monkeypatch.setattr(bulk, "_PIECE", piece)
    rnd = random.Random(5)
    mixed: list[str | None] = [rnd.choice(GMAIL_CASES) for _ in range(200)]
    batches: list[list[str | None]] = [
        mixed,
        ["a.b@gmail.com", "x@y.io", None, "c+d@gmail.com"],  # rewritten rows at both ends
        ["x@y.io", None, "", "ab@gmail.com"],  # none rewritten
        ["a.b@gmail.com", "c+d@googlemail.com", "e.f@gmail.com"],  # all rewritten
    ]
    for values in batches:
        expected = reference(values, Field.EMAIL, SyncPlatform.GOOGLE, "US")
        result = hash_many_with_reasons(values, Field.EMAIL, SyncPlatform.GOOGLE)
        assert (result.sent, result.reasons) == expected
        assert hash_many(values, Field.EMAIL, SyncPlatform.GOOGLE) == expected[0]
        assert hash_series(pl.Series(values), "email", "google").to_list() == expected[0]


@st.composite
def gmail_addresses(draw: st.DrawFn) -> str:
    local = draw(st.text(alphabet="abXY.+_- \té", max_size=10))
    domain = draw(st.sampled_from(["gmail.com", "GMail.com", "googlemail.com", "gmail.co", "x.io"]))
    at = draw(st.sampled_from(["@", "@", "@", "@@", " @"]))
    return draw(pad) + local + at + domain + draw(pad)


@FAST
@given(values=st.lists(st.one_of(gmail_addresses(), st.none()), max_size=60))
def test_gmail_addresses_for_google_equal_the_reference(values: list[str | None]) -> None:
    result = hash_many_with_reasons(values, Field.EMAIL, SyncPlatform.GOOGLE)
    assert (result.sent, result.reasons) == reference(
        values, Field.EMAIL, SyncPlatform.GOOGLE, "US"
    )
    assert hash_many(values, Field.EMAIL, SyncPlatform.GOOGLE) == result.sent


def test_the_reference_runs_once_per_distinct_slow_value(
    monkeypatch: pytest.MonkeyPatch, hashing: str
) -> None:
    calls: list[object] = []

    def counted(value: str | None, *args: object) -> object:
        calls.append(value)
        return normalize(value, *args)  # type: ignore[arg-type]

    monkeypatch.setattr(bulk, "normalize", counted)
    values = ["john smith@x.io", "jo hn@gmail.com", "a@b.co", 42] * 3
    expected = [normalize(v, "email", "google")[0] for v in values]  # type: ignore[arg-type]
    assert hash_many(values, "email", "google") == expected  # type: ignore[arg-type]
    # In C (`_digest.emails`) the ASCII rows with whitespace inside need no reference.
    slow = [] if hashing == "openssl" else ["jo hn@gmail.com", "john smith@x.io"]
    assert sorted(map(str, calls)) == ["42", "42", "42", *slow]
    calls.clear()
    result = hash_many_with_reasons(values, "email", "google")  # type: ignore[arg-type]
    assert result.sent == expected
    assert len(calls) == 5
