"""Meta Graph conventions: parameters, the error envelope, `payload`/`session` parsing, fields."""

from __future__ import annotations

import json
import math
import secrets
from dataclasses import dataclass, field
from typing import Any

from fastapi import Request
from starlette.datastructures import UploadFile
from starlette.responses import Response

from audience_sync.sandbox.dialect import Dialect, SandboxError, is_hex_digest, json_response
from audience_sync.sandbox.members import KeyKind, KeySpace, KeySpec, Row, all_hex
from audience_sync.sandbox.state import Audience, AuthFailure

CUSTOMER_FILE_SOURCES = (
    "USER_PROVIDED_ONLY",
    "PARTNER_PROVIDED_ONLY",
    "BOTH_USER_AND_PARTNER_PROVIDED",
)
UPPER_BOUND_FACTOR = 1.18  # Meta reports a range, not a count; the width is a guess. [INFER]
MAX_USERS_PER_REQUEST = 10_000  # "only a maximum of 10000 at a time" (docs/platforms/meta.md §1.5)

_AUX = ("GEN", "DOBY", "DOBM", "DOBD", "LN", "FN", "FI", "CT", "ST", "ZIP", "COUNTRY")
META_KEYS = KeySpace(
    [
        KeySpec("EMAIL", KeyKind.SHA256),
        KeySpec("PHONE", KeyKind.SHA256),
        KeySpec("MADID", KeyKind.RAW),
        KeySpec("EXTERN_ID", KeyKind.RAW),
        # Name, address and birth fields help Meta match a row; alone they identify nobody.
        *(KeySpec(key, KeyKind.SHA256, identifying=False) for key in _AUX),
    ]
)
SINGLE_KEY_SCHEMAS = {
    "EMAIL_SHA256": "EMAIL",
    "PHONE_SHA256": "PHONE",
    "MOBILE_ADVERTISER_ID": "MADID",
}
"""Single-key schemas (a 1-D `data` list) and the multi-key key each one stands for."""

# LOOKALIKE_VALUE (value-based audiences) is a real Meta key that the sandbox does not emulate:
# a schema naming it is refused as unknown.

# Limited Data Use, per row of a multi-key payload: `DATA_PROCESSING_OPTIONS` holds `["LDU"]` or
# `[]`, `DATA_PROCESSING_OPTIONS_COUNTRY` 1 (United States) or 0 (Meta geolocates),
# `DATA_PROCESSING_OPTIONS_STATE` 1000 (California) or 0. They say how Meta may use the row, not
# who it is: they are kept beside the member (`data_use`), not in it. [SEEN: the values and their
# meaning, https://developers.facebook.com/docs/marketing-apis/data-processing-options; the
# per-row schema key DATA_PROCESSING_OPTIONS with `[]` for rows without LDU, CData's Facebook
# Ads connector (cdn.cdata.com/help/HRK/.../pg_sp-addcustomaudienceusers.htm)] [INFER: the
# COUNTRY/STATE keys as schema keys beside it, named as Meta's other APIs name the parameters;
# a row with another value is an invalid entry, counted like a bad hash]
LDU_OPTIONS = "DATA_PROCESSING_OPTIONS"
LDU_VALUES: dict[str, frozenset[int]] = {
    "DATA_PROCESSING_OPTIONS_COUNTRY": frozenset({0, 1}),
    "DATA_PROCESSING_OPTIONS_STATE": frozenset({0, 1000}),
}
LDU_KEYS = (LDU_OPTIONS, *LDU_VALUES)


def graph_error(
    message: str,
    code: int,
    *,
    subcode: int | None = None,
    kind: str = "OAuthException",
    status: int = 400,
    transient: bool = False,
    headers: dict[str, str] | None = None,
) -> Response:
    """The Graph API error envelope (docs/platforms/meta.md §1.6). Graph answers most errors with
    HTTP 400."""
    error: dict[str, Any] = {
        "message": message,
        "type": kind,
        "code": code,
        "is_transient": transient,
        "fbtrace_id": secrets.token_urlsafe(8),
    }
    if subcode is not None:
        error["error_subcode"] = subcode
    return json_response({"error": error}, status, headers)


