"""The Audiences page: one row per audience, summary figures, filters by platform and state."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response

from audience_sync.connectors.registry import platforms
from audience_sync.dashboard import web
from audience_sync.domain.models import SyncPlatform
from audience_sync.services import overview

router = APIRouter(include_in_schema=False)


@router.get("/")
def home() -> Response:
    return web.redirect("/audiences")


@router.get("/audiences")
def audiences_page(
    request: Request,
    viewer: web.SignedIn,
    platform: Annotated[str, Query(max_length=32)] = "",
    state: Annotated[str, Query(max_length=32)] = "",
) -> Response:
    service = web.context(request).service
    everything = overview.audience_rows(service, viewer.tenant_id)
    chosen_platform = _platform(platform)
    chosen_state = state if state in overview.STATES else None
    rows = [
        row
        for row in everything
        if (chosen_platform is None or row.platform == chosen_platform)
        and (chosen_state is None or row.state == chosen_state)
    ]
    template = "audiences_table.html" if request.headers.get("hx-target") else "audiences.html"
    return web.render(
        request,
        template,
        viewer,
        rows=rows,
        summary=overview.summary(service, viewer.tenant_id, everything),
        platforms=[(spec.key.value, spec.display_name) for spec in platforms()],
        states=overview.STATES,
        platform=chosen_platform.value if chosen_platform else "",
        state=chosen_state or "",
    )


def _platform(text: str) -> SyncPlatform | None:
    try:
        return SyncPlatform(text) if text else None
    except ValueError:
        return None
