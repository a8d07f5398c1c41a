"""What Google's Data Manager and Ads API emulators share: keys, user lists, errors, OAuth."""

from __future__ import annotations

import base64
import binascii
import re
import secrets
from dataclasses import dataclass, field
from typing import Any

from starlette.responses import Response

from audience_sync.sandbox.dialect import (
    Dialect,
    SandboxError,
    is_hex_digest,
    json_response,
)
from audience_sync.sandbox.members import KeyKind, KeySpace, KeySpec
from audience_sync.sandbox.state import Audience, AuthFailure, SandboxState

GOOGLE_KEYS = KeySpace(
    [
        KeySpec("emailAddress", KeyKind.SHA256),
        KeySpec("phoneNumber", KeyKind.SHA256),
        # `address` is held as "givenName|familyName|regionCode|postalCode" (names hashed).
        KeySpec("address", KeyKind.RAW),
        KeySpec("mobileId", KeyKind.RAW),
        KeySpec("userId", KeyKind.RAW),
    ]
)

# A list holds one kind of key (docs/platforms/google.md §2.3b): Data Manager names ↔ Google Ads
# names.
KEY_TYPES_DM_TO_ADS = {
    "CONTACT_ID": "CONTACT_INFO",
    "MOBILE_ID": "MOBILE_ADVERTISING_ID",
    "USER_ID": "CRM_ID",
}
KEY_TYPES_ADS_TO_DM = {ads: dm for dm, ads in KEY_TYPES_DM_TO_ADS.items()}
KEY_TYPE_OF_WIRE_KEY = {
    "emailAddress": "CONTACT_ID",
    "phoneNumber": "CONTACT_ID",
    "address": "CONTACT_ID",
    "mobileId": "MOBILE_ID",
    "userId": "USER_ID",
}

_STATUS_NAMES = {
    400: "INVALID_ARGUMENT",
    401: "UNAUTHENTICATED",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    409: "ALREADY_EXISTS",
    429: "RESOURCE_EXHAUSTED",
    500: "INTERNAL",
    501: "NOT_IMPLEMENTED",
    503: "UNAVAILABLE",
    504: "DEADLINE_EXCEEDED",
}


def rpc_status(code: int) -> str:
    return _STATUS_NAMES.get(code, "UNKNOWN" if code >= 500 else "FAILED_PRECONDITION")


def rpc_error(
    code: int, message: str, details: list[dict[str, Any]], headers: dict[str, str] | None = None
) -> Response:
    """The google.rpc.Status JSON envelope every Google REST API answers errors with."""
    error: dict[str, Any] = {"code": code, "message": message, "status": rpc_status(code)}
    if details:
        error["details"] = details
    return json_response({"error": error}, code, headers)


UNAUTHENTICATED_MESSAGE = (
    "Request had invalid authentication credentials. Expected OAuth 2 access token, login "
    "cookie or other valid authentication credential."
)
AUTH_REASONS = {
    AuthFailure.MISSING: "CREDENTIALS_MISSING",
    AuthFailure.INVALID: "ACCESS_TOKEN_TYPE_UNSUPPORTED",
    AuthFailure.EXPIRED: "ACCESS_TOKEN_EXPIRED",
}
WWW_AUTHENTICATE = {"WWW-Authenticate": 'Bearer realm="https://accounts.google.com/"'}
DOMAIN = "datamanager.googleapis.com"
MATCH_RANGES = (
    (20, "LESS_THAN_20"),
    (31, "20_TO_30"),
    (41, "31_TO_40"),
    (51, "41_TO_50"),
    (61, "51_TO_60"),
    (71, "61_TO_70"),
    (81, "71_TO_80"),
    (91, "81_TO_90"),
)
"""Upper bounds (exclusive, in %) of Google's match-rate buckets, lowest first."""


def dm_error(
    code: int,
    message: str,
    reason: str,
    violations: list[tuple[str, str, str]] = (),  # type: ignore[assignment]
    headers: dict[str, str] | None = None,
) -> Response:
    """An error with `ErrorInfo` and `BadRequest` details. [INFER: detail layout]"""
    details: list[dict[str, Any]] = [
        {"@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": reason, "domain": DOMAIN}
    ]
    if violations:
        details.append(
            {
                "@type": "type.googleapis.com/google.rpc.BadRequest",
                "fieldViolations": [
                    {"field": f, "description": d, "reason": r} for f, d, r in violations
                ],
            }
        )
    return rpc_error(code, message, details, headers)


class DataManagerDialect(Dialect):
    family = "google"

    def auth_error(self, failure: AuthFailure) -> Response:
        details = [
            {
                "@type": "type.googleapis.com/google.rpc.ErrorInfo",
                "reason": AUTH_REASONS[failure],
                "domain": "googleapis.com",
                "metadata": {"service": DOMAIN},
            }
        ]
        return rpc_error(401, UNAUTHENTICATED_MESSAGE, details, WWW_AUTHENTICATE)

    def rate_limited(self, retry_after: float | None) -> Response:
        return dm_error(
            429,
            f"Quota exceeded for quota metric 'Ingestion requests' of service '{DOMAIN}'.",
            "RESOURCE_EXHAUSTED",
        )

    def server_error(self, status: int) -> Response:
        return dm_error(status, "Internal error encountered.", "INTERNAL_ERROR")

    def not_found(self, method: str, path: str) -> Response:
        return rpc_error(404, f"Method not found: {method} {path}", [])

    def bad_request(self, message: str) -> Response:
        return dm_error(400, message, "INVALID_ARGUMENT")


