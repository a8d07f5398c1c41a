"""The sync engine's column-wise records (`connectors.columnar`) equal the connectors' own.

Random members, messy on purpose (several emails, a value twice, phones with and without a
stored E.164 and from other countries, zeroed and malformed mobile ids, external ids with quotes
and backslashes, bad dates), go through both paths: `users_of` → `records_for` →
`record_pairs` → `record_text`, and `record_frame`. Every record (owner and text) and every
dropped-value count must be the same.
"""

from __future__ import annotations

import asyncio
import random
from collections import Counter
from dataclasses import dataclass

import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from audience_sync.config import Settings
from audience_sync.connectors import connector_for, platform_spec
from audience_sync.connectors.columnar import record_frame
from audience_sync.connectors.http import Credentials
from audience_sync.domain.models import SyncPlatform
from audience_sync.sources.members import IDENTIFIER_SCHEMA, PROFILE_SCHEMA
from audience_sync.sync.members import SENDABLE, users_of
from audience_sync.sync.plan import decode_record, record_text

EMAILS = [
    " Ann.Lee+shop@Gmail.com",
    "ann.lee@gmail.com",
    "bob@example.com",
    "BOB@example.com ",
    "not-an-email",
    "",
    "x.y+z@googlemail.com",
    "émile@exemple.fr",
    "a" * 64,
]
PHONES = [
    ("(650) 555-1212", "+16505551212"),
    ("06 12 34 56 78", None),
    ("+44 20 7946 0958", "+442079460958"),
    ("555", None),
    ("0612345678", None),
    ("", None),
]
MOBILE_IDS = [
    ("6D92078A-8246-4BA4-AE5B-76104861E7DC", "idfa"),
    ("38400000-8cf0-11bd-b23e-10b96e40000d", "gaid"),
    ("00000000-0000-0000-0000-000000000000", "idfa"),
    ("not-a-maid", None),
    ("6d92078a-8246-4ba4-ae5b-76104861e7dc", None),
]
EXTERNAL_IDS = ["CUST-1", 'quo"te', "back\\slash", "tab\there", "ünï", "  ", "CUST-1"]
COUNTRIES = ["US", "fr", "Germany", "XX", None, ""]
NAMES = ["Mary", "José", "O'Brien", "  ", None, "李"]
BIRTHS = ["19800115", "1990-02-30", "2001-12-31", "garbage", None]
CONSENTS = ["granted", "denied", None, None, None]  # as imported: our words, or unspecified
LDUS = ["off", "geolocate", "california", None, None]


def members(seed: int, count: int) -> tuple[pl.DataFrame, pl.DataFrame]:
    rnd = random.Random(seed)
    profiles: list[tuple[object, ...]] = []
    identifiers: list[tuple[int, str, str, str | None, str | None]] = []
    for pk in range(1, count + 1):
        profiles.append(
            (pk, f"P{pk}", rnd.choice(NAMES), rnd.choice(NAMES), rnd.choice(["Paris", "", None]),
             rnd.choice(["CA", "ny", None]), rnd.choice(["94107", "75-001", None, "9410 7"]),
             rnd.choice(COUNTRIES), rnd.choice(BIRTHS), rnd.choice(["m", "Female", "x", None]),
             rnd.choice(CONSENTS), rnd.choice(CONSENTS), rnd.choice(LDUS))
        )  # fmt: skip
        for _ in range(rnd.choice([0, 1, 1, 2, 3])):
            identifiers.append((pk, "email", rnd.choice(EMAILS), None, None))
        for _ in range(rnd.choice([0, 1, 2])):
            raw, e164 = rnd.choice(PHONES)
            identifiers.append((pk, "phone", raw, e164, None))
        for _ in range(rnd.choice([0, 0, 1, 2])):
            value, kind = rnd.choice(MOBILE_IDS)
            identifiers.append((pk, "mobile_id", value, None, kind))
        if rnd.random() < 0.5:
            identifiers.append((pk, "external_id", rnd.choice(EXTERNAL_IDS), None, None))
    return (
        pl.DataFrame(profiles, schema=PROFILE_SCHEMA, orient="row"),
        pl.DataFrame(identifiers, schema=IDENTIFIER_SCHEMA, orient="row"),
    )


