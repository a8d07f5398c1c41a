"""Masks show a value's shape, never the value: the examples of the rules, and properties."""

from __future__ import annotations

import re

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from audience_sync.identifiers.mask import mask_value

# The filler characters are the mask's own: values drawn without them, so that finding a piece of
# the value in the mask means the mask showed it.
TEXT = st.text(
    alphabet=st.characters(blacklist_characters="*•", blacklist_categories=("Cs",)), max_size=60
)


@pytest.mark.parametrize(
    ("value", "field", "masked"),
    [
        ("jane.doe@gmail.com", "email", "j***@gmail.com"),
        ("jo@gmail.com", "email", "***@gmail.com"),
        ("not an email", "email", "n***l"),
        ("call me @ 555 1234 please", "email", "c***e"),
        ("+447700900931", "phone", "+44 ••• ••31"),
        ("+1 650 555 0100", "phone", "+1 ••• ••00"),
        ("07700 900931", "phone", "••• ••31"),
        ("12345", "phone", "•••"),
        ("00000000-0000-0000-0000-000000000000", "mobile_id", "0***0"),
        ("crm-42", "external_id", "c***"),
        ("Al", "first_name", "***"),
        ("Narnia", "country", "N***"),
        (None, "email", None),
    ],
)
def test_each_field_has_its_mask(value: str | None, field: str, masked: str | None) -> None:
    assert mask_value(value, field) == masked


def windows(text: str, size: int = 4) -> set[str]:
    return {text[i : i + size] for i in range(len(text) - size + 1)}


@given(TEXT)
def test_a_mask_shows_no_four_characters_of_a_value_in_a_row(value: str) -> None:
    for field in ("mobile_id", "external_id", "first_name", "city", "zip"):
        masked = mask_value(value, field)
        assert masked is not None
        assert not any(piece in masked for piece in windows(value.strip()))
        shown = len(masked.replace("***", ""))
        assert shown <= max(0.3 * len(value.strip()), 0)


@given(TEXT, st.from_regex(r"[a-z0-9-]{1,20}\.[a-z]{2,6}", fullmatch=True))
def test_an_email_mask_shows_the_domain_and_one_character_of_the_local_part(
    local: str, domain: str
) -> None:
    value = f"{local}@{domain}"
    masked = mask_value(value, "email")
    assert masked is not None
    assert value.strip() not in masked or len(value.strip()) < 4
    hidden = masked.rsplit("@", 1)[0] if masked.endswith(f"@{domain}") else masked
    assert not any(piece in hidden for piece in windows(local.strip()))
    assert len(hidden.replace("***", "")) <= 2


@given(st.sampled_from(["+44", "+1", "+880", "+33", "", "0"]), st.from_regex(r"[0-9 ]{0,16}"))
@example("+44", "123456")  # the boundaries: 6 and 7 digits after the country code
@example("+44", "1234567")
def test_a_phone_mask_shows_the_country_code_and_two_digits_at_most(code: str, number: str) -> None:
    value = code + number
    masked = mask_value(value, "phone")
    assert masked is not None
    digits = re.sub(r"\D", "", value)
    shown = re.sub(r"\D", "", masked)
    assert len(shown) <= len(code.lstrip("+")) + 2
    if len(digits) >= 4:
        assert digits not in shown
    middle = digits[len(code.lstrip("+")) : -2]
    assert not any(piece in shown for piece in windows(middle))
    # The two digits shown are under 30% of what the country code leaves.
    country = masked[1:].split(" ", 1)[0] if masked.startswith("+") else ""
    if shown != country:
        assert 0.3 * (len(digits) - len(country)) > 2
