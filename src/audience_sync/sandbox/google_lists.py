"""Data Manager `UserList` resources: create, get, list, patch, delete.

The contract: docs/platforms/google.md §2.3a.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from fastapi import APIRouter, Request
from starlette.responses import Response

from audience_sync.sandbox.dialect import SandboxError, json_object, json_response
from audience_sync.sandbox.google_common import (
    DATA_SOURCE_TYPES,
    DIALECT,
    GOOGLE_KEYS,
    KEY_SPACES,
    MEMBERSHIP_STATUSES,
    UPLOAD_KEY_TYPES,
    check_access,
    dm_error,
    google_state,
    login_account_header,
    name_enums,
    rpc_error,
    user_list_json,
)
from audience_sync.sandbox.state import Audience, SandboxState

BASE = "/google/v1/accountTypes/{account_type}/accounts/{account_id}/userLists"
DURATION = re.compile(r"(\d+)s")
KEY_TYPES = ("CONTACT_ID", "MOBILE_ID", "USER_ID")
PATCHABLE = ("displayName", "description", "membershipStatus", "membershipDuration")


def _invalid(field: str, message: str, reason: str, code: int = 400) -> SandboxError:
    return SandboxError(dm_error(code, message, reason, [(field, message, reason)]))


def _duration_days(value: Any) -> int:
    """`membershipDuration` is a Duration in whole days, at most 540
    (docs/platforms/google.md §2.5)."""
    match = DURATION.fullmatch(value) if isinstance(value, str) else None
    seconds = int(match.group(1)) if match else -1
    if seconds < 0 or seconds % 86400 or seconds > 540 * 86400:
        raise _invalid(
            "membership_duration",
            "Must be a multiple of 24h, at most 540 days.",
            "INVALID_ARGUMENT",
        )
    return seconds // 86400


def _find(state: SandboxState, account_id: str, list_id: str) -> Audience:
    audience = state.audience("google", list_id)
    if audience is None or audience.ad_account_id != account_id:
        raise SandboxError(rpc_error(404, f"UserList {list_id} was not found.", []))
    return audience


def _name_taken(state: SandboxState, account_id: str, name: str, other: str = "") -> bool:
    return any(
        a.name == name and a.audience_id != other for a in state.audiences_of("google", account_id)
    )


def _name_list_enums(body: dict[str, Any]) -> None:
    """A `UserList` body's enum fields as names (the official client sends numbers)."""
    name_enums(body, MEMBERSHIP_STATUSES, "membershipStatus")
    info = body.get("ingestedUserListInfo")
    name_enums(info, UPLOAD_KEY_TYPES, "uploadKeyTypes")
    if isinstance(info, dict):
        name_enums(info.get("mobileIdInfo"), KEY_SPACES, "keySpace")
        for key in ("contactIdInfo", "mobileIdInfo", "userIdInfo"):
            name_enums(info.get(key), DATA_SOURCE_TYPES, "dataSourceType")


