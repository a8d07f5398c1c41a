"""Column-wise preparation (`prepare_frame`) against the row-wise reference (`rows.read_object` +
`prepare_records`): the same rows give the same fields, identifiers, traits and content hash."""

from __future__ import annotations

import json
from typing import Any

import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from audience_sync.sources.prepare import (
    INVALID_DATE_OF_BIRTH,
    UNKNOWN_COUNTRY,
    Prepared,
    Warning,
    prepare_frame,
)
from audience_sync.sources.prepare_records import prepare_records
from audience_sync.sources.rows import (
    NOT_A_DIGEST,
    NULL_TOKENS,
    ProfileRecord,
    Rejection,
    read_object,
)

COLUMNS = [
    "profile_id",
    "email",
    "phone",
    "mobile_id",
    "mobile_id_kind",
    "external_id",
    "email_sha256",
    "first_name",
    "city",
    "country",
    "date_of_birth",
    "consent_ad_user_data",
    "limited_data_use",
    "plan",
    "Note",
]
DIGEST = "a" * 64


def frame(rows: list[dict[str, str]]) -> pl.DataFrame:
    data = {c.lower(): [row.get(c) for row in rows] for c in COLUMNS}
    df = pl.DataFrame(data, schema=dict.fromkeys(data, pl.String))
    return df.with_columns(pl.int_range(2, len(rows) + 2, dtype=pl.Int64).alias("_line"))


def by_rows(rows: list[dict[str, str]], region: str = "US") -> Prepared:
    records = []
    for line, row in enumerate(rows, start=2):
        result = read_object(line, {k: v for k, v in row.items() if v is not None})
        if isinstance(result, ProfileRecord):
            records.append(result)
    return prepare_records(records, region)


def comparable(prepared: Prepared) -> tuple[list[Any], list[Any]]:
    profiles = prepared.profiles.drop("_row").to_dicts()
    for profile in profiles:
        profile["traits"] = json.loads(profile["traits"])
    keyed = prepared.identifiers.join(
        prepared.profiles.select("_row", "_line"), on="_row", maintain_order="left"
    ).drop("_row")
    return profiles, keyed.to_dicts()


