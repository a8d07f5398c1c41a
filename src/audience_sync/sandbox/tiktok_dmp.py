"""TikTok DMP customer-file audiences: file upload, create, update (APPEND/REMOVE/REPLACE),
delete, get and list (docs/platforms/tiktok.md §3.3 B). Routes join the router
`tiktok.build_router` makes."""

from __future__ import annotations

import hashlib
import json
import secrets
from typing import Any

from fastapi import APIRouter, Request
from starlette.datastructures import UploadFile
from starlette.responses import Response

from audience_sync.sandbox.dialect import json_object
from audience_sync.sandbox.members import Row
from audience_sync.sandbox.state import Audience, SandboxState
from audience_sync.sandbox.tiktok_common import (
    CALCULATE_TYPES,
    DIALECT,
    FILE_HEADERS,
    MIN_SIZE,
    OK,
    PARAM_ERROR,
    TIKTOK_KEYS,
    FileUpload,
    advertiser_of,
    audience_of,
    digest_ok,
    envelope,
    error,
    open_call,
    tiktok_state,
)


def _details(audience: Audience) -> dict[str, Any]:
    cover = audience.members.matched
    return {
        "audience_id": audience.audience_id,
        "custom_audience_id": audience.audience_id,
        "name": audience.name,
        "cover_num": cover,
        # Targetable from 1,000 (docs/platforms/tiktok.md §3.5). [INFER]
        "is_valid": cover >= MIN_SIZE,
        "is_expiring": False,
        "expired_time": None,
        "calculate_type": audience.attributes.get("calculate_type"),
        "audience_type": audience.attributes.get("audience_type", "Customer File"),
        "shared": False,
        "create_time": int(audience.created_at),
    }


def _parse_file(content: bytes, calculate_type: str) -> list[Row]:
    """One identifier per line; `MULTIPLE_TYPES` files start with a header of key names."""
    lines = [ln.strip() for ln in content.decode("utf-8", "replace").splitlines() if ln.strip()]
    if calculate_type == "MULTIPLE_TYPES":
        if not lines:
            raise error(PARAM_ERROR, "The file is empty.")
        # "Email_SHA 256" is how TikTok's help page spells it: case and spaces do not count.
        header = [h.replace(" ", "").upper() for h in lines[0].split(",")]
        if any(h not in FILE_HEADERS for h in header):
            # Code and wording [INFER]; the accepted names are TikTok's (`FILE_HEADERS`).
            raise error(
                PARAM_ERROR,
                f"The file header names an unsupported ID type; use {', '.join(FILE_HEADERS)}.",
            )
        if any(header.count(h) > 3 for h in header):
            raise error(PARAM_ERROR, "Each ID type may appear at most 3 times in the header.")
        lines = lines[1:]
    else:
        header = [calculate_type]
    rows = []
    for number, line in enumerate(lines, start=2 if calculate_type == "MULTIPLE_TYPES" else 1):
        cells = [c.strip() for c in line.split(",")]
        if len(cells) != len(header):
            raise error(
                PARAM_ERROR, f"Line {number} has {len(cells)} values, expected {len(header)}."
            )
        pairs = [(k, v.lower()) for k, v in zip(header, cells, strict=True) if v]
        for key, value in pairs:
            if not digest_ok(key, value):
                raise error(PARAM_ERROR, f"Line {number}: {key} is not a valid hash.")
        if pairs:
            rows.append(TIKTOK_KEYS.encode(pairs))
    return rows


def _file_rows(
    state: SandboxState, advertiser_id: str, paths: Any, calculate_type: str
) -> list[Row]:
    """The rows of uploaded files, each of the audience's `calculate_type`."""
    if not isinstance(paths, list) or not paths:
        raise error(PARAM_ERROR, "file_paths: Missing data for required field.")
    rows: list[Row] = []
    for path in paths:
        stored = tiktok_state(state).files.get(str(path))
        if stored is None or stored.advertiser_id != advertiser_id:
            raise error(PARAM_ERROR, f"file_path {path} does not exist.")
        if stored.calculate_type != calculate_type:
            raise error(PARAM_ERROR, "Files must use the audience's calculate_type.")
        rows.extend(stored.rows)
    return rows


