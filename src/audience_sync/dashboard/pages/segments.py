"""The Segments page: each segment's size, members added in the last 7 days, the audiences
using it; export a segment with the API's options and download the file by its signed link."""

from __future__ import annotations

import uuid
from collections import defaultdict
from datetime import timedelta
from typing import Any

import pydantic
from fastapi import APIRouter, Request
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import FormData

from audience_sync.api.report_schemas import ExportIn
from audience_sync.connectors.registry import platforms
from audience_sync.dashboard import web
from audience_sync.domain.models import IdentifierType
from audience_sync.exceptions import ValidationError
from audience_sync.services import audiences, exports, segments
from audience_sync.services.sessions import Viewer

router = APIRouter(include_in_schema=False)

RECENT = timedelta(days=7)
IDENTIFIER_LABELS = {
    "email": "Email",
    "phone": "Phone",
    "mobile_id": "Mobile advertising id",
    "external_id": "External id",
}


@router.get("/segments")
def segments_page(request: Request, viewer: web.SignedIn) -> Response:
    return _page(request, viewer)


@router.post("/segments/{segment_id}/export")
async def export_segment(
    request: Request, segment_id: uuid.UUID, viewer: web.SignedIn, form: web.CheckedForm
) -> Response:
    service = web.context(request).service
    await run_in_threadpool(segments.get, service, viewer.tenant_id, segment_id)  # 404 if not ours
    given = _given(form)
    try:
        body = ExportIn.model_validate(given)
    except pydantic.ValidationError as exc:
        errors = {str(e["loc"][0]) if e["loc"] else "form": _message(e) for e in exc.errors()}
        return _page(request, viewer, 422, failed=str(segment_id), errors=errors, given=given)
    spec = body.spec()
    try:
        link = await run_in_threadpool(
            exports.create_link, service, viewer.tenant_id, segment_id, spec
        )
    except ValidationError as exc:
        return _page(request, viewer, 422, failed=str(segment_id), problem=exc.message, given=given)
    return _page(
        request,
        viewer,
        exported={"segment_id": segment_id, "link": link, "url": exports.download_path(link)},
    )


def _given(form: FormData) -> dict[str, Any]:
    """The form as the API's export body (`ExportIn`); an unchecked box is false."""
    platform = form.get("platform")
    return {
        "format": form.get("format") or "csv",
        "hash_identifiers": form.get("hash_identifiers") == "on",
        "identifier_types": [str(v) for v in form.getlist("identifier_types")],
        "platform": platform or None,
        "include_traits": form.get("include_traits") == "on",
        "include_events": form.get("include_events") == "on",
    }


def _message(error: Any) -> str:
    if error["loc"] and error["loc"][0] == "identifier_types":
        return "Choose at least one identifier type."
    return str(error["msg"]).removeprefix("Value error, ")


def _page(request: Request, viewer: Viewer, status_code: int = 200, **values: Any) -> Response:
    service = web.context(request).service
    tenant = viewer.tenant_id
    found = segments.list_segments(service, tenant)
    recent = segments.added_since(service, tenant, service.clock() - RECENT)
    using: dict[uuid.UUID, list[Any]] = defaultdict(list)
    for audience in audiences.list_audiences(service, tenant):
        using[audience.segment_id].append(audience)
    values.setdefault("failed", None)
    values.setdefault("errors", {})
    values.setdefault("problem", None)
    values.setdefault("exported", None)
    defaults = ExportIn().model_dump(mode="json")  # the API's defaults
    values.setdefault("given", defaults)
    return web.render(
        request,
        "segments.html",
        viewer,
        status_code=status_code,
        segments=found,
        recent=recent,
        using=using,
        identifier_types=[(t.value, IDENTIFIER_LABELS.get(t, t.value)) for t in IdentifierType],
        platforms=[(spec.name, spec.display_name) for spec in platforms()],
        default_given=defaults,
        **values,
    )
