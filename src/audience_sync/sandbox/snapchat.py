"""Snapchat Marketing API v1 emulator: Customer List segments, users, all_users.

Mounted at `/snapchat/v1` (docs/platforms/snapchat.md §4.3); its OAuth endpoints (host
`accounts.snapchat.com` in production) are in `oauth_snapchat`.
"""

from __future__ import annotations

import secrets
from collections import Counter
from datetime import UTC, datetime
from itertools import chain
from operator import itemgetter
from typing import Any

from fastapi import APIRouter, Request
from starlette.responses import PlainTextResponse, Response

from audience_sync.sandbox.dialect import (
    Dialect,
    SandboxError,
    authorize,
    bearer,
    is_hex_digest,
    json_object,
    json_response,
    sandbox_state,
    throttle,
)
from audience_sync.sandbox.members import KeyKind, KeySpace, KeySpec, Row, all_hex
from audience_sync.sandbox.state import Audience, AuthFailure, SandboxState

SNAP_KEYS = KeySpace(
    [
        KeySpec("EMAIL_SHA256", KeyKind.SHA256),
        KeySpec("PHONE_SHA256", KeyKind.SHA256),
        KeySpec("MOBILE_AD_ID_SHA256", KeyKind.SHA256),
    ]
)
assert all(spec.kind is KeyKind.SHA256 for spec in SNAP_KEYS.specs)  # see `_KEY_CODES`
_KEY_CODES = itemgetter(slice(None, None, 1 + KeyKind.SHA256.value))  # a row's code bytes
MAX_IDENTIFIERS = 100_000  # per request (docs/platforms/snapchat.md §4.5)
MIN_TARGETABLE = 1_000  # matched users needed to target (docs/platforms/snapchat.md §4.5)

# The error envelope (`request_status`, `request_id`, `debug_message`, `display_message`,
# `error_code`) and E3002 "Caller does not have permission" with HTTP 403 are a peer's recorded
# answers [SEEN: rudderlabs/rudder-transformer:
# test/integrations/destinations/snapchat_custom_audience/network.ts]; the other codes are
# guesses in Snap's style, and our connector decides by HTTP status alone. [INFER]
E_VALIDATION, E_NOT_FOUND, E_RATE, E_INTERNAL = ("E1001", "E3003", "E1008", "E9999")


def snap_error(status: int, code: str, debug: str, display: str | None = None) -> Response:
    body = {
        "request_status": "ERROR",
        "request_id": secrets.token_hex(12),
        "debug_message": debug,
        "display_message": display or "We're sorry, but something went wrong.",
        "error_code": code,
    }
    return json_response(body, status)


def invalid(debug: str) -> SandboxError:
    return SandboxError(snap_error(400, E_VALIDATION, debug))


class SnapchatDialect(Dialect):
    family = "snapchat"

    def auth_error(self, failure: AuthFailure) -> Response:
        # A bad or expired token is HTTP 401 with the bare text `unauthorized`, no envelope
        # [SEEN: the same rudder-transformer network.ts].
        return PlainTextResponse("unauthorized", status_code=401)

    def rate_limited(self, retry_after: float | None) -> Response:
        return snap_error(429, E_RATE, "Too many requests", "Too many requests")

    def server_error(self, status: int) -> Response:
        return snap_error(status, E_INTERNAL, "Internal server error")

    def not_found(self, method: str, path: str) -> Response:
        return snap_error(404, E_NOT_FOUND, f"Resource not found: {method} {path}")

    def bad_request(self, message: str) -> Response:
        return snap_error(400, E_VALIDATION, message)


DIALECT = SnapchatDialect()


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def matched_users(audience: Audience) -> int:
    """Snapchatters found: `approximate_number_users` is "Approximate # of users in the segment"
    [SEEN: https://developers.snap.com/api/marketing-api/Ads-API/customer-lists], people, not
    identifiers. A person's email, phone and mobile id find one Snapchatter; uploads carry one
    schema each and link none, so the sandbox counts the schema with the most matches: a floor
    on the people found, never more than the members sent a value of it [INFER]; plus the people
    added outside Audience Sync (`/_sandbox` `outside_members`)."""
    members = audience.members
    # Each matching row's key codes, counted in C: every Snapchat key is a SHA-256 digest, so
    # a row's identifiers are 33 bytes each and its codes every 33rd byte.
    codes = map(_KEY_CODES, members.matching(members))
    found = Counter(chain.from_iterable(codes))
    return members.outside + max(found.values(), default=0)


