"""Countries become ISO alpha-2 lowercase from codes, names and everyday aliases."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from audience_sync.identifiers import normalize_country


@pytest.mark.parametrize(
    ("value", "code"),
    [
        ("US", "us"),
        ("us", "us"),
        (" USA ", "us"),
        ("United States", "us"),
        ("United States of America", "us"),
        ("U.S.A.", "us"),
        ("United Kingdom", "gb"),
        ("GBR", "gb"),
        ("UK", "gb"),
        ("england", "gb"),
        ("Germany", "de"),
        ("DEU", "de"),
        ("Côte d'Ivoire", "ci"),
        ("Cote d Ivoire", "ci"),
        ("South Korea", "kr"),
        ("Korea, Republic of", "kr"),
        ("Bolivia", "bo"),
        ("Türkiye", "tr"),
        ("Turkey", "tr"),
        ("Viet Nam", "vn"),
    ],
)
def test_a_country_name_or_code_maps_to_alpha_2(value: str, code: str) -> None:
    assert normalize_country(value) == code


@pytest.mark.parametrize("value", ["", "  ", "XX", "Atlantis", "840", "ZZZ", "Deutsch"])
def test_an_unknown_country_is_none(value: str) -> None:
    assert normalize_country(value) is None


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=20))
def test_country_lookup_never_raises(value: str) -> None:
    result = normalize_country(value)
    assert result is None or (len(result) == 2 and result.islower())
