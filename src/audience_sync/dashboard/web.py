"""What every dashboard page needs: the signed-in viewer, CSRF checks, templates, HTML errors.

The browser holds one cookie, `as_session`: a random token whose SHA-256 names a session row
(`services.sessions`). It is HttpOnly (no script reads it), SameSite=Lax (no cross-site POST
carries it) and Secure when the dashboard is served over HTTPS. Every state-changing request
must also carry the session's CSRF token, as the form field `csrf_token` or, from htmx, the
`X-CSRF-Token` header (set once on `<body>`); a request without it is refused with 403.
"""

from __future__ import annotations

import hmac
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any, Protocol, cast
from urllib.parse import quote

import jinja2
from fastapi import Depends, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from sqlalchemy.orm import Session, sessionmaker
from starlette.datastructures import FormData

from audience_sync.config import Settings
from audience_sync.dashboard import formats
from audience_sync.dashboard.vendor import filename_of
from audience_sync.services import sessions
from audience_sync.services.launcher import JobLauncher
from audience_sync.services.sessions import Viewer
from audience_sync.sync.context import SyncService

SESSION_COOKIE = "as_session"
LOGIN_CSRF_COOKIE = "as_login_csrf"  # the sign-in form's double-submit token (no session yet)
CSRF_FIELD = "csrf_token"
CSRF_HEADER = "x-csrf-token"

templates = jinja2.Environment(
    loader=jinja2.FileSystemLoader(Path(__file__).parent / "templates"),
    autoescape=True,  # every value rendered escaped; `|safe` is never used on data
    undefined=jinja2.StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
)
templates.globals["vendor"] = lambda package: f"/static/vendor/{filename_of(package)}"
templates.globals["platform_name"] = formats.platform_name
formats.install(templates)


class SignInRequired(Exception):  # noqa: N818 (a redirect, not an error)
    """The page needs a signed-in viewer: answered with a redirect to the sign-in page."""


class CsrfRefused(Exception):  # noqa: N818
    """A state-changing request without the session's CSRF token: answered with 403."""


class AppContext(Protocol):
    """What the pages use of the app's context (`api.state.ApiContext`, which the API's app
    builds and mounts the dashboard beside): the dashboard does not import the API."""

    settings: Settings
    factory: sessionmaker[Session]
    service: SyncService
    launcher: JobLauncher


def context(request: Request) -> AppContext:
    return cast(AppContext, request.app.state.context)


def current_viewer(request: Request) -> Viewer | None:
    token = request.cookies.get(SESSION_COOKIE)
    if not token:
        return None
    return sessions.viewer(context(request).factory, token)


def signed_in(request: Request) -> Viewer:
    """The viewer of the request's session; else the page redirects to the sign-in page."""
    found = current_viewer(request)
    if found is None:
        raise SignInRequired
    return found


async def checked_form(request: Request, viewer: Annotated[Viewer, Depends(signed_in)]) -> FormData:
    """The request's form, once its CSRF token (field or header) matches the session's."""
    form = await request.form()
    given = form.get(CSRF_FIELD) or request.headers.get(CSRF_HEADER) or ""
    if not isinstance(given, str) or not hmac.compare_digest(given, viewer.csrf_token):
        raise CsrfRefused
    return form


SignedIn = Annotated[Viewer, Depends(signed_in)]
CheckedForm = Annotated[FormData, Depends(checked_form)]


def render(
    request: Request, name: str, viewer: Viewer | None, status_code: int = 200, **values: Any
) -> HTMLResponse:
    """A page (or, for an htmx request of a fragment template, the fragment)."""
    html = templates.get_template(name).render(
        request=request,
        viewer=viewer,
        path=request.url.path,
        now=datetime.now(UTC),
        **values,
    )
    return HTMLResponse(html, status_code=status_code, headers=SECURITY_HEADERS)


def redirect(url: str, request: Request | None = None) -> Response:
    """See other: after a form POST, or an htmx request (which follows `HX-Redirect`)."""
    if request is not None and request.headers.get("hx-request"):
        return Response(status_code=204, headers={"HX-Redirect": url})
    return RedirectResponse(url, status_code=303)


def sign_in_redirect(request: Request) -> Response:
    target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    return redirect(f"/login?next={quote(target, safe='')}", request)


def secure_cookies(request: Request) -> bool:
    public = context(request).settings.public_url or ""
    return request.url.scheme == "https" or public.startswith("https://")


def csp_with_form_targets(origins: list[str]) -> str:
    """The page's CSP with forms also allowed to lead to `origins` (a platform's sign-in
    page, reached by a redirect after a POST here)."""
    policy = SECURITY_HEADERS["Content-Security-Policy"]
    if not origins:
        return policy
    return policy.replace("form-action 'self'", "form-action 'self' " + " ".join(origins))


# Scripts only from this origin (no inline script: data reaches charts as JSON blocks), no
# framing, forms post only here. Styles allow inline: htmx and Chart.js set element styles.
SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
        "img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; "
        "form-action 'self'; base-uri 'none'; object-src 'none'"
    ),
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}