def _segment(state: SandboxState, audience: Audience) -> dict[str, Any]:
    matched = matched_users(audience)
    uploaded = audience.last_upload_at
    processing = uploaded is not None and state.now() < uploaded + state.settings.processing_seconds
    if uploaded is None:
        upload_status, targetable = "NO_UPLOAD", "NOT_READY"
    elif processing:
        upload_status, targetable = "PROCESSING", "NOT_READY"
    else:
        upload_status = "COMPLETE"
        targetable = "READY" if matched >= MIN_TARGETABLE else "TOO_FEW_USERS"
    return {
        "id": audience.audience_id,
        "updated_at": _iso(audience.updated_at),
        "created_at": _iso(audience.created_at),
        "name": audience.name,
        "ad_account_id": audience.ad_account_id,
        "description": audience.description,
        # The create example shows PENDING; ACTIVE once an upload completed. [INFER]
        "status": "ACTIVE" if upload_status == "COMPLETE" else "PENDING",
        "source_type": "FIRST_PARTY",
        "retention_in_days": audience.attributes.get("retention_in_days", 9999),
        "approximate_number_users": matched,
        "upload_status": upload_status,
        "targetable_status": targetable,
    }


def _segments_answer(state: SandboxState, audiences: list[Audience]) -> Response:
    items = [{"sub_request_status": "SUCCESS", "segment": _segment(state, a)} for a in audiences]
    return json_response(
        {"request_status": "SUCCESS", "request_id": secrets.token_hex(12), "segments": items}
    )


def open_call(request: Request) -> SandboxState:
    state = sandbox_state(request)
    token = authorize(state, DIALECT, bearer(request), "snapchat")
    throttle(state, DIALECT, token)
    return state


def _find(state: SandboxState, segment_id: str) -> Audience:
    audience = state.audience("snapchat", segment_id)
    if audience is None:
        raise SandboxError(snap_error(404, E_NOT_FOUND, f"Segment {segment_id} not found"))
    return audience


def _segment_fields(raw: Any, *, creating: bool) -> dict[str, Any]:
    if not isinstance(raw, dict):
        raise invalid("Each segment must be an object")
    name = raw.get("name")
    bad_name = not isinstance(name, str) or not name or len(name) > 375
    if (creating or "name" in raw) and bad_name:
        raise invalid("name is required (at most 375 characters)")
    retention = raw.get("retention_in_days")
    if creating and retention is None:
        raise invalid("retention_in_days is required")
    if retention is not None and (not isinstance(retention, int) or retention < 1):
        raise invalid("retention_in_days must be a positive integer (9999 = lifetime)")
    if raw.get("source_type", "FIRST_PARTY") != "FIRST_PARTY":
        raise invalid("source_type must be FIRST_PARTY")
    return raw


def _users(body: dict[str, Any]) -> list[Row]:
    """`{"users": [{"schema": [ONE_KEY], "data": [[digest], ...]}]}`, one schema a request."""
    entries = body.get("users")
    if not isinstance(entries, list) or not entries:
        raise invalid("users is required")
    schemas = {tuple(e.get("schema") or ()) if isinstance(e, dict) else () for e in entries}
    if len(schemas) != 1:
        raise invalid("Only one schema per request")
    (schema,) = schemas
    if len(schema) != 1 or schema[0] not in SNAP_KEYS:
        raise invalid(f"schema must be one of {', '.join(s.name for s in SNAP_KEYS.specs)}")
    key = schema[0]
    data = [row for e in entries for row in (e.get("data") or [])]
    if not data:
        raise invalid("data is required")
    if len(data) > MAX_IDENTIFIERS:
        raise invalid(f"At most {MAX_IDENTIFIERS} identifiers per request")
    rows = _rows_if_all_valid(key, data)
    if rows is not None:
        return rows
    rows = []
    for i, item in enumerate(data):
        if not isinstance(item, list) or len(item) != 1 or not is_hex_digest(item[0]):
            # The whole batch fails: Snap reports no per-item status
            # (docs/platforms/snapchat.md §4.6).
            raise invalid(f"data[{i}] must be a one-element array holding a SHA-256 hex digest")
        rows.append(SNAP_KEYS.encode([(key, item[0].lower())]))
    return rows


