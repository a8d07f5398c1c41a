"""The per-item rules of `docs/normalization.md`: one value in, what is sent out.

This is the simple reference. `bulk.py` computes the same results for millions of values at a
time and the tests hold the two to agreement on random messy input.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Callable
from datetime import date

from audience_sync.domain.models import IdentifierType
from audience_sync.identifiers.fields import INVALID, Field, Reason, as_field
from audience_sync.identifiers.geo import normalize_country, us_state_code
from audience_sync.identifiers.phone import parse_phone_e164
from audience_sync.identifiers.platforms import EmailRule, PlatformRules, as_platform
from audience_sync.identifiers.text import (
    WHITESPACE,
    WHITESPACE_RUN,
    clean,
    has_whitespace,
    is_prehashed,
    is_utf8,
    sha256_hex,
)

Outcome = tuple[str | None, Reason | None]
"""What is sent (None when unusable) and, when unusable, why."""

Platform = PlatformRules | str
"""A platform's rules (`identifiers.platforms`), or its name (a `SyncPlatform` is one)."""

GMAIL_DOMAINS = frozenset({"gmail.com", "googlemail.com"})
ZERO_MAID = "00000000-0000-0000-0000-000000000000"
_HEX = frozenset("0123456789abcdefABCDEF")
_DIGITS = frozenset("0123456789")

Rule = Callable[[str, PlatformRules, str], "str | Reason"]


def is_hashed(platform: Platform, field: Field) -> bool:
    """Whether the platform takes this field as a SHA-256 digest (else the normalized value)."""
    return as_platform(platform).is_hashed(field)


def normalize(
    value: str | None,
    identifier_type: Field | IdentifierType | str,
    platform: Platform,
    region: str = "US",
) -> Outcome:
    """What is sent to `platform` for `value` as `identifier_type`, or None and the reason.

    Never raises on a value, whatever it holds; an unknown type or platform is a `ValueError`.
    """
    field, target = as_field(identifier_type), as_platform(platform)
    if field not in target.supported:
        return None, Reason.UNSUPPORTED
    if value is None:
        return None, Reason.EMPTY
    if not isinstance(value, str):
        return None, INVALID[field]
    text = clean(value)
    if not text:
        return None, Reason.EMPTY
    if not is_utf8(text):
        return None, INVALID[field]
    hashed = target.is_hashed(field)
    if hashed and is_prehashed(text):
        return text.lower(), None  # already a digest: never hashed twice
    normalized = RULES[field](text, target, region)
    if isinstance(normalized, Reason):
        return None, normalized
    return (sha256_hex(normalized) if hashed else normalized), None


def hash_identifier(
    value: str | None,
    identifier_type: Field | IdentifierType | str,
    platform: Platform,
    *,
    region: str = "US",
) -> str | None:
    """Exactly what is sent to `platform` for this value, or None when it is unusable.

    The lowercase hex SHA-256 of the normalized value where the platform hashes the field, the
    normalized value itself where it does not (Meta MADID and EXTERN_ID, Google mobile ids,
    Google's region and postal codes). `region` is where national phone numbers are dialled.
    """
    return normalize(value, identifier_type, platform, region)[0]


def drop_reason(
    value: str | None,
    identifier_type: Field | IdentifierType | str,
    platform: Platform,
    *,
    region: str = "US",
) -> Reason | None:
    """Why this value is dropped for the platform, or None when it is usable."""
    return normalize(value, identifier_type, platform, region)[1]


# --- the rules, one per field: cleaned (NFC, trimmed, non-empty) text in ----------------------


def _email(text: str, platform: PlatformRules, region: str) -> str | Reason:
    email = text.lower()
    if platform.email is EmailRule.GMAIL:  # Google: remove all whitespace, inside too
        email = "".join(ch for ch in email if ch not in WHITESPACE)
    if email.count("@") != 1 or has_whitespace(email):
        return Reason.INVALID_EMAIL
    local, domain = email.split("@")
    labels = domain.split(".")
    if not local or len(labels) < 2 or not all(labels):
        return Reason.INVALID_EMAIL
    if platform.email is EmailRule.GMAIL and domain in GMAIL_DOMAINS:
        local = local.split("+", 1)[0].replace(".", "")
    elif platform.email is EmailRule.PLUS_TAG:  # TikTok's guide: +tag dropped on any domain
        local = local.split("+", 1)[0]
    if not local:
        return Reason.INVALID_EMAIL
    return f"{local}@{domain}"


def _phone(text: str, platform: PlatformRules, region: str) -> str | Reason:
    e164 = parse_phone_e164(text, region)
    if e164 is None:
        return Reason.INVALID_PHONE
    # Google hashes E.164 with its `+`; Meta, TikTok (newest ID guide) and Snapchat the digits.
    return e164 if platform.phone_with_plus else e164[1:]


def _mobile_id(text: str, platform: PlatformRules, region: str) -> str | Reason:
    if text == ZERO_MAID:
        return Reason.ZEROED_MAID
    groups = text.split("-")
    if [len(group) for group in groups] != [8, 4, 4, 4, 12] or not set("".join(groups)) <= _HEX:
        return Reason.INVALID_MOBILE_ID
    return text.upper() if platform.mobile_id_upper else text.lower()


def _external_id(text: str, platform: PlatformRules, region: str) -> str | Reason:
    return text


