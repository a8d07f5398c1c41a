"""A phone written with its own country code parses without a region; any other is None."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from audience_sync.identifiers import parse_international_phone, parse_phone_e164


@pytest.mark.parametrize(
    ("raw", "e164"),
    [
        ("+1 (650) 555-1212", "+16505551212"),
        ("0044 20 7946 0958", "+442079460958"),
        ("(+44) 20 7946 0958", "+442079460958"),
        ("+44 (0) 20 7946 0958", "+442079460958"),
        ("＋44 20 7946 0958", "+442079460958"),
        ("  +49 30 1234567  ", "+49301234567"),
        ("+37493828222", "+37493828222"),
    ],
)
def test_a_phone_with_its_country_code_parses_to_e164(raw: str, e164: str) -> None:
    assert parse_international_phone(raw) == e164


@pytest.mark.parametrize(
    "raw",
    [
        "(650) 555-1212",  # national: US by default elsewhere, never here
        "020 7946 0958",
        "011 44 20 7946 0958",  # the US exit code is a region's rule, not a country code
        "+999 123 456",
        "+1 650",
        "+",
        "00",
        "",
        "   ",
        "hello",
        "\ud800",
    ],
)
def test_a_phone_without_its_country_code_is_none(raw: str) -> None:
    assert parse_international_phone(raw) is None


def test_a_non_string_is_none() -> None:
    assert parse_international_phone(6505551212) is None  # type: ignore[arg-type]


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet="+0123456789 ()-.x", max_size=24))
def test_it_agrees_with_parse_phone_e164_on_international_numbers(raw: str) -> None:
    # Whatever the region, parse_phone_e164 reads a number carrying its country code the same
    # way; parse_international_phone gives that result or, for a national number, None.
    result = parse_international_phone(raw)
    assert result is None or result == parse_phone_e164(raw, "US") == parse_phone_e164(raw, "JP")


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=30))
def test_it_never_raises(raw: str) -> None:
    result = parse_international_phone(raw)
    assert result is None or result.startswith("+")