@dataclass(frozen=True)
class Case:
    """One audience: its platform (and Google list type), what it sends, its default region."""

    platform: str
    mobile_list: bool = False
    allowed: frozenset[str] = SENDABLE
    region: str = "US"
    options: tuple[tuple[str, object], ...] = ()  # the audience's: consent, Limited Data Use


Records = tuple[list[tuple[int, str]], Counter[str]]


def by_connector(case: Case, profiles: pl.DataFrame, identifiers: pl.DataFrame) -> Records:
    connector = connector_for(
        case.platform,
        Settings(),
        Credentials(access_token="t"),
        ad_account_id="1",
        options={"default_region": case.region, **dict(case.options)},
    )
    if case.platform == "google":
        list_type = "MOBILE_ID" if case.mobile_list else "CONTACT_ID"
        connector.key_types["L"] = list_type  # type: ignore[attr-defined]
    users = users_of(profiles, identifiers, case.allowed)
    prepared = asyncio.run(connector.records_for("L", users))
    owners = profiles["profile_pk"].to_list()
    records = [
        (owners[owner], record_text(connector.record_pairs(prepared, record)))
        for record, owner in zip(prepared.records, prepared.owners, strict=True)
    ]
    dropped = Counter(prepared.dropped)
    dropped.pop("no_usable_identifier", None)
    return sorted(records), dropped


def by_columns(case: Case, profiles: pl.DataFrame, identifiers: pl.DataFrame) -> Records:
    built = record_frame(
        platform_spec(case.platform).shape,
        profiles,
        identifiers,
        case.allowed,
        region=case.region,
        mobile_list=case.mobile_list,
        options={"default_region": case.region, **dict(case.options)},
    )
    return sorted(built.records.rows()), +built.dropped


PLATFORMS = [("meta", False), ("google", False), ("google", True), ("tiktok", False),
             ("snapchat", False)]  # fmt: skip
NARROW = frozenset({"email", "phone", "mobile_id", "first_name", "zip"})


@pytest.mark.parametrize(("platform", "mobile_list"), PLATFORMS)
@pytest.mark.parametrize("allowed", [SENDABLE, NARROW], ids=["everything", "narrowed"])
def test_the_same_records_on_a_fixed_set(
    platform: str, mobile_list: bool, allowed: frozenset[str]
) -> None:
    case = Case(platform, mobile_list, allowed, region="FR")
    profiles, identifiers = members(seed=7, count=400)
    expected = by_connector(case, profiles, identifiers)
    assert expected[0], "the fixture produces records"
    assert by_columns(case, profiles, identifiers) == expected


DATA_USE = [
    (),
    (("consent", {"adUserData": "CONSENT_GRANTED", "adPersonalization": "CONSENT_GRANTED"}),),
    (("consent_ad_personalization", "denied"),),
    (("limited_data_use", "geolocate"),),
    (("limited_data_use", "california"), ("consent", "granted")),
]


@pytest.mark.parametrize(("platform", "mobile_list"), PLATFORMS)
@pytest.mark.parametrize("options", DATA_USE, ids=["none", "granted", "denied", "ldu", "ca"])
def test_the_same_records_whatever_the_members_allow(
    platform: str, mobile_list: bool, options: tuple[tuple[str, object], ...]
) -> None:
    case = Case(platform, mobile_list, options=options)
    profiles, identifiers = members(seed=11, count=300)
    assert by_columns(case, profiles, identifiers) == by_connector(case, profiles, identifiers)


@settings(max_examples=25, deadline=None)
@given(
    seed=st.integers(0, 10_000),
    count=st.integers(0, 40),
    platform=st.sampled_from(PLATFORMS),
    region=st.sampled_from(["US", "FR", "DE"]),
    options=st.sampled_from(DATA_USE),
)
def test_the_same_records_on_random_members(
    seed: int,
    count: int,
    platform: tuple[str, bool],
    region: str,
    options: tuple[tuple[str, object], ...],
) -> None:
    case = Case(*platform, region=region, options=options)
    profiles, identifiers = members(seed, count)
    assert by_columns(case, profiles, identifiers) == by_connector(case, profiles, identifiers)