cells = st.one_of(
    st.none(),
    st.sampled_from(["", "  ", "null", "N/A", "#N/A", "None", "Nan", "nil", "NA"]),
    st.text(
        alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"),
        max_size=12,
    ),
    st.sampled_from(["a@x.com;b@y.com", " a@x.com ; a@x.com", "+44 20 7946 0958", "idfa;gaid"]),
)
rows_strategy = st.lists(
    st.fixed_dictionaries(
        {
            "profile_id": st.one_of(st.sampled_from(["P1", "P2", "null", ""]), st.text(max_size=5)),
            **{c: cells for c in COLUMNS if c != "profile_id"},
        }
    ),
    min_size=1,
    max_size=8,
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(rows_strategy)
def test_column_wise_and_row_wise_preparation_agree(rows: list[dict[str, str]]) -> None:
    columns = prepare_frame(frame(rows), "US")
    reference = by_rows(rows)
    assert comparable(columns) == comparable(reference)
    assert [r.line for r in columns.rejections] == sorted(
        line
        for line, row in enumerate(rows, start=2)
        if not isinstance(read_object(line, {k: v for k, v in row.items() if v}), ProfileRecord)
    )


@pytest.mark.parametrize("token", sorted(NULL_TOKENS))
def test_null_tokens_are_absent_in_every_field(token: str) -> None:
    row = dict.fromkeys(COLUMNS, token) | {"profile_id": "P1"}
    prepared = prepare_frame(frame([row]), "US")
    profile = prepared.profiles.row(0, named=True)
    assert profile["first_name"] is profile["city"] is profile["country"] is None
    assert json.loads(profile["traits"]) == {}
    assert prepared.identifiers.is_empty()
    assert not prepared.rejections


def test_a_null_token_among_several_identifiers_is_dropped_alone() -> None:
    prepared = prepare_frame(
        frame([{"profile_id": "P1", "email": "a@x.com;null; n/a ;b@y.com"}]), "US"
    )
    assert prepared.identifiers["value"].to_list() == ["a@x.com", "b@y.com"]


def test_namibia_and_given_names_that_look_like_null_tokens_are_kept() -> None:
    row = {"profile_id": "P1", "country": "NA", "first_name": "Nan", "city": "Nil"}
    profile = prepare_frame(frame([row]), "US").profiles.row(0, named=True)
    assert (profile["country"], profile["first_name"], profile["city"]) == ("NA", "Nan", "Nil")
    assert profile["region"] == "NA"


def test_countries_resolve_from_native_names_and_unknown_ones_are_warned_per_value() -> None:
    rows = [
        {"profile_id": "P1", "country": "Deutschland"},
        {"profile_id": "P2", "country": "日本"},
        {"profile_id": "P3", "country": "Germoney"},
        {"profile_id": "P4", "country": "Germoney"},
        {"profile_id": "P5"},
    ]
    prepared = prepare_frame(frame(rows), "GB")
    assert prepared.profiles["region"].to_list() == ["DE", "JP", None, None, "GB"]
    assert prepared.warnings == {Warning("country", UNKNOWN_COUNTRY, "Germoney"): 2}


def test_pre_hashed_columns_are_identifiers_and_bad_digests_are_warned() -> None:
    rows = [
        {"profile_id": "P1", "email_sha256": f"{DIGEST.upper()};not-a-digest"},
        {"profile_id": "P2", "email_sha256": "1234"},
    ]
    prepared = prepare_frame(frame(rows), "US")
    assert prepared.identifiers.select("type", "value").rows() == [("email", DIGEST.upper())]
    assert prepared.warnings == {Warning("email_sha256", NOT_A_DIGEST): 2}
    assert json.loads(prepared.profiles["traits"][0]) == {}


def test_dates_of_birth_that_no_platform_can_read_are_counted() -> None:
    dates = ["1990-07-04", "19900704", "04/07/1990", "1975-02-30", "1990-7-4"]
    rows = [{"profile_id": f"P{i}", "date_of_birth": d} for i, d in enumerate(dates)]
    prepared = prepare_frame(frame(rows), "US")
    assert prepared.warnings == {Warning("date_of_birth", INVALID_DATE_OF_BIRTH): 3}
    assert prepared.profiles["date_of_birth"].to_list() == dates  # kept as written


def test_mobile_id_kinds_apply_by_position_then_the_last_one() -> None:
    row = {"profile_id": "P1", "mobile_id": "m1;m2;m3", "mobile_id_kind": "idfa;gaid"}
    prepared = prepare_frame(frame([row]), "US")
    assert prepared.identifiers.select("value", "kind").rows() == [
        ("m1", "idfa"),
        ("m2", "gaid"),
        ("m3", "gaid"),
    ]


def test_trait_values_with_quotes_backslashes_and_line_breaks_hash_as_json_does() -> None:
    row = {"profile_id": "P1", "plan": 'say "hi"\\\n\tthere\x01', "Note": "ü € 日本"}
    assert comparable(prepare_frame(frame([row]), "US")) == comparable(by_rows([row]))


def test_a_nul_in_any_cell_refuses_the_row_as_the_row_reader_does() -> None:
    """Found by the property test above: a profile id of one NUL was kept column-wise."""
    rows = [
        dict.fromkeys(COLUMNS) | {"profile_id": "P1"},
        dict.fromkeys(COLUMNS) | {"profile_id": "\x00"},
        dict.fromkeys(COLUMNS) | {"profile_id": "P2", "city": "a\x00b"},
    ]
    prepared = prepare_frame(frame(rows), "US")
    assert prepared.profiles["profile_id"].to_list() == ["P1"]
    assert [(r.line, r.reason) for r in prepared.rejections] == [
        (3, "profile_id contains a NUL character"),
        (4, "city contains a NUL character"),
    ]
    refused = read_object(3, {"profile_id": "\x00"})
    assert isinstance(refused, Rejection)
    assert refused.reason == "profile_id contains a NUL character"