DIALECT = DataManagerDialect()


@dataclass
class GoogleState:
    """Google's asynchronous work: Data Manager requests and Google Ads jobs."""

    requests: dict[str, Any] = field(default_factory=dict)
    jobs: dict[str, Any] = field(default_factory=dict)
    managers: dict[str, str] = field(default_factory=dict)  # client account → its manager


def google_state(state: SandboxState) -> GoogleState:
    return state.platform_state("google", GoogleState)


# Proto3 JSON: "Parsers accept both enum names and integer values" [SEEN:
# https://protobuf.dev/programming-guides/json/]. Google's official client sends the numbers
# (`$alt=json;enum-encoding=int`) [SEEN: googleapis/python-api-core
# google/api_core/rest_helpers.py]. Each tuple is the enum's values in number order [SEEN:
# googleapis/googleapis google/ads/datamanager/v1/{ingestion_service,destination,
# terms_of_service,consent,user_list}.proto].
ENCODINGS = ("ENCODING_UNSPECIFIED", "HEX", "BASE64")
ACCOUNT_TYPES = (
    "ACCOUNT_TYPE_UNSPECIFIED",
    "GOOGLE_ADS",
    "DISPLAY_VIDEO_PARTNER",
    "DISPLAY_VIDEO_ADVERTISER",
    "DATA_PARTNER",
    "GOOGLE_ANALYTICS_PROPERTY",
    "GOOGLE_AD_MANAGER_AUDIENCE_LINK",
    "FLOODLIGHT_CONFIG",
)
TERMS_STATUSES = ("TERMS_OF_SERVICE_STATUS_UNSPECIFIED", "ACCEPTED", "REJECTED")
CONSENT_STATUSES = ("CONSENT_STATUS_UNSPECIFIED", "CONSENT_GRANTED", "CONSENT_DENIED")
UPLOAD_KEY_TYPES = (
    "UPLOAD_KEY_TYPE_UNSPECIFIED",
    "CONTACT_ID",
    "MOBILE_ID",
    "USER_ID",
    "PAIR_ID",
    "PSEUDONYMOUS_ID",
)
KEY_SPACES = ("KEY_SPACE_UNSPECIFIED", "IOS", "ANDROID")
MEMBERSHIP_STATUSES = ("MEMBERSHIP_STATUS_UNSPECIFIED", "OPEN", "CLOSED")
DATA_SOURCE_TYPES = (
    "DATA_SOURCE_TYPE_UNSPECIFIED",
    "DATA_SOURCE_TYPE_FIRST_PARTY",
    "DATA_SOURCE_TYPE_THIRD_PARTY_CREDIT_BUREAU",
    "DATA_SOURCE_TYPE_THIRD_PARTY_VOTER_FILE",
    "DATA_SOURCE_TYPE_THIRD_PARTY_PARTNER_DATA",
)


def enum_name(value: Any, names: tuple[str, ...]) -> Any:
    """An enum field as its name, whether it came as the name or as the number. A number out
    of range stays a number, for the field's own check to refuse."""
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value < len(names):
        return names[value]
    return value


def name_enums(body: Any, names: tuple[str, ...], *keys: str) -> None:
    """Rewrite `body[key]` (a value or a list of values) as enum names, where present."""
    if not isinstance(body, dict):
        return
    for key in keys:
        value = body.get(key)
        if isinstance(value, list):
            body[key] = [enum_name(v, names) for v in value]
        elif value is not None:
            body[key] = enum_name(value, names)


LOGIN_ACCOUNT = re.compile(r"accountTypes/([A-Z_]+|\d+)/accounts/(\d+)")


def login_account_header(value: str | None) -> str | None:
    """The account id in a `login-account: accountTypes/{type}/accounts/{id}` header [SEEN:
    googleapis/googleapis google/ads/datamanager/v1/user_list_service.proto]."""
    if not value:
        return None
    match = LOGIN_ACCOUNT.fullmatch(value.strip())
    if match is None or enum_name(_number(match.group(1)), ACCOUNT_TYPES) != "GOOGLE_ADS":
        raise SandboxError(
            dm_error(
                400,
                "login-account must read accountTypes/GOOGLE_ADS/accounts/{id}.",
                "INVALID_ARGUMENT",
                [("login-account", "Malformed.", "INVALID_ARGUMENT")],
            )
        )
    return match.group(2)


def _number(text: str) -> Any:
    return int(text) if text.isdigit() else text


