"""Each field's rule, per platform, as docs/normalization.md states it."""

from __future__ import annotations

import hashlib
import unicodedata

import pytest

from audience_sync.connectors.tiktok import mobile_id_schema
from audience_sync.domain.models import IdentifierType, SyncPlatform
from audience_sync.identifiers import (
    Field,
    Reason,
    date_of_birth_reason,
    drop_reason,
    expand_date_of_birth,
    hash_identifier,
    normalize,
    split_date_of_birth,
)


def sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


@pytest.mark.parametrize(
    ("raw", "platform", "normalized"),
    [
        ("  John_Smith@gmail.com ", "meta", "john_smith@gmail.com"),
        ("John.Smith+x@Gmail.com", "meta", "john.smith+x@gmail.com"),
        ("John.Smith+x@Gmail.com", "snapchat", "john.smith+x@gmail.com"),
        ("John.Smith+x@Gmail.com", "tiktok", "john.smith@gmail.com"),
        ("John.Smith+x@Example.com", "tiktok", "john.smith@example.com"),
        ("John.Smith+x@Gmail.com", "google", "johnsmith@gmail.com"),
        ("j.s+x@googlemail.com", "google", "js@googlemail.com"),
        ("John.Smith+x@Example.com", "google", "john.smith+x@example.com"),
        ("john smith@example.com", "google", "johnsmith@example.com"),
        ("\u3000a@b.co\u3000", "meta", "a@b.co"),
        ("ÉLODIE@exemple.fr", "meta", "élodie@exemple.fr"),
    ],
)
def test_an_email_is_normalized_per_platform(raw: str, platform: str, normalized: str) -> None:
    assert hash_identifier(raw, "email", platform) == sha(normalized)


@pytest.mark.parametrize(
    ("raw", "platform"),
    [
        ("not-an-email", "meta"),
        ("a@b", "meta"),
        ("a@@b.com", "meta"),
        ("a@b@c.com", "meta"),
        ("@b.com", "meta"),
        ("a@.com", "meta"),
        ("a@b..com", "meta"),
        ("a@b.com.", "meta"),
        ("john smith@example.com", "meta"),
        ("john smith@example.com", "tiktok"),
        ("+tag@example.com", "tiktok"),
        ("...+x@gmail.com", "google"),
    ],
)
def test_an_unusable_email_is_dropped_as_invalid_email(raw: str, platform: str) -> None:
    assert normalize(raw, "email", platform) == (None, Reason.INVALID_EMAIL)


def test_composed_and_decomposed_text_hash_the_same() -> None:
    composed = "José@example.com"
    decomposed = unicodedata.normalize("NFD", composed)
    assert composed != decomposed
    assert hash_identifier(composed, "email", "meta") == hash_identifier(
        decomposed, "email", "meta"
    )


@pytest.mark.parametrize("platform", list(SyncPlatform))
def test_a_prehashed_digest_is_sent_lowercased_never_hashed_twice(platform: str) -> None:
    digest = sha("someone@example.com")
    for field in ("email", "phone"):
        assert hash_identifier(f" {digest.upper()} ", field, platform) == digest


def test_phones_are_sent_as_each_platform_wants() -> None:
    assert hash_identifier("(650)555-1212", "phone", "meta") == sha("16505551212")
    assert hash_identifier("(650)555-1212", "phone", "tiktok") == sha("16505551212")
    assert hash_identifier("(650)555-1212", "phone", "snapchat") == sha("16505551212")
    assert hash_identifier("(650)555-1212", "phone", "google") == sha("+16505551212")
    assert hash_identifier("020 7946 0958", "phone", "meta", region="GB") == sha("442079460958")
    assert drop_reason("12", "phone", "meta") is Reason.INVALID_PHONE


MAID = "AB12CD34-5678-90EF-ABCD-1234567890AB"


def test_a_mobile_id_is_raw_at_meta_and_google_and_hashed_elsewhere() -> None:
    assert hash_identifier(MAID, IdentifierType.MOBILE_ID, SyncPlatform.META) == MAID.lower()
    assert hash_identifier(MAID.lower(), "mobile_id", "google") == MAID
    assert hash_identifier(MAID, "mobile_id", "tiktok") == sha(MAID.lower())
    assert hash_identifier(MAID, "mobile_id", "snapchat") == sha(MAID.lower())


@pytest.mark.parametrize("platform", list(SyncPlatform))
def test_the_zeroed_maid_and_malformed_ids_are_dropped_with_their_reason(platform: str) -> None:
    zero = "00000000-0000-0000-0000-000000000000"
    assert normalize(zero, "mobile_id", platform) == (None, Reason.ZEROED_MAID)
    for bad in ("AB12CD345678-90EF-ABCD-1234567890AB", "zz12cd34-5678-90ef-abcd-1234567890ab"):
        assert normalize(bad, "mobile_id", platform) == (None, Reason.INVALID_MOBILE_ID)


def test_tiktok_picks_the_mobile_id_key_by_kind() -> None:
    assert mobile_id_schema("gaid") == "AAID_SHA256"
    assert mobile_id_schema("idfa") == "IDFA_SHA256"
    assert mobile_id_schema(None) == "IDFA_SHA256"


