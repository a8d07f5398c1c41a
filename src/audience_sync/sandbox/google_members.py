"""Parsing Data Manager `audienceMembers` into member rows, with Google's validation reasons."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from operator import itemgetter
from typing import Any

from audience_sync.sandbox.google_common import GOOGLE_KEYS, KEY_TYPE_OF_WIRE_KEY
from audience_sync.sandbox.members import Row, all_hex

MAX_IDENTIFIERS = 10  # per member (docs/platforms/google.md §2.5)
DATA_TYPES = ("userData", "mobileData", "userIdData")
NOT_EMULATED = (
    "pairData",
    "ppidData",
    "compositeData",
    "googleUserIdData",
    "partnerProvidedIdData",
)
REGION = re.compile(r"[A-Z]{2}")
HEX = re.compile(r"[0-9a-fA-F]*")
B64 = re.compile(r"[A-Za-z0-9+/]*={0,2}")

Violation = tuple[str, str, str]  # field, description, ErrorReason


class MemberProblemError(Exception):
    def __init__(self, violations: list[Violation]) -> None:
        super().__init__(violations[0][2])
        self.violations = violations


@dataclass
class ParsedMembers:
    rows: list[Row] = field(default_factory=list)
    data_type: str = "userData"
    key_type: str = "CONTACT_ID"
    identifiers: int = 0
    denied: int = 0
    consents: list[dict[str, str]] = field(default_factory=list)  # each row's, as it applies
    labels: list[str] | None = None  # each row's `row_label`, when parsing made them already

    def row_labels(self) -> list[str]:
        return self.labels if self.labels is not None else list(map(row_label, self.rows))


# Data Manager's `Consent` (google/ads/datamanager/v1/consent.proto): two optional fields of
# `ConsentStatus`. [SEEN: googleapis google/ads/datamanager/v1/consent.proto]
CONSENT_FIELDS = {"adUserData": "ad_user_data", "adPersonalization": "ad_personalization"}
CONSENT_STATUSES = frozenset({"CONSENT_STATUS_UNSPECIFIED", "CONSENT_GRANTED", "CONSENT_DENIED"})


def consent_problems(consent: Any, where: str) -> list[Violation]:
    """What is wrong with a `Consent` object (None when absent)."""
    if consent is None:
        return []
    if not isinstance(consent, dict):
        return [(where, "Must be a Consent object.", "INVALID_ARGUMENT")]
    found: list[Violation] = []
    for key, value in consent.items():
        if key not in CONSENT_FIELDS:
            found.append((f"{where}.{key}", "Unknown field.", "INVALID_ARGUMENT"))
        elif value not in CONSENT_STATUSES:
            found.append((f"{where}.{CONSENT_FIELDS[key]}", "Invalid enum.", "INVALID_ARGUMENT"))
    return found


def applied_consent(member: dict[str, Any], request_consent: Any) -> dict[str, str]:
    """The consent that applies to a member: its own when it has one, else the request's
    ("User-level consent overrides request-level consent": [INFER] the member's message
    replaces the request's whole, not field by field)."""
    consent = member.get("consent")
    if consent is None:
        consent = request_consent
    return {k: v for k, v in (consent or {}).items() if v != "CONSENT_STATUS_UNSPECIFIED"}


def _digest(value: Any, encoding: str, where: str) -> tuple[str | None, Violation | None]:
    if not isinstance(value, str) or not value:
        return None, (where, "Required.", "REQUIRED_FIELD_MISSING")
    if encoding == "BASE64":
        import base64
        import binascii

        if not B64.fullmatch(value):
            return None, (where, "Not valid base64.", "INVALID_BASE64_ENCODING")
        try:
            raw = base64.b64decode(value, validate=True)
        except (binascii.Error, ValueError):
            return None, (where, "Not valid base64.", "INVALID_BASE64_ENCODING")
        if len(raw) != 32:
            return None, (where, "Not a SHA-256 digest.", "INVALID_SHA256_FORMAT")
        return raw.hex(), None
    if not HEX.fullmatch(value) or len(value) % 2:
        return None, (where, "Not valid hex.", "INVALID_HEX_ENCODING")
    if len(value) != 64:
        return None, (where, "Not a SHA-256 digest (64 hex characters).", "INVALID_SHA256_FORMAT")
    return value.lower(), None


def _user_identifier(
    ident: Any, encoding: str, where: str
) -> tuple[tuple[str, str] | None, list[Violation]]:
    if not isinstance(ident, dict) or len(ident) != 1:
        return None, [(where, "Set exactly one identifier.", "INVALID_ARGUMENT")]
    ((key, value),) = ident.items()
    if key in ("emailAddress", "phoneNumber"):
        digest, problem = _digest(value, encoding, f"{where}.{key}")
        return ((key, digest), []) if digest else (None, [problem] if problem else [])
    if key != "address" or not isinstance(value, dict):
        return None, [(f"{where}.{key}", "Unknown user identifier.", "INVALID_ARGUMENT")]
    problems: list[Violation] = []
    names = []
    for part in ("givenName", "familyName"):
        digest, problem = _digest(value.get(part), encoding, f"{where}.address.{part}")
        names.append(digest or "")
        if problem:
            problems.append(problem)
    region, postal = value.get("regionCode"), value.get("postalCode")
    if not isinstance(region, str) or not REGION.fullmatch(region):
        problems.append(
            (f"{where}.address.regionCode", "ISO 3166-1 alpha-2.", "INVALID_COUNTRY_CODE")
        )
    if not isinstance(postal, str) or not postal or len(postal) > 40:
        problems.append((f"{where}.address.postalCode", "Required.", "REQUIRED_FIELD_MISSING"))
    if problems:
        return None, problems
    return ("address", f"{names[0]}|{names[1]}|{region}|{postal}"), []


def _raw_values(values: Any, where: str) -> tuple[list[str], list[Violation]]:
    if not isinstance(values, list) or not values:
        return [], [(where, "Required.", "REQUIRED_FIELD_MISSING")]
    if len(values) > MAX_IDENTIFIERS:
        return [], [(where, f"At most {MAX_IDENTIFIERS}.", "TOO_MANY_USER_IDENTIFIERS")]
    bad = [v for v in values if not isinstance(v, str) or not v or len(v.encode()) > 255]
    if bad:
        return [], [(where, "Each id must be a non-empty string.", "INVALID_FORMAT")]
    return values, []


def row_label(row: Row) -> str:
    """A member row as `/_sandbox/audiences` names it in `data_use`: its identifiers."""
    return "|".join(f"{s.name}:{GOOGLE_KEYS.render(s, v)}" for s, v in GOOGLE_KEYS.decode(row))


def parse_members(
    members: list[Any], encoding: Any, request_consent: Any, *, ingest: bool = True
) -> ParsedMembers:
    """Validate every member; raise `MemberProblemError` with the violations (the request fails).
    Consent decides only what is ingested: a removal removes whatever it says."""
    fast = _if_all_plain(members, encoding, request_consent, ingest)
    if fast is not None:
        return fast
    parsed = ParsedMembers()
    problems: list[Violation] = []
    data_types: set[str] = set()
    for i, member in enumerate(members):
        where = f"audience_members[{i}]"
        if not isinstance(member, dict):
            problems.append((where, "Must be an object.", "INVALID_ARGUMENT"))
            continue
        kinds = [k for k in (*DATA_TYPES, *NOT_EMULATED) if k in member]
        if len(kinds) != 1:
            problems.append((where, "Set exactly one member data type.", "INVALID_ARGUMENT"))
            continue
        kind = kinds[0]
        if kind in NOT_EMULATED:
            problems.append((f"{where}.{kind}", "Not emulated by the sandbox.", "INVALID_ARGUMENT"))
            continue
        data_types.add(kind)
        data = member[kind] if isinstance(member[kind], dict) else {}
        pairs: list[tuple[str, str]] = []
        if kind == "userData":
            if encoding not in ("HEX", "BASE64"):
                problems.append(
                    (
                        "encoding",
                        "HEX or BASE64 is required for user data.",
                        "REQUIRED_FIELD_MISSING",
                    )
                )
                break
            idents = data.get("userIdentifiers")
            if not isinstance(idents, list) or not idents:
                problems.append((f"{where}.user_data", "Required.", "REQUIRED_FIELD_MISSING"))
                continue
            if len(idents) > MAX_IDENTIFIERS:
                problems.append(
                    (
                        f"{where}.user_data",
                        f"At most {MAX_IDENTIFIERS}.",
                        "TOO_MANY_USER_IDENTIFIERS",
                    )
                )
                continue
            for j, ident in enumerate(idents):
                pair, found = _user_identifier(
                    ident, encoding, f"{where}.user_data.user_identifiers[{j}]"
                )
                problems.extend(found)
                if pair:
                    pairs.append(pair)
        elif kind == "mobileData":
            values, found = _raw_values(data.get("mobileIds"), f"{where}.mobile_data.mobile_ids")
            problems.extend(found)
            pairs = [("mobileId", v) for v in values]
        else:
            values, found = _raw_values([data.get("userId")], f"{where}.user_id_data.user_id")
            problems.extend(found)
            pairs = [("userId", v) for v in values]
        problems.extend(consent_problems(member.get("consent"), f"{where}.consent"))
        if len(problems) >= 20:
            break
        if problems or not pairs:
            continue
        consent = applied_consent(member, request_consent)
        if ingest and "CONSENT_DENIED" in consent.values():
            # Either consent denied: the request succeeds, the member's data is not used and
            # shows as a processing error in the request status. [SEEN: "denied consent will
            # keep the user data from being used", https://developers.google.com/data-manager/
            # api/devguides/audiences/display-video/customer-match/upgrade/steps] [INFER: the
            # error reason, PROCESSING_ERROR_REASON_DENIED_CONSENT of processing_errors.proto]
            parsed.denied += 1
            parsed.identifiers += len(pairs)
            continue
        parsed.rows.append(GOOGLE_KEYS.encode(pairs))
        parsed.consents.append(consent)
        parsed.identifiers += len(pairs)
    if len(data_types) > 1:
        problems.insert(
            0, ("audience_members", "One data type per request.", "MULTIPLE_DATA_TYPES_NOT_ALLOWED")
        )
    if problems:
        raise MemberProblemError(problems[:20])
    parsed.data_type = data_types.pop() if data_types else "userData"
    parsed.key_type = {"userData": "CONTACT_ID", "mobileData": "MOBILE_ID"}.get(
        parsed.data_type, "USER_ID"
    )
    assert set(KEY_TYPE_OF_WIRE_KEY.values()) >= {parsed.key_type}
    return parsed


# Per hashed key: its code, its code as hex text, and its label's lead ("emailAddress:").
_HASHED = {
    key: (GOOGLE_KEYS.codes[key], GOOGLE_KEYS.hex_prefix(key), f"{key}:")
    for key in ("emailAddress", "phoneNumber")
}
_ADDRESS = GOOGLE_KEYS.codes["address"]
_code, _hex, _label = itemgetter(0), itemgetter(1), itemgetter(2)


def _if_all_plain(
    members: list[Any], encoding: Any, request_consent: Any, ingest: bool
) -> ParsedMembers | None:
    """What `parse_members` gives when every member is valid `userData` (hex digests, no consent
    of its own, none denied), made in one lean pass with the digests, regions and postal codes
    checked in bulk at the end; None for anything else, which the member by member parse
    then words."""
    consent = applied_consent({}, request_consent)
    if encoding != "HEX" or (ingest and "CONSENT_DENIED" in consent.values()):
        return None
    digests: list[Any] = []
    regions: list[Any] = []
    postals: list[Any] = []
    texts, labels = [], []
    identifiers = 0
    for member in members:
        if type(member) is not dict or len(member) != 1:
            return None
        data = member.get("userData")
        if type(data) is not dict:
            return None
        idents = data.get("userIdentifiers")
        if type(idents) is not list or not 0 < len(idents) <= MAX_IDENTIFIERS:
            return None
        parts = []  # (code, hex text, label) per identifier
        for ident in idents:
            if type(ident) is not dict or len(ident) != 1:
                return None
            ((key, value),) = ident.items()
            hashed = _HASHED.get(key)
            if hashed is not None and type(value) is str:
                digests.append(value)
                value = value.lower()
                parts.append((hashed[0], hashed[1] + value, hashed[2] + value))
            elif key == "address" and type(value) is dict:
                part = _address(value, digests, regions, postals)
                if part is None:
                    return None
                parts.append(part)
            else:
                return None
        if len(parts) > 1:
            parts.sort(key=_code)  # stable: as `encode` orders a row's identifiers
        texts.append("".join(map(_hex, parts)))
        labels.append("|".join(map(_label, parts)))
        identifiers += len(parts)
    if not (all_hex(digests, {64}) and _regions_ok(regions) and _postals_ok(postals)):
        return None
    rows = GOOGLE_KEYS.encode_hex(texts)
    return ParsedMembers(
        rows=rows,
        identifiers=identifiers,
        consents=[dict(consent) for _ in rows],
        labels=labels,
    )


def _address(
    value: dict[str, Any], digests: list[Any], regions: list[Any], postals: list[Any]
) -> tuple[int, str, str] | None:
    """An address identifier's (code, hex text, label), its parts left for the bulk checks;
    None when its names are not strings or `encode` would fail on it."""
    given, family = value.get("givenName"), value.get("familyName")
    region, postal = value.get("regionCode"), value.get("postalCode")
    digests += (given, family)
    regions.append(region)
    postals.append(postal)
    if type(given) is not str or type(family) is not str:
        return None
    text = f"{given.lower()}|{family.lower()}|{region}|{postal}"
    try:
        raw = text.encode()
    except UnicodeEncodeError:
        return None
    if len(raw) > 255:
        return None
    return _ADDRESS, GOOGLE_KEYS.raw_hex("address", raw), f"address:{text}"


def _regions_ok(regions: list[Any]) -> bool:
    """Every region an ISO 3166-1 alpha-2 code (`REGION`), checked at once."""
    try:
        joined = "".join(regions)
    except TypeError:
        return False
    if not joined:
        return not regions
    return (
        set(map(len, regions)) == {2} and joined.isascii() and joined.isalpha() and joined.isupper()
    )


def _postals_ok(postals: list[Any]) -> bool:
    """Every postal code a string of 1 to 40 characters, checked at once."""
    try:
        "".join(postals)
    except TypeError:
        return False
    return not postals or (min(map(len, postals)) >= 1 and max(map(len, postals)) <= 40)
