"""TikTok API for Business v1.3, shared parts: envelope, return codes, keys, auth, state.

Mounted at `/tiktok/open_api/v1.3` (docs/platforms/tiktok.md §3.3). Every answer is HTTP 200 with
`{"code", "message", "request_id", "data"}`; `code` 0 is success, anything else an error.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field
from typing import Any

from fastapi import Request
from starlette.responses import Response

from audience_sync.sandbox.dialect import (
    Dialect,
    SandboxError,
    authorize,
    is_hex_digest,
    json_response,
    sandbox_state,
    throttle,
)
from audience_sync.sandbox.members import KeyKind, KeySpace, KeySpec, Row
from audience_sync.sandbox.state import Audience, AuthFailure, SandboxState

_SHA, _MD5 = KeyKind.SHA256, KeyKind.MD5
TIKTOK_KEYS = KeySpace(
    [
        KeySpec("EMAIL_SHA256", _SHA),
        KeySpec("PHONE_SHA256", _SHA),
        KeySpec("IDFA_SHA256", _SHA),
        KeySpec("AAID_SHA256", _SHA),
        KeySpec("IDFA_MD5", _MD5),
        KeySpec("AAID_MD5", _MD5),
        # File calculate types (docs/platforms/tiktok.md §3.3 B)
        KeySpec("GAID_SHA256", _SHA),
        KeySpec("GAID_MD5", _MD5),
        KeySpec("MAID_SHA256", _SHA),
        KeySpec("MAID_MD5", _MD5),
        KeySpec("FIRST_SHA256", _SHA),
        KeySpec("FIRST_MD5", _MD5),
    ]
)
SEGMENT_SCHEMAS = (
    "EMAIL_SHA256",
    "PHONE_SHA256",
    "IDFA_SHA256",
    "IDFA_MD5",
    "AAID_SHA256",
    "AAID_MD5",
)
CALCULATE_TYPES = (*(s.name for s in TIKTOK_KEYS.specs), "MULTIPLE_TYPES")
# The header names of a `MULTIPLE_TYPES` customer file (hashed ids only: the sandbox takes no raw
# values). Mobile ids are MAID, whatever the device: IDFA_*/AAID_* are `segment/mapping` id_schema
# names, not file headers. [SEEN: https://ads.tiktok.com/help/article/list-of-supported-ids-and-formats-for-a-customer-file
# "Email or Email_SHA256", "Phone or Phone_SHA256", "MAID or MAID_MD5 or MAID_SHA256"]
FILE_HEADERS = ("EMAIL_SHA256", "PHONE_SHA256", "MAID_SHA256", "MAID_MD5")
# Not documented anywhere; an unverified assumption (docs/platforms/tiktok.md §3.5).
MAX_MAPPING_USERS = 10_000
# Update operations fail below 1,000 members (docs/platforms/tiktok.md §3.3, TT-SDK).
MIN_SIZE = 1_000

# Return codes, as TikTok's SDK names them [SEEN: tiktok/tiktok-business-api-sdk:
# python_sdk/business_api_client/tiktok_business/tiktok_code.py]; 40002 for every parameter
# problem, and the messages, are ours [INFER].
OK, NO_PERMISSION, PARAM_ERROR, NOT_FOUND = 0, 40001, 40002, 40007
TOO_FREQUENT, TOKEN_EXPIRED, TOKEN_EMPTY, TOKEN_INVALID = 40100, 40102, 40104, 40105
ROUTE_NOT_FOUND, SYSTEM_ERROR = 40400, 50000


def envelope(code: int, message: str, data: Any = None, status: int = 200) -> Response:
    body = {
        "code": code,
        "message": message,
        "request_id": secrets.token_hex(12),
        "data": {} if data is None else data,
    }
    return json_response(body, status)


def error(code: int, message: str) -> SandboxError:
    return SandboxError(envelope(code, message))


class TikTokDialect(Dialect):
    family = "tiktok"

    def auth_error(self, failure: AuthFailure) -> Response:
        if failure is AuthFailure.MISSING:
            return envelope(TOKEN_EMPTY, "Access token is null.")
        if failure is AuthFailure.EXPIRED:
            return envelope(TOKEN_EXPIRED, "Access token has expired.")
        return envelope(TOKEN_INVALID, "Access token is incorrect or has been revoked.")

    def rate_limited(self, retry_after: float | None) -> Response:
        return envelope(TOO_FREQUENT, "Requests made too frequently.")

    def server_error(self, status: int) -> Response:
        return envelope(SYSTEM_ERROR, "System error.", status=status)

    def not_found(self, method: str, path: str) -> Response:
        return envelope(ROUTE_NOT_FOUND, f"Unknown API: {method} {path}", status=404)

    def bad_request(self, message: str) -> Response:
        return envelope(PARAM_ERROR, message)


DIALECT = TikTokDialect()


@dataclass
class FileUpload:
    advertiser_id: str
    calculate_type: str
    rows: list[Row]


@dataclass
class TikTokState:
    files: dict[str, FileUpload] = field(default_factory=dict)


def tiktok_state(state: SandboxState) -> TikTokState:
    return state.platform_state("tiktok", TikTokState)


def open_call(request: Request) -> SandboxState:
    state = sandbox_state(request)
    token = authorize(state, DIALECT, request.headers.get("access-token"), "tiktok")
    throttle(state, DIALECT, token)
    return state


def advertiser_of(value: Any) -> str:
    if not isinstance(value, str | int) or not str(value):
        raise error(PARAM_ERROR, "advertiser_id: Missing data for required field.")
    return str(value)


def audience_of(state: SandboxState, advertiser_id: str, audience_id: Any) -> Audience:
    audience = state.audience("tiktok", str(audience_id))
    if audience is None:
        raise error(NOT_FOUND, f"Custom audience {audience_id} does not exist.")
    if audience.ad_account_id != advertiser_id:
        raise error(NO_PERMISSION, "No permission to operate this audience.")
    return audience


def digest_ok(key: str, value: Any) -> bool:
    length = 32 if key.endswith("MD5") else 64
    return is_hex_digest(value, length)
