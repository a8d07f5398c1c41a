"""What a member allows: Google consent and Meta Limited Data Use, resolved member by member.

Each choice is read in this order, the first one set wins (docs/connectors.md, "Consent and
Limited Data Use"): the member's own (its profile's import columns), then the audience's option
(`consent`, `limited_data_use`), then the connection's default (its settings, same names). A
value outside the words below is a `ValidationError`. Pure: no DB, HTTP or settings.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from audience_sync.exceptions import ValidationError

# Profile column → Data Manager `Consent` field (google/ads/datamanager/v1/consent.proto).
CONSENT_FIELDS = {
    "consent_ad_user_data": "adUserData",
    "consent_ad_personalization": "adPersonalization",
}
CONSENT_VALUES = ("granted", "denied")
WIRE_CONSENT = {"granted": "CONSENT_GRANTED", "denied": "CONSENT_DENIED"}
# Meta's data processing options, by the name we give them: None = no Limited Data Use, else
# (country, state): 0 = "Meta geolocates", 1 = United States, 1000 = California.
LDU_LOCATIONS: dict[str, tuple[int, int] | None] = {
    "off": None,
    "geolocate": (0, 0),
    "california": (1, 1000),
}
LDU_COLUMN = "limited_data_use"
DATA_USE_COLUMNS = (*CONSENT_FIELDS, LDU_COLUMN)
"""The profile columns, and the connection settings that give their defaults."""

_CONSENT_ALIASES = {
    "granted": "granted",
    "consent_granted": "granted",
    "denied": "denied",
    "consent_denied": "denied",
    "unspecified": None,
    "consent_status_unspecified": None,
}


def parse_consent(value: object) -> str | None:
    """`granted`, `denied` or None (unspecified), from our words or Google's, any case."""
    if value is None or value == "":
        return None
    key = str(value).strip().lower()
    if key not in _CONSENT_ALIASES:
        raise ValidationError(
            f"consent must be one of {', '.join(CONSENT_VALUES)} (found {value!r})"
        )
    return _CONSENT_ALIASES[key]


def parse_ldu(value: object) -> str | None:
    """`off`, `geolocate`, `california` or None (not set), any case."""
    if value is None or value == "":
        return None
    key = str(value).strip().lower()
    if key not in LDU_LOCATIONS:
        raise ValidationError(
            f"limited_data_use must be one of {', '.join(LDU_LOCATIONS)} (found {value!r})"
        )
    return key


def with_connection_defaults(
    settings: Mapping[str, Any] | None, config: Mapping[str, Any]
) -> dict[str, Any]:
    """An audience's options with its connection's data-use defaults beneath them."""
    defaults = {k: settings[k] for k in DATA_USE_COLUMNS if settings and settings.get(k)}
    return {**defaults, **config}


def audience_consent(options: Mapping[str, Any]) -> dict[str, str | None]:
    """Each consent column's value for members without their own: the audience's `consent`
    (Google's `{"adUserData": "CONSENT_GRANTED", ...}`, or one word for both), else the
    option of the column's name (the connection's default)."""
    consent = options.get("consent")
    found: dict[str, str | None] = {}
    for column, wire in CONSENT_FIELDS.items():
        value = consent.get(wire) if isinstance(consent, Mapping) else consent
        found[column] = parse_consent(value) or parse_consent(options.get(column))
    return found


def wire_consent(values: Mapping[str, str | None]) -> dict[str, str]:
    """A Data Manager `Consent` of these column values (unspecified fields left out)."""
    return {CONSENT_FIELDS[c]: WIRE_CONSENT[v] for c, v in values.items() if v is not None}


def member_consent(
    own: Mapping[str, str | None], audience: Mapping[str, str | None]
) -> dict[str, str | None] | None:
    """A member's consent when it has its own (each field: its own, else the audience's);
    None when it has none of its own (the request's consent applies)."""
    if all(own.get(column) is None for column in CONSENT_FIELDS):
        return None
    return {column: own.get(column) or audience[column] for column in CONSENT_FIELDS}


def is_denied(values: Mapping[str, str | None]) -> bool:
    """Denied either consent: the member is not sent (Google keeps such data from being used)."""
    return any(values.get(column) == "denied" for column in CONSENT_FIELDS)


def ldu_location(own: str | None, options: Mapping[str, Any]) -> tuple[int, int] | None:
    """A member's Limited Data Use (country, state), or None: its own, else the audience's."""
    chosen = parse_ldu(own) or parse_ldu(options.get(LDU_COLUMN)) or "off"
    return LDU_LOCATIONS[chosen]


def data_use_settings(**given: str | None) -> dict[str, str | None]:
    """The connection settings of the data-use defaults given (`None`: not given), checked;
    `unspecified` consent is None, which removes a stored default."""
    parsers = {**dict.fromkeys(CONSENT_FIELDS, parse_consent), LDU_COLUMN: parse_ldu}
    return {name: parsers[name](value) for name, value in given.items() if value is not None}