@dataclass(frozen=True)
class GraphCode:
    """How Graph answers one error code: its message, type, HTTP status and default subcode."""

    message: str
    kind: str = "OAuthException"
    status: int = 400
    transient: bool = False
    subcode: int | None = None


GRAPH_CODES: dict[int, GraphCode] = {
    # [SEEN: https://developers.facebook.com/docs/graph-api/guides/error-handling] 1 "API
    # Unknown" and 2 "API Service": temporary, wait and retry; 4 "API Too Many Calls" and 17
    # "API User Too Many Calls": throttling, wait and retry; 10 and 200-299 permissions; 341
    # "Application limit reached": wait and retry; 368 "Temporarily blocked for policies
    # violations". HTTP statuses and is_transient values are not in our sources. [INFER]
    1: GraphCode("An unknown error occurred", status=500, transient=True),
    2: GraphCode(
        "An unexpected error has occurred. Please retry your request later.",
        status=500,
        transient=True,
    ),
    4: GraphCode("(#4) Application request limit reached", transient=True),
    10: GraphCode("(#10) Application does not have permission for this action"),
    # [SEEN: https://developers.facebook.com/docs/marketing-api/overview/rate-limiting] "error
    # code: 17, Error subcode: 2446079, Message: User request limit reached"; "613, Error
    # subcode: 1487742, Message: There have been too many calls from this ad-account".
    17: GraphCode("(#17) User request limit reached", transient=True, subcode=2446079),
    # Graph's Page-level throttling code (api-evangelist rate-limits yml, re-read from
    # https://developers.facebook.com/docs/graph-api/overview/rate-limiting). [INFER message]
    32: GraphCode("(#32) Page request limit reached", transient=True),
    # [SEEN: https://developers.facebook.com/documentation/ads-commerce/marketing-api/reference/
    # custom-audience/ads, error table] 200 "Permissions error"; 368 "The action attempted has
    # been deemed abusive or is otherwise disallowed"; 80004 "too many calls to this ad-account".
    200: GraphCode("(#200) Permissions error"),
    341: GraphCode("(#341) Application limit reached", transient=True),
    368: GraphCode(
        "(#368) The action attempted has been deemed abusive or is otherwise disallowed"
    ),
    613: GraphCode(
        "(#613) There have been too many calls from this ad-account. Please wait a bit and "
        "try again.",
        transient=True,
        subcode=1487742,
    ),
    # /users error table lists 2650 (docs/platforms/meta.md §1.3); the message is Graph's usual
    # one. [INFER]
    2650: GraphCode("(#2650) Failed to update the custom audience"),
    80003: GraphCode(
        "(#80003) There have been too many calls to this ad-account. Wait a bit and try again.",
        transient=True,
    ),
    80004: GraphCode(
        "(#80004) There have been too many calls to this ad-account. Wait a bit and try "
        "again. For more info, please refer to "
        "/docs/graph-api/overview/rate-limiting#ads-management.",
        transient=True,
    ),
}
"""Graph's answer for each error code the `platform_error` fault can inject (any other code
gets a generic message); 190 is the token error of `MetaDialect.auth_error`."""


def invalid_parameter(message: str, subcode: int | None = None) -> SandboxError:
    return SandboxError(graph_error(f"(#100) {message}", 100, subcode=subcode))