def add_dmp_routes(router: APIRouter) -> None:
    @router.post("/dmp/custom_audience/file/upload/")
    async def upload_file(request: Request) -> Response:
        state = open_call(request)
        async with request.form() as form:
            advertiser = advertiser_of(form.get("advertiser_id"))
            calculate_type = form.get("calculate_type")
            signature = str(form.get("file_signature", "")).lower()
            upload = form.get("file")
            if calculate_type not in CALCULATE_TYPES:
                raise error(PARAM_ERROR, "calculate_type: invalid value.")
            if not isinstance(upload, UploadFile):
                raise error(PARAM_ERROR, "file: Missing data for required field.")
            content = await upload.read()
        # TikTok signs files with the MD5 of their bytes (docs/platforms/tiktok.md §3.3 B).
        if hashlib.md5(content).hexdigest() != signature:  # noqa: S324
            raise error(PARAM_ERROR, "file_signature does not match the file (MD5 of its bytes).")
        rows = _parse_file(content, str(calculate_type))
        path = f"sandbox/{advertiser}/{secrets.token_hex(8)}"
        tiktok_state(state).files[path] = FileUpload(advertiser, str(calculate_type), rows)
        return envelope(OK, "OK", {"file_path": path, "size": len(content)})

    @router.post("/dmp/custom_audience/create/")
    async def create(request: Request) -> Response:
        state = open_call(request)
        body = await json_object(request, DIALECT)
        advertiser = advertiser_of(body.get("advertiser_id"))
        name = body.get("custom_audience_name")
        if not isinstance(name, str) or not name or len(name) > 128:
            raise error(PARAM_ERROR, "custom_audience_name: 1 to 128 characters.")
        calculate_type = body.get("calculate_type")
        if calculate_type not in CALCULATE_TYPES:
            raise error(PARAM_ERROR, "calculate_type: invalid value.")
        retention = body.get("retention_in_days", 365)
        if not isinstance(retention, int) or not 1 <= retention <= 365:
            raise error(PARAM_ERROR, "retention_in_days: must be between 1 and 365.")
        rows = _file_rows(state, advertiser, body.get("file_paths"), str(calculate_type))
        audience = state.create_audience(
            "tiktok",
            TIKTOK_KEYS,
            name,
            advertiser,
            calculate_type=calculate_type,
            retention=retention,
        )
        audience.members.add(rows, state.now())
        audience.touch(state.now(), upload=True)
        # The SDK reads custom_audience_id, other clients audience_id: both are sent. [INFER]
        ids = {"custom_audience_id": audience.audience_id, "audience_id": audience.audience_id}
        return envelope(OK, "OK", ids)

    @router.post("/dmp/custom_audience/update/")
    async def update(request: Request) -> Response:
        state = open_call(request)
        body = await json_object(request, DIALECT)
        advertiser = advertiser_of(body.get("advertiser_id"))
        audience = audience_of(state, advertiser, body.get("custom_audience_id"))
        if body.get("custom_audience_name"):
            audience.name = str(body["custom_audience_name"])
        action = body.get("action", "REPLACE")
        if action not in ("APPEND", "REMOVE", "REPLACE"):
            raise error(PARAM_ERROR, "action: must be APPEND, REMOVE or REPLACE.")
        now = state.now()
        if body.get("file_paths") is None:
            audience.touch(now)
            return envelope(OK, "OK", {"custom_audience_id": audience.audience_id})
        # Files update Customer File audiences only, with files of the audience's own
        # encryption type [SEEN: tiktok/tiktok-business-api-sdk:
        # python_sdk/docs/CustomAudienceUpdateBody.md "Upload files to replace the Customer File
        # audience", "The files must be encrypted with the same encryption method/type with the
        # audience"]. A segment-API (partner) audience has no calculate type: refused. Code and
        # wording [INFER].
        calc = audience.attributes.get("calculate_type")
        if calc is None:
            raise error(
                PARAM_ERROR,
                "file_paths: only Customer File audiences are updated with files; "
                "this audience was made with the segment API (segment/mapping updates it).",
            )
        rows = _file_rows(state, advertiser, body.get("file_paths"), str(calc))
        interval = state.settings.tiktok_replace_interval_seconds
        last_replace = audience.last_replace_at
        if action == "REPLACE" and last_replace is not None and now - last_replace < interval:
            # Once a day per audience; code and wording are a guess. [INFER]
            raise error(PARAM_ERROR, "The REPLACE action can be used once a day per audience.")
        held = set(audience.members)
        after = {
            "APPEND": lambda: len(held | set(rows)),
            "REMOVE": lambda: len(held - set(rows)),
            "REPLACE": lambda: len(set(rows)),
        }[action]()
        if after < MIN_SIZE:
            raise error(
                PARAM_ERROR,
                f"The audience size would be {after} after the {action}; "
                f"it must be at least {MIN_SIZE}.",
            )
        if action == "REPLACE":
            audience.members.clear()
            audience.last_replace_at = now
        if action == "REMOVE":
            audience.members.remove(rows)
        else:
            audience.members.add(rows, now)
        audience.touch(now, upload=True)
        return envelope(OK, "OK", {"custom_audience_id": audience.audience_id})

    @router.post("/dmp/custom_audience/delete/")
    async def delete(request: Request) -> Response:
        state = open_call(request)
        body = await json_object(request, DIALECT)
        advertiser = advertiser_of(body.get("advertiser_id"))
        ids = body.get("custom_audience_ids")
        if not isinstance(ids, list) or not 1 <= len(ids) <= 100:
            raise error(PARAM_ERROR, "custom_audience_ids: 1 to 100 ids.")
        for audience_id in ids:
            audience_of(state, advertiser, audience_id)
        for audience_id in ids:
            state.delete_audience("tiktok", str(audience_id))
        return envelope(OK, "OK")

    @router.get("/dmp/custom_audience/get/")
    async def get(request: Request) -> Response:
        state = open_call(request)
        advertiser = advertiser_of(request.query_params.get("advertiser_id"))
        try:
            ids = json.loads(request.query_params.get("custom_audience_ids", "[]"))
        except ValueError as exc:
            raise error(PARAM_ERROR, "custom_audience_ids: must be a JSON array.") from exc
        if not isinstance(ids, list) or not ids:
            raise error(PARAM_ERROR, "custom_audience_ids: Missing data for required field.")
        found = [audience_of(state, advertiser, i) for i in ids]
        items = [{"audience_details": _details(a), "audience_history": []} for a in found]
        return envelope(OK, "OK", {"list": items})

    @router.get("/dmp/custom_audience/list/")
    async def list_audiences(request: Request) -> Response:
        state = open_call(request)
        advertiser = advertiser_of(request.query_params.get("advertiser_id"))
        page = max(1, int(request.query_params.get("page", 1)))
        size = min(100, max(1, int(request.query_params.get("page_size", 10))))
        audiences = sorted(state.audiences_of("tiktok", advertiser), key=lambda a: a.audience_id)
        chunk = audiences[(page - 1) * size : page * size]
        info = {
            "page": page,
            "page_size": size,
            "total_number": len(audiences),
            "total_page": (len(audiences) + size - 1) // size,
        }
        return envelope(OK, "OK", {"list": [_details(a) for a in chunk], "page_info": info})