def test_an_external_id_is_meta_only_and_sent_raw() -> None:
    assert hash_identifier("  CUST-12345 ", "external_id", "meta") == "CUST-12345"
    for platform in ("google", "tiktok", "snapchat"):
        assert normalize("CUST-1", "external_id", platform) == (None, Reason.UNSUPPORTED)


@pytest.mark.parametrize(
    ("field", "raw", "normalized"),
    [
        ("first_name", "Mary", "mary"),
        ("last_name", "O'Brien", "obrien"),
        ("first_name", "Mary-Jane", "maryjane"),
        ("first_name", "Valéry", "valéry"),
        ("first_name", "  Anne   Marie ", "annemarie"),
        ("first_name", "Mary Ann", "maryann"),
        ("last_name", "Smith 3rd", "smithrd"),
        ("last_name", "정", "정"),
        ("city", "New York", "newyork"),
        ("city", "St. Louis", "stlouis"),
        ("state", "California", "ca"),
        ("state", "new york", "ny"),
        ("state", "District of Columbia", "dc"),
        ("state", "TX", "tx"),
        ("state", "Île-de-France", "îledefrance"),
        ("zip", "94035-1234", "94035"),
        ("zip", "94035", "94035"),
        ("zip", "SW1A 1AA", "sw1a1aa"),
        ("country", "United Kingdom", "gb"),
        ("country", "US", "us"),
        ("gender", "Female", "f"),
        ("gender", "M", "m"),
        ("gender", "man", "m"),
        ("gender", "woman", "f"),
    ],
)
def test_an_enhanced_field_is_normalized_for_meta(field: str, raw: str, normalized: str) -> None:
    assert hash_identifier(raw, field, "meta") == sha(normalized)


@pytest.mark.parametrize(
    ("field", "raw", "reason"),
    [
        ("first_name", "...", Reason.INVALID_FIRST_NAME),
        ("last_name", "--", Reason.INVALID_LAST_NAME),
        ("city", "123", Reason.INVALID_CITY),
        ("state", "!!", Reason.INVALID_STATE),
        ("zip", " - ", Reason.INVALID_ZIP),
        ("country", "Atlantis", Reason.INVALID_COUNTRY),
        ("gender", "other", Reason.INVALID_GENDER),
        ("gender", "x", Reason.INVALID_GENDER),
    ],
)
def test_an_unusable_enhanced_field_is_dropped_never_defaulted(
    field: str, raw: str, reason: Reason
) -> None:
    assert normalize(raw, field, "meta") == (None, reason)


def test_google_takes_the_address_parts_only() -> None:
    assert hash_identifier("O'Brien", Field.LAST_NAME, "google") == sha("obrien")
    assert hash_identifier("  Anne   Marie ", Field.FIRST_NAME, "google") == sha("anne marie")
    assert hash_identifier("United Kingdom", "country", "google") == "GB"
    assert hash_identifier(" 94035-1234 ", "zip", "google") == "94035-1234"
    for field in ("city", "state", "gender", "external_id"):
        assert drop_reason("x", field, "google") is Reason.UNSUPPORTED


def test_tiktok_and_snapchat_take_no_enhanced_fields() -> None:
    for platform in ("tiktok", "snapchat"):
        for field in ("first_name", "last_name", "city", "state", "zip", "country", "gender"):
            assert drop_reason("x", field, platform) is Reason.UNSUPPORTED


def test_a_missing_value_is_empty_not_invalid() -> None:
    for raw in (None, "", "  \t", "\u3000"):
        assert normalize(raw, "email", "meta") == (None, Reason.EMPTY)


def test_a_date_of_birth_expands_to_metas_three_keys() -> None:
    expected = {"DOBY": sha("1990"), "DOBM": sha("07"), "DOBD": sha("04")}
    assert expand_date_of_birth("19900704") == expected
    assert expand_date_of_birth(" 1990-07-04 ", "meta") == expected
    assert split_date_of_birth("2000-02-29") == ("2000", "02", "29")


@pytest.mark.parametrize(
    "raw",
    [
        "19900230",
        "1990-13-01",
        "1900-02-29",
        "0000-01-01",
        "1990704",
        "1990/07/04",
        "",
        "abcdefgh",
        "١٩٩٠٠٧٠٤",
    ],
)
def test_an_impossible_date_of_birth_is_none(raw: str) -> None:
    assert expand_date_of_birth(raw) is None


def test_only_meta_has_date_of_birth_keys() -> None:
    assert expand_date_of_birth("19900704", "google") is None
    assert date_of_birth_reason("19900704", "google") is Reason.UNSUPPORTED


def test_a_dropped_date_of_birth_says_why() -> None:
    assert date_of_birth_reason("19900704") is None
    assert date_of_birth_reason(" ") is Reason.EMPTY
    assert date_of_birth_reason(None) is Reason.EMPTY
    assert date_of_birth_reason("19900230") is Reason.INVALID_DATE_OF_BIRTH


def test_an_unknown_type_or_platform_is_a_programming_error() -> None:
    with pytest.raises(ValueError, match="identifier type"):
        hash_identifier("a@b.com", "fax", "meta")
    with pytest.raises(ValueError, match="platform"):
        hash_identifier("a@b.com", "email", "myspace")