def add_list_routes(router: APIRouter, authorize: Callable[[Request], SandboxState]) -> None:
    def operate(request: Request, account_id: str) -> SandboxState:
        """Authorize, then check the `login-account` header may operate the account: every
        user-list call takes it [SEEN: googleapis/googleapis
        google/ads/datamanager/v1/user_list_service.proto, "Authorization Headers"]."""
        state = authorize(request)
        check_access(state, account_id, login_account_header(request.headers.get("login-account")))
        return state

    @router.post(BASE)
    async def create(request: Request, account_type: str, account_id: str) -> Response:
        state = operate(request, account_id)
        body = await json_object(request, DIALECT)
        _name_list_enums(body)
        name = body.get("displayName")
        if not isinstance(name, str) or not name.strip():
            raise _invalid("display_name", "Required.", "REQUIRED_FIELD_MISSING")
        if _name_taken(state, account_id, name):
            raise _invalid(
                "display_name", "Display name already used.", "DISPLAY_NAME_ALREADY_USED", 409
            )
        days = _duration_days(body.get("membershipDuration", f"{540 * 86400}s"))
        info = body.get("ingestedUserListInfo") or {}
        key_types = info.get("uploadKeyTypes") or []
        if len(key_types) > 1 or any(k not in KEY_TYPES for k in key_types):
            raise _invalid(
                "ingested_user_list_info.upload_key_types",
                "One of CONTACT_ID, MOBILE_ID, USER_ID.",
                "INVALID_ARGUMENT",
            )
        attributes: dict[str, Any] = {"membership_days": days}
        if key_types:
            attributes["upload_key_type"] = key_types[0]
        if key_types == ["MOBILE_ID"]:
            mobile = info.get("mobileIdInfo") or {}
            if not mobile.get("appId"):
                raise _invalid(
                    "ingested_user_list_info.mobile_id_info.app_id",
                    "A mobile-id list needs the app id.",
                    "REQUIRED_FIELD_MISSING",
                )
            attributes.update(app_id=mobile["appId"], key_space=mobile.get("keySpace", "IOS"))
        audience = state.create_audience("google", GOOGLE_KEYS, name, account_id, **attributes)
        audience.description = str(body.get("description", ""))
        return json_response(user_list_json(audience))

    @router.get(BASE)
    async def list_lists(request: Request, account_type: str, account_id: str) -> Response:
        state = operate(request, account_id)
        lists = sorted(state.audiences_of("google", account_id), key=lambda a: a.audience_id)
        token = request.query_params.get("pageToken")
        if token:
            lists = [a for a in lists if a.audience_id > token]
        size = int(request.query_params.get("pageSize") or 100)
        body: dict[str, Any] = {"userLists": [user_list_json(a) for a in lists[:size]]}
        if len(lists) > size:
            body["nextPageToken"] = lists[size - 1].audience_id
        return json_response(body)

    @router.get(BASE + "/{list_id}")
    async def get(request: Request, account_type: str, account_id: str, list_id: str) -> Response:
        state = operate(request, account_id)
        return json_response(user_list_json(_find(state, account_id, list_id)))

    @router.patch(BASE + "/{list_id}")
    async def patch(request: Request, account_type: str, account_id: str, list_id: str) -> Response:
        state = operate(request, account_id)
        audience = _find(state, account_id, list_id)
        body = await json_object(request, DIALECT)
        _name_list_enums(body)
        mask = request.query_params.get("updateMask")
        fields = (
            [f.strip() for f in mask.split(",")] if mask else [k for k in body if k in PATCHABLE]
        )
        for name in fields:
            if name not in PATCHABLE:
                raise _invalid(
                    "update_mask", f"Field {name} cannot be updated.", "INVALID_ARGUMENT"
                )
        if "displayName" in fields:
            new = body.get("displayName")
            if not isinstance(new, str) or not new.strip():
                raise _invalid("display_name", "Required.", "REQUIRED_FIELD_MISSING")
            if _name_taken(state, account_id, new, audience.audience_id):
                raise _invalid(
                    "display_name", "Display name already used.", "DISPLAY_NAME_ALREADY_USED", 409
                )
            audience.name = new
        if "description" in fields:
            audience.description = str(body.get("description", ""))
        if "membershipStatus" in fields:
            audience.attributes["membership_status"] = body.get("membershipStatus", "OPEN")
        if "membershipDuration" in fields:
            audience.attributes["membership_days"] = _duration_days(body.get("membershipDuration"))
        audience.touch(state.now())
        return json_response(user_list_json(audience))

    @router.delete(BASE + "/{list_id}")
    async def delete(
        request: Request, account_type: str, account_id: str, list_id: str
    ) -> Response:
        state = operate(request, account_id)
        _find(state, account_id, list_id)
        state.delete_audience("google", list_id)
        google_state(state)  # jobs that point at the list fail when they run
        return json_response({})
