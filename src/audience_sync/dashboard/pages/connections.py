"""The Connections page: each platform's status and token hint; connect, reconnect, disconnect
and test a connection.

A token typed here goes to `services.connections.put` (encrypted at rest) and is never written
back into a page: not as a value, not after a validation error. The form is checked by the
API's own request model (`api.schemas.ConnectionIn`).
"""

from __future__ import annotations

from typing import Any, cast
from urllib.parse import urlsplit

import pydantic
from fastapi import APIRouter, Request
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import FormData

from audience_sync.api.schemas import ConnectionIn
from audience_sync.connectors.access import AdAccount, Reason
from audience_sync.connectors.registry import PlatformSpec, platform_spec, platforms
from audience_sync.dashboard import web
from audience_sync.domain.models import SyncPlatform
from audience_sync.exceptions import (
    AudienceSyncError,
    FieldError,
    NotFoundError,
    UnknownPlatformError,
    ValidationError,
)
from audience_sync.services import connections, oauth
from audience_sync.services.sessions import Viewer

router = APIRouter(include_in_schema=False)

# The credentials each platform's connector reads besides the access token (`api.schemas.
# CredentialsIn`); the OAuth trio where the platform refreshes tokens (`Capabilities`).
OAUTH = ("refresh_token", "client_id", "client_secret")
EXTRA_CREDENTIALS: dict[str, tuple[str, ...]] = {
    "meta": ("app_secret",),
    "google": ("developer_token",),
}
CREDENTIAL_LABELS = {
    "refresh_token": ("Refresh token", "Lets the service renew the access token by itself."),
    "client_id": ("OAuth client id", "The app the refresh token was issued to."),
    "client_secret": ("OAuth client secret", "The app's secret, for the refresh grant."),
    "app_secret": ("App secret", "Signs each call (appsecret_proof) when the app requires it."),
    "developer_token": ("Developer token", "Only for the Google Ads API path."),
}
CONSENT_CHOICES = (
    ("", "Keep as is"),
    ("granted", "Granted"),
    ("denied", "Denied"),
    ("unspecified", "Unspecified"),
)
LDU_CHOICES = (
    ("", "Keep as is"),
    ("off", "Off"),
    ("geolocate", "Geolocate"),
    ("california", "California"),
)
# The connection settings a form shows (`PlatformSpec.connection_settings`), as inputs.
SETTING_INPUTS: dict[str, dict[str, Any]] = {
    "login_account_id": {
        "label": "Manager account id",
        "help": "The manager account the credentials' user belongs to (dashes allowed).",
    },
    "customer_match_terms_accepted": {
        "label": "The account accepted Google's Customer Match terms",
        "checkbox": True,
        "help": "Required before Google takes any upload.",
    },
    "consent_ad_user_data": {
        "label": "Ad user data consent (default for members)",
        "choices": CONSENT_CHOICES,
    },
    "consent_ad_personalization": {
        "label": "Ad personalization consent (default for members)",
        "choices": CONSENT_CHOICES,
    },
    "limited_data_use": {
        "label": "Limited Data Use (default for members)",
        "choices": LDU_CHOICES,
    },
}


# A saved connection's test, named in the redirect (`?test=REASON`): no platform words in URLs.
TEST_PHRASES = {
    Reason.OK: "Connected; the test passed.",
    Reason.BAD_TOKEN: "Connected, but the test failed: the platform refused the token "
    "(invalid or revoked).",
    Reason.EXPIRED: "Connected, but the test failed: the token has expired.",
    Reason.MISSING_SCOPE: "Connected, but the test failed: the token lacks a permission "
    "the service needs.",
    Reason.UNKNOWN_AD_ACCOUNT: "Connected, but the test failed: the token does not reach "
    "that ad account.",
    Reason.REFUSED: "Connected, but the test failed: the platform refused the test read.",
    Reason.UNREACHABLE: "Connected, but the test failed: the platform did not answer.",
    Reason.NOT_SUPPORTED: "Connected (this platform has no connection test here).",
}


@router.get("/connections")
async def connections_page(
    request: Request,
    viewer: web.SignedIn,
    done: str = "",
    test: str = "",
    connected: str = "",
    accounts: str = "",
) -> Response:
    flash = {
        "connected": "Connected.",
        "disconnected": "Disconnected.",
        "account": "Ad account changed.",
    }.get(done)
    failed_test = False
    if done == "connected" and test in TEST_PHRASES:
        flash = TEST_PHRASES[Reason(test)]
        failed_test = test not in (Reason.OK, Reason.NOT_SUPPORTED)
    picker = None
    chosen = connected or accounts
    if chosen:
        spec = _spec(chosen)
        if connected:
            flash = f"{spec.display_name} connected."
        picker = (spec.name, await _accounts(request, viewer, spec))
    return _page(request, viewer, flash=flash, failed_test=failed_test, picker=picker)


