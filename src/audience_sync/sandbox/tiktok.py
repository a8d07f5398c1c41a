"""TikTok API for Business v1.3 emulator: segment (streaming) audiences, and the DMP file routes
of `tiktok_dmp` (OAuth is in `oauth_tiktok`). Mounted at `/tiktok/open_api/v1.3`
(docs/platforms/tiktok.md §3.3); every answer is HTTP 200 with `{"code", "message",
"request_id", "data"}`, `code` 0 meaning success."""

from __future__ import annotations

from fastapi import APIRouter, Request
from starlette.responses import Response

from audience_sync.sandbox.dialect import json_object
from audience_sync.sandbox.members import Row
from audience_sync.sandbox.tiktok_common import (
    DIALECT,
    MAX_MAPPING_USERS,
    NOT_FOUND,
    OK,
    PARAM_ERROR,
    SEGMENT_SCHEMAS,
    TIKTOK_KEYS,
    advertiser_of,
    audience_of,
    digest_ok,
    envelope,
    error,
    open_call,
)
from audience_sync.sandbox.tiktok_dmp import add_dmp_routes

__all__ = ["DIALECT", "build_router"]


def build_router() -> APIRouter:
    router = APIRouter(prefix="/tiktok/open_api/v1.3")

    @router.post("/segment/audience/")
    async def segmentaudience_of(request: Request) -> Response:
        state = open_call(request)
        body = await json_object(request, DIALECT)
        advertiser = advertiser_of(body.get("advertiser_id"))
        action = body.get("action")
        if action == "create":
            name = body.get("custom_audience_name")
            if not isinstance(name, str) or not name or len(name) > 128:
                raise error(PARAM_ERROR, "custom_audience_name: 1 to 128 characters.")
            audience = state.create_audience(
                "tiktok", TIKTOK_KEYS, name, advertiser, audience_type="Partner Audience"
            )
            return envelope(OK, "OK", {"audience_id": audience.audience_id})
        audience = audience_of(state, advertiser, body.get("audience_id"))
        if action == "update":  # [INFER] rename
            audience.name = str(body.get("custom_audience_name") or audience.name)
            audience.touch(state.now())
        elif action == "delete":  # [INFER]
            state.delete_audience("tiktok", audience.audience_id)
        else:
            raise error(PARAM_ERROR, "action: must be one of create, update, delete.")
        return envelope(OK, "OK", {"audience_id": audience.audience_id})

    @router.post("/segment/mapping/")
    async def segment_mapping(request: Request) -> Response:
        state = open_call(request)
        body = await json_object(request, DIALECT)
        advertisers = body.get("advertiser_ids")
        if not isinstance(advertisers, list) or not advertisers:
            raise error(PARAM_ERROR, "advertiser_ids: Missing data for required field.")
        action = body.get("action")
        if action not in ("add", "delete"):
            raise error(PARAM_ERROR, "action: must be add or delete.")
        schema = body.get("id_schema")
        if (
            not isinstance(schema, list)
            or not schema
            or any(s not in SEGMENT_SCHEMAS for s in schema)
        ):
            raise error(
                PARAM_ERROR, f"id_schema: each must be one of {', '.join(SEGMENT_SCHEMAS)}."
            )
        users = body.get("batch_data")
        if not isinstance(users, list) or not users:
            raise error(PARAM_ERROR, "batch_data: Missing data for required field.")
        if len(users) > MAX_MAPPING_USERS:
            raise error(PARAM_ERROR, f"batch_data: at most {MAX_MAPPING_USERS} users per request.")
        by_audience: dict[str, list[Row]] = {}
        for i, user in enumerate(users):
            if not isinstance(user, list) or len(user) != len(schema):
                raise error(PARAM_ERROR, f"batch_data[{i}]: one entry per id_schema item.")
            targets: dict[str, list[tuple[str, str]]] = {}
            for key, cell in zip(schema, user, strict=True):
                if cell == {}:
                    continue  # a missing id is sent as {}
                if not isinstance(cell, dict) or not digest_ok(key, cell.get("id")):
                    raise error(PARAM_ERROR, f"batch_data[{i}]: {key} id is not a valid hash.")
                ids = cell.get("audience_ids")
                if not isinstance(ids, list) or not ids:
                    raise error(PARAM_ERROR, f"batch_data[{i}]: audience_ids is required.")
                for audience_id in ids:
                    targets.setdefault(str(audience_id), []).append((key, cell["id"].lower()))
            for audience_id, pairs in targets.items():
                by_audience.setdefault(audience_id, []).append(TIKTOK_KEYS.encode(pairs))
        audiences = {}
        for audience_id in by_audience:
            audience = state.audience("tiktok", audience_id)
            if audience is None or audience.ad_account_id not in map(str, advertisers):
                raise error(NOT_FOUND, f"Audience {audience_id} does not exist.")
            audiences[audience_id] = audience
        now = state.now()
        for audience_id, rows in by_audience.items():
            audience = audiences[audience_id]
            if action == "add":
                audience.members.add(rows, now)
            else:
                audience.members.remove(rows)
            audience.touch(now, upload=True)
        return envelope(OK, "OK")

    add_dmp_routes(router)
    return router
