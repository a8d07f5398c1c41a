"""The fields we normalize, the reasons a value is dropped, and coercion from enums or strings
(a platform's rules: `identifiers.platforms.rules_for`)."""

from __future__ import annotations

from enum import StrEnum

from audience_sync.domain.models import IdentifierType


class Field(StrEnum):
    """Every field a platform can match on: the four identifier types and the enhanced fields.

    The first four values equal `IdentifierType`'s, so either enum (or the plain string) works
    wherever a field is expected. A date of birth is not here: it expands to three keys through
    `expand_date_of_birth`.
    """

    EMAIL = "email"
    PHONE = "phone"
    MOBILE_ID = "mobile_id"
    EXTERNAL_ID = "external_id"
    FIRST_NAME = "first_name"
    LAST_NAME = "last_name"
    CITY = "city"
    STATE = "state"
    ZIP = "zip"
    COUNTRY = "country"
    GENDER = "gender"


class Reason(StrEnum):
    """Why a value was dropped; the sync counts these per identifier type for its diagnostics."""

    EMPTY = "empty"  # None, or nothing left after trimming whitespace
    UNSUPPORTED = "unsupported_by_platform"  # the platform has no key for this field
    INVALID_EMAIL = "invalid_email"
    INVALID_PHONE = "invalid_phone"
    ZEROED_MAID = "zeroed_maid"  # the all-zero id of limit-ad-tracking devices
    INVALID_MOBILE_ID = "invalid_mobile_id"
    INVALID_EXTERNAL_ID = "invalid_external_id"
    INVALID_FIRST_NAME = "invalid_first_name"
    INVALID_LAST_NAME = "invalid_last_name"
    INVALID_CITY = "invalid_city"
    INVALID_STATE = "invalid_state"
    INVALID_ZIP = "invalid_zip"
    INVALID_COUNTRY = "invalid_country"
    INVALID_GENDER = "invalid_gender"
    INVALID_DATE_OF_BIRTH = "invalid_date_of_birth"


INVALID: dict[Field, Reason] = {
    Field.EMAIL: Reason.INVALID_EMAIL,
    Field.PHONE: Reason.INVALID_PHONE,
    Field.MOBILE_ID: Reason.INVALID_MOBILE_ID,
    Field.EXTERNAL_ID: Reason.INVALID_EXTERNAL_ID,
    Field.FIRST_NAME: Reason.INVALID_FIRST_NAME,
    Field.LAST_NAME: Reason.INVALID_LAST_NAME,
    Field.CITY: Reason.INVALID_CITY,
    Field.STATE: Reason.INVALID_STATE,
    Field.ZIP: Reason.INVALID_ZIP,
    Field.COUNTRY: Reason.INVALID_COUNTRY,
    Field.GENDER: Reason.INVALID_GENDER,
}
"""The reason code for a value of each field that is present but unusable."""


def as_field(identifier_type: Field | IdentifierType | str) -> Field:
    """The `Field` for an enum member or its string value; `ValueError` for anything else."""
    if isinstance(identifier_type, Field):  # the common case, and the bulk path's per-row one
        return identifier_type
    try:
        return Field(str(identifier_type))
    except ValueError:
        raise ValueError(f"unknown identifier type {identifier_type!r}") from None