async def _accounts(request: Request, viewer: Viewer, spec: PlatformSpec) -> list[AdAccount] | str:
    """The ad accounts for the picker, or why they cannot be listed."""
    service = web.context(request).service
    try:
        return await connections.ad_accounts(service, viewer.tenant_id, _key(spec))
    except NotFoundError:
        return f"{spec.display_name} is not connected."
    except AudienceSyncError as exc:
        return exc.message


@router.post("/connections/{platform}")
async def connect(
    request: Request, platform: str, viewer: web.SignedIn, form: web.CheckedForm
) -> Response:
    spec = _spec(platform)
    body, errors = _body(spec, form)
    if body is not None:
        try:
            await run_in_threadpool(_put, request, viewer.tenant_id, spec, body)
        except FieldError as exc:
            errors[exc.field.removeprefix("body.")] = exc.message
        except ValidationError as exc:
            errors["ad_account_id"] = exc.message
    if errors:
        kept = {"ad_account_id": _text(form, "ad_account_id")}  # never a secret
        return _page(request, viewer, 422, failed=spec.name, errors=errors, kept=kept)
    service = web.context(request).service
    found = await connections.test(service, viewer.tenant_id, _key(spec))
    return web.redirect(f"/connections?done=connected&test={found.reason.value}", request)


@router.post("/connections/{platform}/authorize")
async def authorize(
    request: Request, platform: str, viewer: web.SignedIn, form: web.CheckedForm
) -> Response:
    """Start the OAuth flow: see other, to the platform's sign-in and consent page."""
    spec = _spec(platform)
    service = web.context(request).service
    token = request.cookies.get(web.SESSION_COOKIE)
    url = await run_in_threadpool(oauth.start, service, viewer.tenant_id, _key(spec), token)
    return web.redirect(url, request)


@router.get("/oauth/{platform}/callback")
async def oauth_callback(request: Request, platform: str) -> Response:
    """Where the platform sends the browser back. The `state` must be one this browser
    session (or, for a flow started with an API key, this tenant) started, unused and
    unexpired; then the tokens are stored and the Connections page lists the ad accounts.
    The query (code, state) is never logged: the access log leaves query strings out."""
    spec = _spec(platform)
    service = web.context(request).service
    viewer = web.current_viewer(request)
    try:
        await oauth.callback(
            service,
            _key(spec),
            dict(request.query_params),
            session_token=request.cookies.get(web.SESSION_COOKIE),
            viewer_tenant=viewer.tenant_id if viewer else None,
        )
    except oauth.OAuthRefusedError as exc:
        values = {"spec": spec, "message": exc.message}
        return web.render(request, "oauth_refused.html", viewer, 400, **values)
    return web.redirect(f"/connections?connected={spec.name}", request)


@router.post("/connections/{platform}/ad-account")
async def choose_ad_account(
    request: Request, platform: str, viewer: web.SignedIn, form: web.CheckedForm
) -> Response:
    spec = _spec(platform)
    service = web.context(request).service
    chosen = _text(form, "ad_account_id")
    try:
        await connections.choose_ad_account(service, viewer.tenant_id, _key(spec), chosen)
    except FieldError as exc:
        found = await _accounts(request, viewer, spec)
        return _page(request, viewer, 422, picker=(spec.name, found), picker_error=exc.message)
    return web.redirect("/connections?done=account", request)


@router.post("/connections/{platform}/disconnect")
async def disconnect(
    request: Request, platform: str, viewer: web.SignedIn, form: web.CheckedForm
) -> Response:
    spec = _spec(platform)
    service = web.context(request).service
    await run_in_threadpool(connections.get, service, viewer.tenant_id, _key(spec))
    if form.get("confirm") != "yes":
        return web.render(request, "connections_disconnect.html", viewer, spec=spec)
    await connections.delete(service, viewer.tenant_id, _key(spec))
    return web.redirect("/connections?done=disconnected", request)


@router.post("/connections/{platform}/test")
async def test_connection(
    request: Request, platform: str, viewer: web.SignedIn, form: web.CheckedForm
) -> Response:
    spec = _spec(platform)
    service = web.context(request).service
    result = await connections.test(service, viewer.tenant_id, _key(spec))
    return _page(request, viewer, tested=(spec.name, result))


def _spec(platform: str) -> PlatformSpec:
    try:
        return platform_spec(platform)
    except UnknownPlatformError:
        raise NotFoundError("No such platform.") from None


