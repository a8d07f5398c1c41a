"""TikTok API for Business v1.3 emulator: segment (streaming) audiences, and the DMP file routes
of `tiktok_dmp` (OAuth is in `oauth_tiktok`). Mounted at `/tiktok/open_api/v1.3`
(docs/platforms/tiktok.md §3.3); every answer is HTTP 200 with `{"code", "message",
"request_id", "data"}`, `code` 0 meaning success."""

from __future__ import annotations

from itertools import repeat
from typing import Any

from fastapi import APIRouter, Request
from starlette.responses import Response

from audience_sync.sandbox.dialect import json_object
from audience_sync.sandbox.members import Row, all_hex
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


def _rows_by_audience(schema: list[str], users: list[Any]) -> dict[str, list[Row]]:
    """Each audience's rows, user by user; the first problem fails the request."""
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
    return by_audience


def _if_one_plain_audience(schema: list[str], users: list[Any]) -> dict[str, list[Row]] | None:
    """What `_rows_by_audience` gives when every user is valid and every id names the same one
    audience (the common batch), checked and encoded column by column; None otherwise, for
    `_rows_by_audience` to find and word the first problem."""
    if set(map(type, users)) != {list} or set(map(len, users)) != {len(schema)}:
        return None
    columns = list(zip(*users, strict=True))
    target = _only_target(columns)
    if target is None:
        return None
    # None too for a user with no id at all, which `_rows_by_audience` skips.
    rows = TIKTOK_KEYS.rows_of_columns(schema, lambda i: _hex_cells(schema[i], columns[i], target))
    return None if rows is None else {str(target[0]): rows}


def _only_target(columns: list[tuple[Any, ...]]) -> list[str] | None:
    """The `audience_ids` of the first id sent, when it names one audience by a string."""
    for column in columns:
        for cell in column:
            if type(cell) is dict and cell:
                ids = cell.get("audience_ids")
                ok = type(ids) is list and len(ids) == 1 and type(ids[0]) is str
                return ids if ok else None
    return None


def _hex_cells(key: str, cells: tuple[Any, ...], target: list[str]) -> list[str] | None:
    """One id_schema key's ids as hex text of `encode`'s bytes ("" for a missing id, `{}`), when
    each is `{}` or `{"id": <digest>, "audience_ids": target}`; None otherwise."""
    if set(map(type, cells)) != {dict}:
        return None
    sizes = list(map(len, cells))
    ids = list(map(dict.get, cells, repeat("id")))
    audiences = list(map(dict.get, cells, repeat("audience_ids")))
    present = len(cells) - sizes.count(0)
    if (
        sizes.count(2) != present
        or audiences.count(target) != present
        or ids.count(None) != len(cells) - present
    ):
        return None  # a cell with other keys, without an id, or aimed elsewhere
    prefix = TIKTOK_KEYS.hex_prefix(key)
    try:
        texts = [prefix + value if value is not None else "" for value in ids]
    except TypeError:
        return None  # an id that is not a string
    # Each text "" (and then its cell was `{}`: it has no audience_ids) or the prefix and a
    # digest of the key's length (`digest_ok`).
    if not all_hex(texts, {0, len(prefix) + (32 if key.endswith("MD5") else 64)}):
        return None
    return texts


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
        by_audience = _if_one_plain_audience(schema, users) or _rows_by_audience(schema, users)
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