class MetaDialect(Dialect):
    family = "meta"

    def auth_error(self, failure: AuthFailure) -> Response:
        # Graph answers 190 for a bad token; whether a missing token gets 104 instead is not in
        # our sources, so the sandbox says 190 for all three. [INFER]
        if failure is AuthFailure.EXPIRED:
            return graph_error(
                "Error validating access token: Session has expired.", 190, subcode=463
            )
        if failure is AuthFailure.MISSING:
            return graph_error("An access token is required to request this resource.", 190)
        return graph_error("Invalid OAuth access token - Cannot parse access token", 190)

    def rate_limited(self, retry_after: float | None) -> Response:
        return graph_error(
            "There have been too many calls to this ad-account. Wait a bit and try again.",
            80003,
            transient=True,
        )

    def server_error(self, status: int) -> Response:
        return graph_error(
            "An unexpected error has occurred. Please retry your request later.",
            2,
            status=status,
            transient=True,
        )

    def not_found(self, method: str, path: str) -> Response:
        return graph_error(f"Unknown path components: {path}", 2500)

    def bad_request(self, message: str) -> Response:
        return graph_error(f"(#100) {message}", 100)

    def coded_error(self, code: int, subcode: int | None) -> Response:
        if code == 190:
            # Subcodes 458-467 say why the token is refused (error-handling guide). [SEEN]
            return graph_error("Error validating access token", 190, subcode=subcode)
        known = GRAPH_CODES.get(code) or GraphCode(f"(#{code}) An error occurred")  # [INFER]
        return graph_error(
            known.message,
            code,
            subcode=subcode if subcode is not None else known.subcode,
            kind=known.kind,
            status=known.status,
            transient=known.transient,
        )


def _graph_value(raw: str) -> Any:
    """Graph reads each form value as JSON when it parses (`name="x"`, `payload={...}`)."""
    try:
        return json.loads(raw)
    except ValueError:
        return raw


async def graph_params(request: Request) -> dict[str, Any]:
    """Query string plus body (form-encoded, multipart or JSON), the way Graph merges them."""
    params: dict[str, Any] = {k: _graph_value(v) for k, v in request.query_params.items()}
    content_type = request.headers.get("content-type", "")
    if content_type.startswith(("application/x-www-form-urlencoded", "multipart/form-data")):
        async with request.form() as form:
            for key, value in form.multi_items():
                if isinstance(value, UploadFile):
                    value = (await value.read()).decode("utf-8", "replace")
                params[key] = _graph_value(value)
    elif content_type.startswith("application/json"):
        raw = await request.body()
        if raw.strip():
            try:
                body = json.loads(raw)
            except ValueError as exc:
                raise invalid_parameter("Invalid JSON in the request body") from exc
            if not isinstance(body, dict):
                raise invalid_parameter("The request body must be a JSON object")
            params.update(body)
    return params


def graph_token(request: Request, params: dict[str, Any]) -> str | None:
    token = params.get("access_token")
    if isinstance(token, str) and token:
        return token
    header = request.headers.get("authorization", "")
    scheme, _, value = header.partition(" ")
    return value.strip() or None if scheme.lower() in ("bearer", "oauth") else None


def require(params: dict[str, Any], name: str) -> Any:
    if name not in params or params[name] in (None, ""):
        raise invalid_parameter(f"The parameter {name} is required")
    return params[name]


@dataclass
class Upload:
    """A validated `/users` or `/usersreplace` payload: rows to apply and what was refused."""

    rows: list[Row]
    received: int
    invalid: dict[str, str] = field(default_factory=dict)
    # Each row's data processing options when the schema has them (`LDU_KEYS`), else None.
    data_use: list[dict[str, Any] | None] = field(default_factory=list)


def _schema(raw: Any) -> tuple[list[str], bool]:
    """Map a `schema` to multi-key keys; second value: single-key (1-D data)."""
    if isinstance(raw, str):
        if raw not in SINGLE_KEY_SCHEMAS:
            raise invalid_parameter(f"Invalid schema: {raw}", subcode=None)
        return [SINGLE_KEY_SCHEMAS[raw]], True
    if not isinstance(raw, list) or not raw:
        raise invalid_parameter("payload.schema must be a key or a non-empty array of keys")
    keys = []
    for key in raw:
        key = SINGLE_KEY_SCHEMAS.get(key, key) if isinstance(key, str) else key
        if not isinstance(key, str) or (key not in META_KEYS and key not in LDU_KEYS):
            raise invalid_parameter(f"Invalid schema key: {key}")
        keys.append(key)
    if len(set(keys)) != len(keys):
        raise invalid_parameter("payload.schema repeats a key")
    if any(key in LDU_VALUES for key in keys) and LDU_OPTIONS not in keys:
        # A location without the options it qualifies. [INFER]
        raise invalid_parameter(f"DATA_PROCESSING_OPTIONS_COUNTRY/STATE need {LDU_OPTIONS}")
    return keys, False


