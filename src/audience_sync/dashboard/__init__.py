"""The dashboard: server-rendered pages (Jinja2 + htmx) on the services the API uses.

`install(app)` mounts it at `/` of the API's app: pages, their static files and HTML error pages.
See docs/dashboard.md.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import cast

from fastapi import FastAPI, Request
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response

from audience_sync.api.limits import route_path
from audience_sync.dashboard import auth, web
from audience_sync.dashboard.limits import FormLimit
from audience_sync.dashboard.pages import PAGES
from audience_sync.dashboard.vendor import missing
from audience_sync.exceptions import AudienceSyncError, NotFoundError

log = logging.getLogger(__name__)

STATIC = Path(__file__).parent / "static"
# Paths the API, the sandbox and the docs answer in JSON: the dashboard leaves them alone.
NOT_DASHBOARD = (
    "/api/",
    "/sandbox",
    "/exports/",
    "/healthz",
    "/metrics",
    "/docs",
    "/redoc",
    "/openapi.json",
)

Handler = Callable[[Request, Exception], Awaitable[Response]]


def install(app: FastAPI) -> None:
    if missing():
        log.warning(
            "The dashboard's front-end files are missing: run `make` (or "
            "`python -m audience_sync.dashboard.vendor`) to fetch them."
        )
    app.mount("/static", StaticFiles(directory=STATIC, check_dir=False), name="static")
    app.include_router(auth.router)
    for page in PAGES:
        app.include_router(page)
    _html_errors(app)
    app.add_middleware(FormLimit, applies=_is_dashboard_path)


def is_dashboard(request: Request) -> bool:
    return _is_dashboard_path(route_path(request.scope))


def _is_dashboard_path(path: str) -> bool:
    return not path.startswith(NOT_DASHBOARD)


def _html_errors(app: FastAPI) -> None:
    """Errors on dashboard paths as pages; the API's JSON answers stay as they are."""
    app.add_exception_handler(web.SignInRequired, _sign_in)
    app.add_exception_handler(web.CsrfRefused, _csrf_refused)
    for kind in (AudienceSyncError, StarletteHTTPException):
        api_handler = cast(Handler, app.exception_handlers[kind])
        app.add_exception_handler(kind, _page_or(api_handler))


async def _sign_in(request: Request, _exc: Exception) -> Response:
    return web.sign_in_redirect(request)


async def _csrf_refused(request: Request, _exc: Exception) -> Response:
    message = (
        "This form has expired or did not come from this dashboard. Reload the page and try again."
    )
    return web.render(
        request, "error.html", None, status_code=403, title="Refused", message=message
    )


def _page_or(api_handler: Handler) -> Handler:
    async def handle(request: Request, exc: Exception) -> Response:
        if not is_dashboard(request):
            return await api_handler(request, exc)
        viewer = web.current_viewer(request)
        if isinstance(exc, NotFoundError) or (
            isinstance(exc, StarletteHTTPException) and exc.status_code == 404
        ):
            return web.render(
                request,
                "error.html",
                viewer,
                status_code=404,
                title="Not found",
                message="There is nothing here, or it belongs to another account.",
            )
        if isinstance(exc, AudienceSyncError):
            return web.render(
                request,
                "error.html",
                viewer,
                status_code=422,
                title="Refused",
                message=exc.message,
            )
        assert isinstance(exc, StarletteHTTPException)
        return web.render(
            request,
            "error.html",
            viewer,
            status_code=exc.status_code,
            title="Error",
            message=str(exc.detail),
        )

    return handle
