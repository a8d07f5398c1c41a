"""Masked forms of identifier values: enough for a person to recognise a value, never to read it.

Diagnostics show the user which value of a profile was dropped (`sync.diagnostics`), and the raw
value must not be stored or shown there. Each field gets one rule:

- email: the first character of the local part, `***`, then the domain, when the domain looks
  like one (`jane.doe@gmail.com` → `j***@gmail.com`); a local part under 4 characters shows none;
- phone: the country code (when the value starts with `+` and has one) and the last two digits
  (`+447700900931` → `+44 ••• ••31`); other phones show the last two digits only; under 7 digits
  nothing at all;
- everything else (mobile ids, external ids, names, cities, zips, countries...): the first
  character and `***`, plus the last character when the value has 7 or more (`a***z`); under 4
  characters nothing (`***`).

So a mask shows at most ~30% of the secret part of a value (2 characters of 7, 1 of 4); the
domain of an email and the country code of a phone are shown on purpose: they say where to
look, not who it is. The filler (`***`, `•••`) is constant and carries nothing.
"""

from __future__ import annotations

import re

import phonenumbers
from phonenumbers import NumberParseException

from audience_sync.identifiers.fields import Field

FILLER = "***"
PHONE_FILLER = "••• ••"
HIDDEN_PHONE = "•••"
# A domain shown as is: letters, digits, dots and hyphens with a dotted ending. An invalid
# email's "domain" can be any text (`call me @ 555 1234`): then it is masked like the rest.
_DOMAIN = re.compile(r"[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}")
_NOT_DIGIT = re.compile(r"\D")


def mask_value(value: str | None, field: str | None) -> str | None:
    """The masked form of `value`, a value of `field` (a `Field` value); None stays None."""
    if value is None:
        return None
    text = value.strip()
    if field == Field.EMAIL.value:
        return mask_email(text)
    if field == Field.PHONE.value:
        return mask_phone(text)
    return mask_text(text)


def mask_text(text: str) -> str:
    """`a***` (4 to 6 characters), `a***z` (7 or more), `***` (fewer than 4)."""
    if len(text) >= 7:
        return f"{text[0]}{FILLER}{text[-1]}"
    if len(text) >= 4:
        return f"{text[0]}{FILLER}"
    return FILLER


def mask_email(text: str) -> str:
    """`j***@gmail.com`: the local part's first character (4 or more), the domain as is."""
    at = text.rfind("@")
    local, domain = text[:at], text[at + 1 :]
    if at <= 0 or not _DOMAIN.fullmatch(domain):
        return mask_text(text)
    shown = local[0] if len(local) >= 4 else ""
    return f"{shown}{FILLER}@{domain}"


def mask_phone(text: str) -> str:
    """`+44 ••• ••31`: country code and last two digits; `••• ••31` without a country code;
    `•••` under 7 digits."""
    digits = _NOT_DIGIT.sub("", text)
    if len(digits) < 7:
        return HIDDEN_PHONE
    code = _country_code(text, digits)
    prefix = f"+{code} " if code else ""
    return f"{prefix}{PHONE_FILLER}{digits[-2:]}"


def _country_code(text: str, digits: str) -> str | None:
    """The calling code a `+` number starts with, when libphonenumber finds one and at least
    seven digits follow it: the two digits shown are then under 30% of the national number
    (the code says which country, not who)."""
    if not text.startswith("+"):
        return None
    try:
        code = str(phonenumbers.parse(text, None).country_code)
    except NumberParseException:
        return None
    return code if digits.startswith(code) and len(digits) - len(code) >= 7 else None