def _ldu_cell(key: str, value: Any) -> str | None:
    """What is wrong with one LDU cell of a row, or None."""
    if key == LDU_OPTIONS:
        if not isinstance(value, list) or any(v != "LDU" for v in value):
            return f'{key} must be ["LDU"] or []'
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value not in LDU_VALUES[key]:
        return f"{key} must be one of {sorted(LDU_VALUES[key])}"
    return None


def _cell_problem(key: str, value: Any) -> str | None:
    if not isinstance(value, str):
        return f"{key} must be a string"
    if META_KEYS.specs[META_KEYS.codes[key]].kind is KeyKind.RAW:
        if len(value.encode()) > 255:
            return f"{key} is longer than 255 bytes"
        return None
    if not is_hex_digest(value):
        return f"{key} is not a SHA-256 hex digest (64 hex characters)"
    return None


def parse_payload(raw: Any) -> Upload:
    """Validate a `payload` param. Malformed entries are counted, never applied
    (docs/platforms/meta.md §1.3)."""
    if isinstance(raw, str):
        raise invalid_parameter("payload must be a JSON object")
    if not isinstance(raw, dict):
        raise invalid_parameter("The parameter payload is required")
    keys, single = _schema(raw.get("schema"))
    data = raw.get("data")
    if not isinstance(data, list) or not data:
        raise invalid_parameter("payload.data must be a non-empty array")
    if len(data) > MAX_USERS_PER_REQUEST:
        # The limit is documented; the exact code and wording of the refusal are not. [INFER]
        raise invalid_parameter(
            f"Too many users in one request: {len(data)} > {MAX_USERS_PER_REQUEST}"
        )
    rows = _rows_if_all_valid(keys, single, data)
    if rows is not None:
        return Upload(rows=rows, received=len(data), data_use=[None] * len(rows))
    upload = Upload(rows=[], received=len(data))
    for index, entry in enumerate(data):
        cells = [entry] if single else entry
        if not isinstance(cells, list) or len(cells) != len(keys):
            upload.invalid[str(index)] = f"a row must have {len(keys)} values, one per schema key"
            continue
        pairs: list[tuple[str, str]] = []
        options: dict[str, Any] = {}
        problem = None
        for key, value in zip(keys, cells, strict=True):
            if key in LDU_KEYS:
                problem = _ldu_cell(key, value)
                options[key] = value
            elif value == "" and not single:
                continue  # an unknown value in a multi-key row is sent as ""
            else:
                problem = _cell_problem(key, value)
                pairs.append((key, value))
            if problem:
                break
        if problem or not pairs:
            # Samples name the entry and the reason, never the value (it may be PII).
            upload.invalid[str(index)] = problem or "every value of the row is empty"
            continue
        upload.rows.append(META_KEYS.encode(pairs))
        upload.data_use.append(options or None)
    if not upload.rows:
        # Meta counts malformed entries in num_invalid_entries; a batch with no valid entry at
        # all is refused outright. [INFER]
        raise invalid_parameter(
            f"No valid entry in payload.data: {len(upload.invalid)} invalid entries"
        )
    return upload


def _rows_if_all_valid(keys: list[str], single: bool, data: list[Any]) -> list[Row] | None:
    """Every entry's row when all of them are valid, checked and encoded column by column (the
    common case, in bulk); None otherwise, and for LDU schemas, so that `parse_payload`'s row
    by row loop counts and words each problem."""
    if any(key in LDU_KEYS for key in keys):
        return None
    if single:
        columns: list[Any] = [data]
    elif set(map(type, data)) == {list} and set(map(len, data)) == {len(keys)}:
        columns = list(zip(*data, strict=True))
    else:
        return None
    # None too for a multi-key row with every value empty.
    return META_KEYS.rows_of_columns(keys, lambda i: _hex_cells(keys[i], columns[i], single))