def one_member(
    birth: str | None, ids: list[tuple[str, str, str | None]]
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Profile 1 with this date of birth and these (type, value, e164) identifiers."""
    profile: dict[str, object] = dict.fromkeys(PROFILE_SCHEMA) | {
        "profile_pk": 1,
        "profile_id": "P1",
        "date_of_birth": birth,
    }
    rows = [(1, kind, value, e164, None) for kind, value, e164 in ids]
    return (
        pl.DataFrame([profile], schema=PROFILE_SCHEMA),
        pl.DataFrame(rows, schema=IDENTIFIER_SCHEMA, orient="row"),
    )


@pytest.mark.parametrize("birth", ["04/07/1990", "1975-02-30", "1990-7-4", "garbage"])
def test_a_date_of_birth_meta_cannot_use_is_dropped_as_invalid_on_both_paths(birth: str) -> None:
    profiles, identifiers = one_member(birth, [("email", "a@example.com", None)])
    shape = platform_spec(SyncPlatform.META).shape
    built = record_frame(shape, profiles, identifiers, SENDABLE, region="US")
    assert built.drops.rows() == [(1, "date_of_birth", "invalid_date_of_birth", birth)]
    assert by_connector(Case("meta"), profiles, identifiers)[1] == built.dropped
    assert "DOBY" not in built.records["record"][0]


@pytest.mark.parametrize(("platform", "mobile_list"), PLATFORMS[1:])
def test_a_date_of_birth_is_not_counted_where_the_platform_has_no_key_for_it(
    platform: str, mobile_list: bool
) -> None:
    profiles, identifiers = one_member("04/07/1990", [("email", "a@example.com", None)])
    case = Case(platform, mobile_list)
    assert by_columns(case, profiles, identifiers)[1] == Counter()
    assert by_connector(case, profiles, identifiers)[1] == Counter()


@pytest.mark.parametrize(("platform", "mobile_list"), PLATFORMS)
def test_a_prehashed_email_and_phone_are_sent_as_the_digest_lowercased(
    platform: str, mobile_list: bool
) -> None:
    """As import stores `email_sha256` / `phone_sha256`: the digest as given, a phone without
    E.164. Sent lowercased, never hashed again, never counted `invalid_phone`."""
    email, phone = "AB" * 32, "Cd" * 32
    profiles, identifiers = one_member(None, [("email", email, None), ("phone", phone, None)])
    case = Case(platform, mobile_list)
    records, dropped = by_columns(case, profiles, identifiers)
    assert (records, dropped) == by_connector(case, profiles, identifiers)
    assert dropped == Counter()
    values = {value for _, text in records for _, value in decode_record(text)}
    if mobile_list:  # a Google mobile-id list sends mobile ids only
        assert records == []
    else:
        assert {email.lower(), phone.lower()} <= values


# --- records back from their text: Meta's rows built in columns --------------------------------

META_KEYS_SENT = ["EMAIL", "PHONE", "MADID", "EXTERN_ID", "FN", "LN", "ZIP", "CT", "DOBY", "GEN"]
PLAIN = st.text(alphabet="0123456789abcdef-_ .", min_size=1, max_size=12)
ODD = st.text(min_size=1, max_size=6)  # quotes, backslashes, control characters, anything


SENT_KEYS = {
    SyncPlatform.META: META_KEYS_SENT,
    SyncPlatform.TIKTOK: ["EMAIL_SHA256", "PHONE_SHA256", "IDFA_SHA256", "AAID_SHA256"],
    SyncPlatform.SNAPCHAT: ["EMAIL_SHA256", "PHONE_SHA256", "MOBILE_AD_ID_SHA256"],
}


@pytest.mark.parametrize("platform", list(SENT_KEYS))
@pytest.mark.parametrize("values", [PLAIN, PLAIN | ODD], ids=["plain", "any"])
@given(data=st.data())
@settings(max_examples=100, deadline=None)
def test_upload_rows_from_text_equal_the_decoded_records(
    platform: SyncPlatform, values: st.SearchStrategy[str], data: st.DataObject
) -> None:
    most = 1 if platform is SyncPlatform.SNAPCHAT else 6  # Snapchat: one value a record
    keys = st.sampled_from(SENT_KEYS[platform])
    row = st.dictionaries(keys, values, min_size=1, max_size=most)
    rows = data.draw(st.lists(row, min_size=1, max_size=20))
    settings = Settings(max_batch_size=data.draw(st.integers(1, 8)))  # batches cut in runs too
    connector = connector_for(platform, settings, Credentials(access_token="t"), ad_account_id="1")
    texts = [record_text(list(row.items())) for row in rows]
    expected = connector.prepared_from_records([decode_record(text) for text in texts])
    found = connector.prepared_from_texts(pl.Series(texts, dtype=pl.String))
    if any("\\" in text for text in texts):
        assert found is None  # escaped characters: decoded as JSON instead
        return
    assert found is not None
    assert (found.schema, found.users) == (expected.schema, expected.users)
    # The very batches are sent (Snapchat's records come in runs of one schema each, so they
    # are sliced); tuples or lists alike: what is sent is their JSON.
    batches = [([list(r) for r in rs], os) for rs, os in connector.plan(found)]
    assert batches == [([list(r) for r in rs], os) for rs, os in connector.plan(expected)]


GOOGLE_PAIRS = st.one_of(
    st.tuples(st.sampled_from(["hashedEmail", "hashedPhoneNumber", "mobileId"]), PLAIN),
    st.tuples(st.just("address"), st.lists(PLAIN, min_size=4, max_size=4).map("|".join)),
)


@given(rows=st.lists(st.lists(GOOGLE_PAIRS, min_size=1, max_size=6), min_size=1, max_size=20))
@settings(max_examples=100, deadline=None)
def test_google_members_from_text_equal_the_decoded_records(
    rows: list[list[tuple[str, str]]],
) -> None:
    # A Google record may hold several values of a key (all of a member's emails and phones).
    connector = connector_for(
        SyncPlatform.GOOGLE, Settings(), Credentials(access_token="t"), ad_account_id="1"
    )
    texts = [record_text(row) for row in rows]
    expected = connector.prepared_from_records([decode_record(text) for text in texts])
    found = connector.prepared_from_texts(pl.Series(texts, dtype=pl.String))
    assert found is not None
    assert (found.records, found.owners, found.users) == (
        expected.records,
        expected.owners,
        expected.users,
    )
    escaped = record_text([("hashedEmail", 'a"b')])
    assert connector.prepared_from_texts(pl.Series([escaped])) is None  # decoded as JSON


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.tuples(st.integers(0, 4), st.sampled_from(["EMAIL", "PHONE", None])), max_size=40)
)
def test_ranks_are_positions_among_rows_sharing_the_keys(
    rows: list[tuple[int, str | None]],
) -> None:
    """`ranked` (by sorting) equals Polars' window formulation, nulls as one group."""
    from audience_sync.connectors.columnar import ranked

    frame = pl.DataFrame(rows, schema={"owner": pl.Int64, "key": pl.String}, orient="row")
    expected = frame.select(pl.int_range(pl.len(), dtype=pl.Int64).over("owner", "key"))
    assert ranked(frame, "owner", "key").to_list() == expected.to_series().to_list()
    expected = frame.select(pl.int_range(pl.len(), dtype=pl.Int64).over("key"))
    assert ranked(frame, "key").to_list() == expected.to_series().to_list()


@given(rows=st.lists(st.lists(st.tuples(PLAIN, PLAIN), min_size=1, max_size=2), max_size=12))
@settings(max_examples=100, deadline=None)
def test_one_pair_texts_split_once_as_text_pairs_splits_them(
    rows: list[list[tuple[str, str]]],
) -> None:
    from audience_sync.connectors.columnar import single_pairs, text_pairs

    texts = pl.Series([record_text(row) for row in rows], dtype=pl.String)
    found = single_pairs(texts)
    if rows and all(len(row) == 1 for row in rows):
        assert found is not None
        assert found.equals(text_pairs(texts))
    else:
        assert found is None  # none, or a text of two pairs: `text_pairs` does those
    assert single_pairs(pl.Series([record_text([("EMAIL_SHA256", 'a"b')])])) is None
