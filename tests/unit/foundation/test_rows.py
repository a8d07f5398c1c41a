"""Reading import rows: fields, identifiers, traits, and rejections with exact line numbers."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest

from audience_sync.domain.models import IdentifierType, MobileIdKind
from audience_sync.exceptions import ValidationError
from audience_sync.sources.rows import (
    ProfileRecord,
    Rejection,
    detect_format,
    open_source,
    read_rows,
)

DATA = Path(__file__).parents[2] / "data" / "import"


def rows(name: str) -> list[ProfileRecord | Rejection]:
    path = DATA / name
    with open_source(path) as stream:
        return list(read_rows(stream, detect_format(path)))


def csv_rows(text: str) -> list[ProfileRecord | Rejection]:
    return list(read_rows(io.BytesIO(text.encode()), "csv"))


def test_a_csv_row_becomes_fields_identifiers_and_traits() -> None:
    first = rows("good.csv")[0]
    assert isinstance(first, ProfileRecord)
    assert first.profile_id == "P1"
    assert first.fields["first_name"] == "John"
    assert first.fields["date_of_birth"] == "19850214"
    assert [(i.type, i.value) for i in first.identifiers] == [
        (IdentifierType.EMAIL, "John.Doe@Example.com"),
        (IdentifierType.EMAIL, "jdoe@work.example"),
        (IdentifierType.PHONE, "(415) 555-0123"),
        (IdentifierType.MOBILE_ID, "AEBE52E7-03EE-455A-B3C4-E57283966239"),
        (IdentifierType.EXTERNAL_ID, "CUST-1"),
    ]
    assert first.identifiers[3].kind is MobileIdKind.IDFA
    assert first.traits == {"plan": "pro"}


def test_blank_cells_are_absent_and_whitespace_is_trimmed() -> None:
    second = rows("good.csv")[1]
    assert isinstance(second, ProfileRecord)
    assert second.identifiers[0].value == "zoe@example.fr"
    assert second.fields["state"] is None
    assert [i.type for i in second.identifiers] == [IdentifierType.EMAIL, IdentifierType.PHONE]


def test_json_lines_take_lists_numbers_and_nested_traits() -> None:
    first, second = rows("good.jsonl")
    assert isinstance(first, ProfileRecord)
    assert isinstance(second, ProfileRecord)
    assert [i.value for i in first.identifiers if i.type is IdentifierType.EMAIL] == [
        "a@example.com",
        "b@example.com",
    ]
    assert first.traits == {"lifetime_value": 120.5, "tags": ["vip"]}
    assert second.profile_id == "2"
    assert second.fields["zip"] == "94105"
    assert second.identifiers[-1].kind is MobileIdKind.IDFA


def test_broken_csv_rows_are_rejected_with_their_line_numbers() -> None:
    result = rows("broken.csv")
    rejected = {r.line: r.reason for r in result if isinstance(r, Rejection)}
    assert rejected == {
        3: "missing profile_id",
        4: "expected 3 columns, found 4",
        5: "expected 3 columns, found 2",
        6: "not valid UTF-8",
    }
    assert [r.profile_id for r in result if isinstance(r, ProfileRecord)] == ["B1", "B6"]


def test_broken_json_lines_are_rejected_with_their_line_numbers() -> None:
    result = rows("broken.jsonl")
    rejected = {r.line: r.reason for r in result if isinstance(r, Rejection)}
    assert set(rejected) == {2, 3, 5, 6}
    assert rejected[2].startswith("malformed JSON")
    assert rejected[3] == "expected a JSON object, found list"
    assert rejected[5] == "missing profile_id"
    assert rejected[6] == "first_name must be a single value, not a list"
    assert [r.profile_id for r in result if isinstance(r, ProfileRecord)] == ["K1", "K7"]


def test_a_quoted_cell_spanning_lines_keeps_later_line_numbers_right() -> None:
    result = csv_rows('profile_id,first_name\nA,"two\nlines"\n,x\nC,ok\n')
    assert isinstance(result[0], ProfileRecord)
    assert result[0].fields["first_name"] == "two\nlines"
    assert result[1] == Rejection(4, "missing profile_id")


def test_a_header_without_profile_id_is_refused_before_any_row() -> None:
    with pytest.raises(ValidationError, match="no profile_id column"):
        csv_rows("email,phone\na@b.co,1\n")


def test_a_value_too_long_for_its_column_rejects_the_row() -> None:
    (result,) = csv_rows(f"profile_id,city\nP,{'x' * 300}\n")
    assert result == Rejection(2, "city is longer than 255 characters")


def test_a_nul_character_rejects_the_row() -> None:
    (result,) = csv_rows("profile_id,email\nP,a\x00b@example.com\n")
    assert result == Rejection(2, "email contains a NUL character")


def test_a_byte_order_mark_does_not_hide_the_first_column() -> None:
    (result,) = csv_rows("\ufeffprofile_id,email\nP,a@example.com\n")
    assert isinstance(result, ProfileRecord)
    assert result.profile_id == "P"


def test_the_same_row_always_hashes_the_same_and_any_change_shows() -> None:
    a, b = csv_rows("profile_id,email\nP,a@example.com\nP,a@example.com\n")
    (c,) = csv_rows("profile_id,email\nP,b@example.com\n")
    assert isinstance(a, ProfileRecord)
    assert isinstance(b, ProfileRecord)
    assert isinstance(c, ProfileRecord)
    assert a.content_hash("US") == b.content_hash("US") != c.content_hash("US")
    assert a.content_hash("US") != a.content_hash("GB")


@pytest.mark.parametrize("name", ["data.txt", "data", "data.xlsx"])
def test_an_unknown_file_type_says_which_ones_work(name: str) -> None:
    with pytest.raises(ValidationError, match=r"\.csv, \.jsonl"):
        detect_format(Path(name))


def test_a_trailing_comma_in_the_header_adds_no_nameless_trait() -> None:
    (result,) = csv_rows("profile_id,plan,\nP,pro,x\n")
    assert isinstance(result, ProfileRecord)
    assert result.traits == {"plan": "pro"}


def test_data_use_columns_take_their_words_in_any_case() -> None:
    text = (
        "profile_id,email,consent_ad_user_data,consent_ad_personalization,limited_data_use\n"
        "P1,a@example.com, GRANTED ,Denied,California\n"
        "P2,b@example.com,,,\n"
    )
    first, second = csv_rows(text)
    assert isinstance(first, ProfileRecord)
    assert isinstance(second, ProfileRecord)
    assert (
        first.fields["consent_ad_user_data"],
        first.fields["consent_ad_personalization"],
        first.fields["limited_data_use"],
    ) == ("granted", "denied", "california")
    assert second.fields["consent_ad_user_data"] is None  # unspecified: the defaults apply
    assert first.traits == {}  # known columns, never traits


def test_json_lines_take_data_use_columns_and_refuse_other_words() -> None:
    lines = [
        {"profile_id": "P1", "consent_ad_user_data": "consent_granted", "limited_data_use": "off"},
        {"profile_id": "P2", "consent_ad_personalization": "maybe"},
        {"profile_id": "P3", "limited_data_use": "texas"},
        {"profile_id": "P4", "consent_ad_user_data": True},
    ]
    text = "\n".join(json.dumps(line) for line in lines) + "\n"
    first, *rejected = read_rows(io.BytesIO(text.encode()), "jsonl")
    assert isinstance(first, ProfileRecord)
    assert first.fields["consent_ad_user_data"] == "granted"
    assert first.fields["limited_data_use"] == "off"
    assert [r.line for r in rejected if isinstance(r, Rejection)] == [2, 3, 4]
    assert "consent must be one of granted, denied" in str(rejected[0])
    assert "limited_data_use must be one of off, geolocate, california" in str(rejected[1])


def test_rows_without_data_use_keep_the_hash_they_had_before_the_columns_existed() -> None:
    (row,) = csv_rows("profile_id,email\nP,a@example.com\n")
    (same,) = csv_rows("profile_id,email,limited_data_use\nP,a@example.com,\n")
    (other,) = csv_rows("profile_id,email,limited_data_use\nP,a@example.com,geolocate\n")
    assert isinstance(row, ProfileRecord)
    assert isinstance(same, ProfileRecord)
    assert isinstance(other, ProfileRecord)
    assert row.content_hash("US") == same.content_hash("US") != other.content_hash("US")
    # What this row hashed to before the data-use columns existed: no profile looks changed.
    assert row.content_hash("US") == (
        "c2454c62d74e5a326346f70f4a59dc71f3d3801844772cc87798f271883be889"
    )