# Meta's FN/LN are letters only, as its SDK's customer-list normalization keeps them
# ([SEEN: facebook/facebook-python-business-sdk:facebook_business/adobjects/helpers/
# customaudiencemixin.py] `re.sub(r'[^a-zA-Z]', '', v)`: `Mary Ann` and `Mary-Ann` → `maryann`),
# except that letters of other scripts stay, as UTF-8 ([SEEN: Meta's customer-file hashing
# table as copied in https://help.hcltechsw.com/unica/Link/en/12.1.5/Link/Facebook/
# data_normalization.html, "LN and FN ... Use a-z only. Lowercase only, no punctuation. Special
# characters in UTF-8 format."]; the SDK drops them, which would make `José` `jos`). Google
# keeps the space between words.
def _name(text: str, reason: Reason) -> str | Reason:
    kept = "".join(ch for ch in text.lower() if not unicodedata.category(ch).startswith("P"))
    name = WHITESPACE_RUN.sub(" ", kept).strip(" ")
    return name or reason


def _letters(text: str) -> str:
    # Letters of any script, with their combining marks (a Devanagari vowel sign is part of the
    # letter); spaces, digits, punctuation and symbols go: `New York` → `newyork`.
    return "".join(ch for ch in text.lower() if unicodedata.category(ch)[0] in "LM")


def _first_name(text: str, platform: PlatformRules, region: str) -> str | Reason:
    if platform.letters_only_names:
        return _letters(text) or Reason.INVALID_FIRST_NAME
    return _name(text, Reason.INVALID_FIRST_NAME)


def _last_name(text: str, platform: PlatformRules, region: str) -> str | Reason:
    if platform.letters_only_names:
        return _letters(text) or Reason.INVALID_LAST_NAME
    return _name(text, Reason.INVALID_LAST_NAME)


def _city(text: str, platform: PlatformRules, region: str) -> str | Reason:
    return _letters(text) or Reason.INVALID_CITY


def _state(text: str, platform: PlatformRules, region: str) -> str | Reason:
    letters = _letters(text)
    if not letters:
        return Reason.INVALID_STATE
    return us_state_code(letters) or letters


def _zip(text: str, platform: PlatformRules, region: str) -> str | Reason:
    if platform.raw_zip:
        return text  # Google's postalCode: trimmed, raw
    code = "".join(ch for ch in text.lower() if ch not in WHITESPACE and ch != "-")
    if len(code) in (5, 9) and set(code) <= _DIGITS:
        code = code[:5]  # a US zip (5 or 9 digits) → its first 5
    return code or Reason.INVALID_ZIP


def _country(text: str, platform: PlatformRules, region: str) -> str | Reason:
    code = normalize_country(text)
    if code is None:
        return Reason.INVALID_COUNTRY
    return code.upper() if platform.upper_country else code  # Google's regionCode: uppercase


_GENDERS = {"m": "m", "male": "m", "man": "m", "f": "f", "female": "f", "woman": "f"}


def _gender(text: str, platform: PlatformRules, region: str) -> str | Reason:
    return _GENDERS.get(text.lower(), Reason.INVALID_GENDER)  # never a default


RULES: dict[Field, Rule] = {
    Field.EMAIL: _email,
    Field.PHONE: _phone,
    Field.MOBILE_ID: _mobile_id,
    Field.EXTERNAL_ID: _external_id,
    Field.FIRST_NAME: _first_name,
    Field.LAST_NAME: _last_name,
    Field.CITY: _city,
    Field.STATE: _state,
    Field.ZIP: _zip,
    Field.COUNTRY: _country,
    Field.GENDER: _gender,
}


# --- date of birth: one value, three keys ----------------------------------------------------

DOB_KEYS = ("DOBY", "DOBM", "DOBD")


def split_date_of_birth(value: str | None) -> tuple[str, str, str] | None:
    """`YYYYMMDD` or `YYYY-MM-DD` → (`YYYY`, `MM`, `DD`); None for anything else or no such day."""
    if not isinstance(value, str):
        return None
    text = clean(value)
    if len(text) == 10 and text[4] == "-" and text[7] == "-":
        text = text[:4] + text[5:7] + text[8:]
    if len(text) != 8 or not set(text) <= _DIGITS:
        return None
    year, month, day = text[:4], text[4:6], text[6:]
    try:
        date(int(year), int(month), int(day))
    except ValueError:
        return None
    return year, month, day


def expand_date_of_birth(value: str | None, platform: Platform = "meta") -> dict[str, str] | None:
    """Meta's three date-of-birth keys, hashed: `{"DOBY": …, "DOBM": …, "DOBD": …}`.

    None when the value is not a possible date, or the platform has no date-of-birth keys
    (only Meta has them). Never raises on a value.
    """
    if not as_platform(platform).date_of_birth:
        return None
    parts = split_date_of_birth(value)
    if parts is None:
        return None
    return {key: sha256_hex(part) for key, part in zip(DOB_KEYS, parts, strict=True)}


def date_of_birth_reason(value: str | None, platform: Platform = "meta") -> Reason | None:
    """Why `expand_date_of_birth` gives None for this value (None when it does not)."""
    if not as_platform(platform).date_of_birth:
        return Reason.UNSUPPORTED
    if value is None or (isinstance(value, str) and not clean(value)):
        return Reason.EMPTY
    return None if split_date_of_birth(value) is not None else Reason.INVALID_DATE_OF_BIRTH