def _hex_cells(key: str, column: list[Any], single: bool) -> list[str] | None:
    """One schema key's values as hex text of `encode`'s bytes ("" for a multi-key row's empty
    value, which is skipped); None if any value has a problem (`_cell_problem`)."""
    prefix = META_KEYS.hex_prefix(key)
    if META_KEYS.specs[META_KEYS.codes[key]].kind is KeyKind.RAW:
        if set(map(type, column)) != {str}:
            return None
        try:
            raw = [value.encode() for value in column]
        except UnicodeEncodeError:
            return None  # the row by row parse fails the same way
        if max(map(len, raw)) > 255:
            return None
        return [META_KEYS.raw_hex(key, value) if value or single else "" for value in raw]
    if not all_hex(column, {64} if single else {0, 64}):
        return None
    if single or "" not in column:
        return list(map(prefix.__add__, column))
    return [prefix + value if value else "" for value in column]


@dataclass(frozen=True)
class SessionParam:
    session_id: int
    batch_seq: int
    last_batch_flag: bool
    estimated_num_total: int | None


def parse_session(raw: Any, *, required: bool) -> SessionParam | None:
    if raw is None or raw == "":
        if required:
            raise invalid_parameter("The parameter session is required")
        return None
    if not isinstance(raw, dict):
        raise invalid_parameter("session must be a JSON object")
    session_id, batch_seq = raw.get("session_id"), raw.get("batch_seq")
    if not isinstance(session_id, int) or isinstance(session_id, bool) or session_id <= 0:
        raise invalid_parameter("session.session_id must be a positive 64-bit integer")
    if not isinstance(batch_seq, int) or isinstance(batch_seq, bool) or batch_seq < 1:
        raise invalid_parameter("session.batch_seq must be an integer from 1")
    last = raw.get("last_batch_flag", False)
    if not isinstance(last, bool):
        raise invalid_parameter("session.last_batch_flag must be a boolean")
    estimated = raw.get("estimated_num_total")
    if estimated is not None and (not isinstance(estimated, int) or isinstance(estimated, bool)):
        raise invalid_parameter("session.estimated_num_total must be an integer")
    return SessionParam(session_id, batch_seq, last, estimated)


def _fields(audience: Audience) -> dict[str, Any]:
    matched = audience.members.matched
    # "Lists of fewer than 100 people" cannot deliver (docs/platforms/meta.md §1.5).
    small = matched < 100
    return {
        "id": audience.audience_id,
        "account_id": audience.ad_account_id,
        "name": audience.name,
        "description": audience.description,
        "subtype": "CUSTOM",
        "customer_file_source": audience.attributes.get("customer_file_source"),
        "approximate_count_lower_bound": matched,
        "approximate_count_upper_bound": math.floor(matched * UPPER_BOUND_FACTOR),
        "operation_status": {"code": 200, "description": "Normal"},
        # Code 300 for a too-small audience is a guess at Meta's delivery codes. [INFER]
        "delivery_status": {"code": 300, "description": "This audience is too small to use."}
        if small
        else {"code": 200, "description": "This audience is ready for use."},
        "data_source": {"type": "FILE_IMPORTED", "sub_type": "HASHES"},  # [INFER]
        "time_created": int(audience.created_at),
        "time_updated": int(audience.updated_at),
        "time_content_updated": int(audience.last_upload_at or audience.created_at),
        "retention_days": audience.attributes.get("retention_days", 0),
        "is_value_based": False,
        "fields_violating_integrity_policy": [],
    }


def select_fields(audience: Audience, params: dict[str, Any]) -> dict[str, Any]:
    """Graph returns `id` unless `fields` asks for more; an unknown field is an error."""
    raw = params.get("fields") or "id"
    wanted = [f.strip() for f in str(raw).split(",") if f.strip()]
    available = _fields(audience)
    for name in wanted:
        if name not in available:  # e.g. `approximate_count`, removed by Meta
            raise invalid_parameter(
                f"Tried accessing nonexisting field ({name}) on node type (CustomAudience)"
            )
    return {name: available[name] for name in ["id", *wanted] if name in available}