def _rows_if_all_valid(key: str, data: list[Any]) -> list[Row] | None:
    """The rows when every item is a one-element array holding a SHA-256 hex digest, checked
    at once; None otherwise, for `_users` to name the first bad item."""
    if set(map(type, data)) != {list} or set(map(len, data)) != {1}:
        return None
    digests = list(map(itemgetter(0), data))
    if not all_hex(digests, {64}):
        return None
    return SNAP_KEYS.encode_hex(map(SNAP_KEYS.hex_prefix(key).__add__, digests))


def _users_answer(count: int) -> Response:
    return json_response(
        {
            "request_status": "SUCCESS",
            "request_id": secrets.token_hex(12),
            "users": [{"sub_request_status": "SUCCESS", "user": {"number_uploaded_users": count}}],
        }
    )


def build_router() -> APIRouter:
    router = APIRouter(prefix="/snapchat")

    @router.post("/v1/adaccounts/{ad_account_id}/segments")
    async def create(request: Request, ad_account_id: str) -> Response:
        state = open_call(request)
        raw = (await json_object(request, DIALECT)).get("segments")
        if not isinstance(raw, list) or not raw:
            raise invalid("segments is required")
        fields = [_segment_fields(s, creating=True) for s in raw]
        created = []
        for f in fields:
            audience = state.create_audience(
                "snapchat",
                SNAP_KEYS,
                f["name"],
                ad_account_id,
                retention_in_days=f["retention_in_days"],
            )
            audience.description = str(f.get("description", ""))
            created.append(audience)
        return _segments_answer(state, created)

    @router.get("/v1/adaccounts/{ad_account_id}/segments")
    async def list_segments(request: Request, ad_account_id: str) -> Response:
        state = open_call(request)
        audiences = sorted(
            state.audiences_of("snapchat", ad_account_id), key=lambda a: a.audience_id
        )
        return _segments_answer(state, audiences)

    @router.put("/v1/adaccounts/{ad_account_id}/segments")
    async def update(request: Request, ad_account_id: str) -> Response:
        state = open_call(request)
        raw = (await json_object(request, DIALECT)).get("segments")
        if not isinstance(raw, list) or not raw:
            raise invalid("segments is required")
        updated = []
        for s in raw:
            f = _segment_fields(s, creating=False)
            audience = _find(state, str(f.get("id", "")))
            if audience.ad_account_id != ad_account_id:
                raise SandboxError(snap_error(403, "E3002", "Caller does not have permission"))
            audience.name = f.get("name", audience.name)
            audience.description = str(f.get("description", audience.description))
            if "retention_in_days" in f:
                audience.attributes["retention_in_days"] = f["retention_in_days"]
            audience.touch(state.now())
            updated.append(audience)
        return _segments_answer(state, updated)

    @router.get("/v1/segments/{segment_id}")
    async def get(request: Request, segment_id: str) -> Response:
        state = open_call(request)
        return _segments_answer(state, [_find(state, segment_id)])

    @router.delete("/v1/segments/{segment_id}")
    async def delete(request: Request, segment_id: str) -> Response:
        state = open_call(request)
        _find(state, segment_id)
        state.delete_audience("snapchat", segment_id)
        return json_response(
            {"request_status": "SUCCESS", "request_id": secrets.token_hex(12), "segments": []}
        )

    @router.post("/v1/segments/{segment_id}/users")
    async def add_users(request: Request, segment_id: str) -> Response:
        state = open_call(request)
        audience = _find(state, segment_id)
        rows = _users(await json_object(request, DIALECT))
        audience.members.add(rows, state.now())
        audience.touch(state.now(), upload=True)
        return _users_answer(len(rows))

    @router.delete("/v1/segments/{segment_id}/users")
    async def remove_users(request: Request, segment_id: str) -> Response:
        state = open_call(request)
        audience = _find(state, segment_id)
        rows = _users(await json_object(request, DIALECT))
        audience.members.remove(rows)
        audience.touch(state.now(), upload=True)
        return _users_answer(len(rows))

    @router.delete("/v1/segments/{segment_id}/all_users")
    async def remove_all(request: Request, segment_id: str) -> Response:
        state = open_call(request)
        audience = _find(state, segment_id)
        audience.members.clear()
        audience.touch(state.now(), upload=True)
        return _segments_answer(state, [audience])

    return router
