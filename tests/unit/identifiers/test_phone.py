"""Phones are parsed once to E.164, and stored E.164 is recognised without parsing again."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from audience_sync.identifiers import parse_phone_e164
from audience_sync.identifiers.phone import e164_table, resolve_region


@pytest.mark.parametrize(
    ("raw", "region", "e164"),
    [
        ("(650)555-1212", "US", "+16505551212"),
        ("+1 (650) 555-1212", "US", "+16505551212"),
        ("+1 (650) 555-1212", "GB", "+16505551212"),
        ("001 650 555 1212", "US", "+16505551212"),
        ("0044 20 7946 0958", "US", "+442079460958"),
        ("020 7946 0958", "GB", "+442079460958"),
        ("374-93-828222", "AM", "+37493828222"),
        ("650 555 1212", None, "+16505551212"),
        ("  (800)555-0100  ", "US", "+18005550100"),
        ("020 7946 0958", "United Kingdom", "+442079460958"),
        ("030 1234567", "de", "+49301234567"),
    ],
)
def test_a_raw_phone_parses_to_e164(raw: str, region: str | None, e164: str) -> None:
    assert parse_phone_e164(raw, region) == e164


@pytest.mark.parametrize(
    "raw",
    ["", "   ", "+0000000000", "hello", "12", "+1 650", "00", "+", "\ud800", "+999 123 456"],
)
def test_an_unusable_phone_is_none(raw: str) -> None:
    assert parse_phone_e164(raw, "US") is None


def test_an_unknown_region_falls_back_to_us() -> None:
    assert resolve_region("Atlantis") == "US"
    assert resolve_region(None) == "US"
    assert resolve_region("gbr") == "GB"
    assert parse_phone_e164("650 555 1212", "Atlantis") == "+16505551212"


@settings(max_examples=300, deadline=None)
@given(raw=st.text(max_size=30), region=st.one_of(st.none(), st.text(max_size=4)))
def test_parsing_never_raises(raw: str, region: str | None) -> None:
    result = parse_phone_e164(raw, region)
    assert result is None or result.startswith("+")


@st.composite
def plus_digits(draw: st.DrawFn) -> str:
    """`+`, a real calling code, then digits of a length near the code's possible lengths."""
    table = e164_table()
    code = draw(st.sampled_from(sorted(table.codes)))
    length = draw(st.integers(min_value=1, max_value=18))
    digits = draw(st.text(alphabet="0123456789", min_size=length, max_size=length))
    return f"+{code}{digits}"


@settings(max_examples=600, deadline=None)
@given(text=plus_digits())
def test_the_e164_shortcut_agrees_with_libphonenumber(text: str) -> None:
    # The bulk path skips parsing for what the shortcut accepts: it must be exactly what a full
    # parse gives back.
    if e164_table().canonical(text) is not None:
        assert parse_phone_e164(text, "US") == text
        assert parse_phone_e164(text, "GB") == text


def test_stored_e164_takes_the_shortcut() -> None:
    table = e164_table()
    for stored in ("+16505551212", "+442079460958", "+37493828222", "+390612345678"):
        assert parse_phone_e164(stored, None) == stored
        assert table.canonical(stored) == stored


def test_a_number_with_a_trunk_prefix_is_parsed_not_shortcut() -> None:
    # Germany drops the national prefix 0 even after +49: only a real parse gets it right.
    assert e164_table().canonical("+49030123456") is None
    assert parse_phone_e164("+49030123456", "US") == "+4930123456"