def check_access(state: SandboxState, operating: str, login: str | None) -> None:
    """Refuse a call whose login account may not operate the account.

    An account placed under a manager (`PUT /_sandbox/google/managers/{account}`) is reached
    only with that manager, or the manager's own manager, as the login account [SEEN:
    https://developers.google.com/data-manager/api/devguides/concepts/destinations, "Manager
    access scenario"]. Any other account takes any login account: the sandbox token stands for
    a user of every account not placed under a manager. [INFER: the sandbox has no Google
    Accounts or account users to check against]
    """
    managers = google_state(state).managers
    if operating not in managers:
        return
    allowed: set[str] = set()
    above = managers.get(operating)
    while above is not None and above not in allowed:
        allowed.add(above)
        above = managers.get(above)
    if login not in allowed:
        # PERMISSION_DENIED: "The user does not have permission or the resource is not found"
        # [SEEN: googleapis/googleapis google/ads/datamanager/v1/error.proto]
        raise SandboxError(
            dm_error(403, "The caller does not have permission", "PERMISSION_DENIED")
        )


def decode_digest(value: Any, encoding: str) -> str | None:
    """A SHA-256 digest sent as HEX or BASE64, as lowercase hex; None when malformed."""
    if not isinstance(value, str):
        return None
    if encoding == "BASE64":
        try:
            raw = base64.b64decode(value, validate=True)
        except (binascii.Error, ValueError):
            return None
        return raw.hex() if len(raw) == 32 else None
    return value.lower() if is_hex_digest(value) else None


def match_rate_percentage(audience: Audience) -> int:
    """The share of the uploaded records that matched: people added outside the uploads count
    in the size, never in this rate, which stays within 0-100. [INFER: the field is a
    percentage of the list's uploaded data]"""
    size = audience.size
    members = audience.members
    return round(100 * (members.matched - members.outside) / size) if size else 0


def list_key_type(audience: Audience) -> str | None:
    """The list's Data Manager upload key type, once set at creation or by the first upload."""
    value = audience.attributes.get("upload_key_type")
    return value if isinstance(value, str) else None


def user_list_json(audience: Audience) -> dict[str, Any]:
    """A Data Manager `UserList` (docs/platforms/google.md §2.3a). Sizes are the matched count.
    [INFER]"""
    matched = str(audience.members.matched)
    key_type = list_key_type(audience) or "CONTACT_ID"
    info: dict[str, Any] = {"uploadKeyTypes": [key_type]}
    if key_type == "CONTACT_ID":
        info["contactIdInfo"] = {
            "dataSourceType": "DATA_SOURCE_TYPE_FIRST_PARTY",
            "matchRatePercentage": match_rate_percentage(audience),
        }
    elif key_type == "MOBILE_ID":
        info["mobileIdInfo"] = {
            "dataSourceType": "DATA_SOURCE_TYPE_FIRST_PARTY",
            "keySpace": audience.attributes.get("key_space", "KEY_SPACE_UNSPECIFIED"),
            "appId": audience.attributes.get("app_id", ""),
        }
    else:
        info["userIdInfo"] = {"dataSourceType": "DATA_SOURCE_TYPE_FIRST_PARTY"}
    return {
        "name": f"accountTypes/GOOGLE_ADS/accounts/{audience.ad_account_id}"
        f"/userLists/{audience.audience_id}",
        "id": audience.audience_id,
        "displayName": audience.name,
        "description": audience.description,
        "membershipStatus": audience.attributes.get("membership_status", "OPEN"),
        "membershipDuration": f"{audience.attributes.get('membership_days', 540) * 86400}s",
        "readOnly": False,
        "accessReason": "OWNED",
        "accountAccessStatus": "ENABLED",
        "sizeInfo": {"displayNetworkMembersCount": matched, "searchNetworkMembersCount": matched},
        "targetNetworkInfo": {
            "eligibleForDisplay": audience.members.matched >= 100,
            "eligibleForSearch": audience.members.matched >= 1000,
        },
        "ingestedUserListInfo": info,
    }


DATA_MANAGER_SCOPE = "https://www.googleapis.com/auth/datamanager"
ADS_SCOPE = "https://www.googleapis.com/auth/adwords"


def require_scope(state: SandboxState, token: str, scope: str, service: str) -> None:
    """A token from an OAuth flow must have been granted the API's scope, else 403
    `ACCESS_TOKEN_SCOPE_INSUFFICIENT` [SEEN: Google's answer to a token without the method's
    scope, "Request had insufficient authentication scopes."; INFER: the same envelope on the
    Ads API]. The fixed and `/_sandbox/tokens` tokens carry no scopes and pass."""
    known = state.tokens.access("google", token)
    if known is None or not known.scopes or scope in known.scopes:
        return
    details = [
        {
            "@type": "type.googleapis.com/google.rpc.ErrorInfo",
            "reason": "ACCESS_TOKEN_SCOPE_INSUFFICIENT",
            "domain": "googleapis.com",
            "metadata": {"service": service},
        }
    ]
    challenge = (
        f'Bearer realm="https://accounts.google.com/", error="insufficient_scope", scope="{scope}"'
    )
    raise SandboxError(
        rpc_error(
            403,
            "Request had insufficient authentication scopes.",
            details,
            {"WWW-Authenticate": challenge},
        )
    )


def new_request_id() -> str:
    return secrets.token_hex(16)