def _key(spec: PlatformSpec) -> SyncPlatform:
    """The platform's key as the services type it (a platform registered later brings its
    own `StrEnum` member, which behaves alike)."""
    return cast(SyncPlatform, spec.key)


def _put(request: Request, tenant_id: int, spec: PlatformSpec, body: ConnectionIn) -> None:
    """Connect or reconnect. A reconnect keeps the connection's stored address where the
    operator allows per-connection addresses (a sandbox's): the form has no such field."""
    service = web.context(request).service
    key = _key(spec)
    base_url = None
    if service.settings.allow_connection_base_url:
        try:
            base_url = connections.get(service, tenant_id, key).base_url
        except NotFoundError:
            base_url = None
    settings = body.settings.changes() if body.settings else None
    connections.put(
        service,
        tenant_id,
        key,
        body.ad_account_id,
        body.credentials.plain(),
        base_url=base_url,
        settings=settings,
    )


def _body(spec: PlatformSpec, form: FormData) -> tuple[ConnectionIn | None, dict[str, str]]:
    """The API's request body from the form, or the errors by input name."""
    credentials = {name: _text(form, name) for name in ("access_token", *_credential_fields(spec))}
    settings: dict[str, Any] = {}
    for name in sorted(spec.connection_settings):
        given = SETTING_INPUTS.get(name, {})
        if given.get("checkbox"):
            settings[name] = form.get(name) == "on"
        elif _text(form, name):
            settings[name] = _text(form, name).strip()
    raw = {
        "ad_account_id": _text(form, "ad_account_id").strip(),
        "credentials": {k: v for k, v in credentials.items() if v},
        "settings": settings or None,
    }
    try:
        return ConnectionIn.model_validate(raw), {}
    except pydantic.ValidationError as exc:
        errors: dict[str, str] = {}
        for error in exc.errors():
            loc = [str(part) for part in error["loc"]]
            name = loc[-1] if loc and loc[0] in ("credentials", "settings") else loc[0]
            if loc == ["credentials"] or name == "access_token":
                name, message = "access_token", "Paste the access token."
            else:
                message = str(error["msg"]).removeprefix("Value error, ")
            errors.setdefault(name, message)
        return None, errors


def _credential_fields(spec: PlatformSpec) -> tuple[str, ...]:
    oauth = OAUTH if spec.capabilities.refreshes_tokens else ()
    return (*oauth, *EXTRA_CREDENTIALS.get(spec.name, ()))


def _text(form: FormData, name: str) -> str:
    value = form.get(name)
    return value if isinstance(value, str) else ""


def _page(request: Request, viewer: Viewer, status_code: int = 200, **values: Any) -> Response:
    service = web.context(request).service
    found = {c.platform.value: c for c in connections.list_connections(service, viewer.tenant_id)}
    rows = []
    for spec in platforms():
        connection = found.get(spec.name)
        view = connections.connection_view(connection) if connection else None
        rows.append(
            {
                "spec": spec,
                "view": view,
                "updated_at": connection.updated_at if connection else None,
                "status": _status(view),
                "credentials": [
                    (name, *CREDENTIAL_LABELS.get(name, (name, "")))
                    for name in _credential_fields(spec)
                ],
                "settings": [
                    (name, SETTING_INPUTS.get(name, {"label": name}))
                    for name in sorted(spec.connection_settings)
                ],
                "oauth": oauth.configured(service.settings, _key(spec)),
            }
        )
    values.setdefault("flash", None)
    values.setdefault("failed", None)
    values.setdefault("errors", {})
    values.setdefault("kept", {})
    values.setdefault("tested", None)
    values.setdefault("failed_test", False)
    values.setdefault("picker", None)
    values.setdefault("picker_error", None)
    response = web.render(
        request, "connections.html", viewer, status_code=status_code, rows=rows, **values
    )
    # The Connect buttons' POST is answered with a redirect to the platform's page: browsers
    # check a form's redirects against `form-action` too.
    response.headers["Content-Security-Policy"] = web.csp_with_form_targets(
        _authorize_origins(service.settings)
    )
    return response


def _authorize_origins(settings: Any) -> list[str]:
    origins = []
    for spec in platforms():
        url = urlsplit(str(getattr(settings, f"{spec.name}_authorize_url", "") or ""))
        if url.scheme in ("http", "https") and url.netloc:
            origins.append(f"{url.scheme}://{url.netloc}")
    return sorted(set(origins))


def _status(view: dict[str, Any] | None) -> str:
    if view is None:
        return "not connected"
    return "needs reconnect" if view["status"] == "needs_reconnect" else "connected"
