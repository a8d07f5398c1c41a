"""Segment exports: created with the API key, downloaded through a signed, expiring link."""

from __future__ import annotations

import uuid
from typing import Annotated
from urllib.parse import urlencode

from fastapi import APIRouter, Query, Request
from fastapi.responses import FileResponse
from starlette.concurrency import run_in_threadpool

from audience_sync.api.deps import Ctx, TenantId
from audience_sync.api.errors import ApiError
from audience_sync.api.report_schemas import ExportIn, ExportOut
from audience_sync.config import Settings
from audience_sync.services import exports
from audience_sync.services.exports import ExportLink, LinkCheck

router = APIRouter(tags=["exports"])
downloads = APIRouter(tags=["exports"])

MEDIA_TYPES = {"csv": "text/csv; charset=utf-8", "json": "application/json"}


@router.post("/segments/{segment_id}/export", response_model=ExportOut)
async def export_segment(
    segment_id: uuid.UUID, body: ExportIn, ctx: Ctx, tenant_id: TenantId, request: Request
) -> ExportOut:
    """Write the segment's members to a file and answer with a signed download link."""
    spec = body.spec()

    def run() -> ExportOut:
        link = exports.create_link(ctx.service, tenant_id, segment_id, spec)
        return ExportOut(
            download_url=download_url(request, ctx.settings, link),
            expires_at=link.expires_at,
            profile_count=link.profile_count,
            file_size_bytes=link.file_size_bytes,
            normalization=link.normalization,
        )

    return await run_in_threadpool(run)


def download_url(request: Request, settings: Settings, link: ExportLink) -> str:
    """The link from `AUDIENCE_SYNC_PUBLIC_URL`, never from the request's `Host` header: a
    client (or a proxy it fools) chooses that header, and a link pointing at its host would
    hand the signature to whoever answers there."""
    path = request.app.url_path_for("download_export", export_id=str(link.export_id))
    query = urlencode({"expires": link.expires, "signature": link.signature})
    return f"{settings.effective_public_url}{path}?{query}"


@downloads.get("/exports/{export_id}", name="download_export", response_class=FileResponse)
def download_export(
    export_id: uuid.UUID,
    ctx: Ctx,
    expires: Annotated[int, Query()],
    signature: Annotated[str, Query(max_length=128)],
) -> FileResponse:
    """The file, streamed; no API key (the link is the credential). 403 when the link was
    altered, 410 when it expired."""
    verdict, path, fmt = exports.open_link(ctx.service, export_id, expires, signature)
    if verdict is LinkCheck.TAMPERED:
        raise ApiError(403, "link_invalid", "This download link is not valid.")
    if verdict is LinkCheck.EXPIRED:
        raise ApiError(410, "link_expired", "This download link has expired; export again.")
    assert path is not None
    # The stored name ends `.<normalization>.<format>` (`export.service.file_name`).
    return FileResponse(path, media_type=MEDIA_TYPES[fmt], filename=f"segment-export-{path.name}")
