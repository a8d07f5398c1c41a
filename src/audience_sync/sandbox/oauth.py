"""OAuth authorization-code flows, the parts the four emulators share: registered apps, one-time
codes with PKCE, the consent page with its `Allow` and `Deny` buttons, and the app controls.

Each platform module (`oauth_meta`, `oauth_google`, `oauth_tiktok`, `oauth_snapchat`) describes
its flow as a `Flow` and adds its token endpoint, refresh, revocation and discovery reads. What
each platform documents, and what is inferred, is in docs/connections.md.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import html
import secrets
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote_plus, urlencode, urlsplit

from fastapi import APIRouter, HTTPException, Request
from pydantic import BaseModel, Field
from starlette.responses import HTMLResponse, RedirectResponse, Response

from audience_sync.sandbox.dialect import SandboxError, sandbox_state
from audience_sync.sandbox.settings import OAuthApp
from audience_sync.sandbox.state import SandboxState

PLATFORMS = ("meta", "google", "tiktok", "snapchat")
LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1")


@dataclass
class AuthCode:
    """An authorization code: whom it was issued to, for what, until when, and whether it was
    exchanged already (codes are single use everywhere)."""

    platform: str
    client_id: str
    redirect_uri: str
    scopes: tuple[str, ...]
    expires_at: float
    challenge: str | None = None
    challenge_method: str = "plain"
    extras: dict[str, str] = field(default_factory=dict)
    used: bool = False


@dataclass
class OAuthState:
    """Registered apps (by platform and client id), codes handed out, and the apps a user has
    consented to already (Google sends a refresh token on the first consent only)."""

    apps: dict[tuple[str, str], OAuthApp] = field(default_factory=dict)
    codes: dict[str, AuthCode] = field(default_factory=dict)
    consented: set[tuple[str, str]] = field(default_factory=set)
    accounts: dict[str, tuple[str, ...]] = field(default_factory=dict)


def oauth_state(state: SandboxState) -> OAuthState:
    """The OAuth part of the sandbox state, seeded from the settings on first use."""
    value = state.extras.get("oauth")
    if value is None:
        settings = state.settings
        value = OAuthState(
            apps={(p, app.client_id): app for p, app in settings.oauth_apps.items()},
            accounts=dict(settings.oauth_accounts),
        )
        state.extras["oauth"] = value
    assert isinstance(value, OAuthState)
    return value


def find_app(state: SandboxState, platform: str, client_id: object) -> OAuthApp | None:
    if not isinstance(client_id, str | int) or not str(client_id):
        return None
    return oauth_state(state).apps.get((platform, str(client_id)))


def secret_ok(app: OAuthApp, secret: object) -> bool:
    return isinstance(secret, str) and hmac.compare_digest(secret, app.client_secret)


def redirect_allowed(app: OAuthApp, uri: str) -> bool:
    """Exact match with a registered URI, or (when the app allows it) any loopback http URI."""
    if uri in app.redirect_uris:
        return True
    if not app.allow_loopback:
        return False
    parts = urlsplit(uri)
    return parts.scheme == "http" and parts.hostname in LOOPBACK_HOSTS


def pkce_ok(code: AuthCode, verifier: object) -> bool:
    """RFC 7636 §4.6: S256 compares BASE64URL(SHA256(verifier)) with the challenge."""
    if not isinstance(verifier, str) or not 43 <= len(verifier) <= 128:
        return False
    if code.challenge_method == "S256":
        digest = hashlib.sha256(verifier.encode("ascii", "replace")).digest()
        expected = base64.urlsafe_b64encode(digest).rstrip(b"=").decode()
    else:
        expected = verifier
    return hmac.compare_digest(expected, code.challenge or "")


def issue_code(state: SandboxState, code: AuthCode) -> str:
    value = secrets.token_urlsafe(24)
    oauth_state(state).codes[value] = code
    return value


def with_query(uri: str, params: Mapping[str, str | None]) -> str:
    """`uri` with `params` appended to its query (a None value is left out)."""
    extra = urlencode({k: v for k, v in params.items() if v is not None})
    if not extra:
        return uri
    return f"{uri}{'&' if urlsplit(uri).query else '?'}{extra}"


@dataclass(frozen=True)
class Flow:
    """How one platform's authorize endpoint reads its request and answers the user's choice."""

    platform: str
    title: str
    """The consent page's heading (the platform's product name for its login)."""
    client_param: str = "client_id"
    scope_required: bool = False
    response_type_required: bool = True
    pkce: bool = False
    """Whether the platform documents PKCE (`code_challenge`) on this flow."""
    granted: Callable[[dict[str, str]], dict[str, str]] = lambda request: {}
    """Extra values kept with the code (Google's `access_type`, `prompt`)."""
    allow_params: Callable[[str, str | None], dict[str, str | None]] = lambda code, state: {
        "code": code,
        "state": state,
    }
    deny_params: Callable[[str | None], dict[str, str | None]] = lambda state: {
        "error": "access_denied",
        "state": state,
    }
    error_page: Callable[[int, str, str], Response] = lambda status, error, text: error_html(
        status, error, text
    )
    """How the platform shows a request it cannot send back (unknown app, redirect URI not
    registered): a page for the user, never a redirect (RFC 6749 §4.1.2.1)."""


def error_html(status: int, heading: str, text: str) -> HTMLResponse:
    body = (
        "<!doctype html><html lang='en'><head><meta charset='utf-8'><title>"
        f"{html.escape(heading)}</title></head><body><h1>{html.escape(heading)}</h1>"
        f"<p>{html.escape(text)}</p></body></html>"
    )
    return HTMLResponse(body, status_code=status)


async def _request_params(request: Request) -> dict[str, str]:
    params = dict(request.query_params)
    if request.method == "POST":
        form = await request.form()
        params.update({k: v for k, v in form.items() if isinstance(v, str)})
    return params


def _validated(
    state: SandboxState, flow: Flow, params: dict[str, str]
) -> tuple[OAuthApp, str, tuple[str, ...]]:
    """The app, redirect URI and scopes of an authorize request, or the platform's error page."""
    app = find_app(state, flow.platform, params.get(flow.client_param))
    if app is None:
        raise SandboxError(
            flow.error_page(401, "invalid_client", "The OAuth client was not found.")
        )
    redirect_uri = params.get("redirect_uri", "")
    if not redirect_uri or not redirect_allowed(app, redirect_uri):
        raise SandboxError(
            flow.error_page(
                400, "redirect_uri_mismatch", "The redirect URI is not registered for this app."
            )
        )
    if flow.response_type_required and params.get("response_type") != "code":
        raise SandboxError(
            flow.error_page(400, "unsupported_response_type", "response_type must be code.")
        )
    # Meta separates scopes with commas, the others with spaces; no scope name holds either.
    scopes = tuple(params.get("scope", "").replace(",", " ").split())
    if flow.scope_required and not scopes:
        raise SandboxError(
            flow.error_page(400, "invalid_request", "Missing required parameter: scope")
        )
    if params.get("code_challenge_method", "plain") not in ("plain", "S256"):
        raise SandboxError(
            flow.error_page(400, "invalid_request", "Invalid code_challenge_method.")
        )
    return app, redirect_uri, scopes


def consent_page(flow: Flow, app: OAuthApp, scopes: tuple[str, ...], params: dict[str, str]) -> str:
    """The page a browser test clicks: the app's name, the scopes asked for, Allow and Deny.
    Both buttons post the original request back to the same URL."""
    hidden = "".join(
        f"<input type='hidden' name='{html.escape(k)}' value='{html.escape(v)}'>"
        for k, v in params.items()
        if k != "decision"
    )
    items = "".join(f"<li>{html.escape(s)}</li>" for s in scopes) or "<li>(the app's default)</li>"
    return (
        "<!doctype html><html lang='en'><head><meta charset='utf-8'>"
        f"<title>{html.escape(flow.title)}</title></head><body>"
        f"<h1>{html.escape(flow.title)}</h1>"
        f"<p><strong>{html.escape(app.name)}</strong> would like to access your account.</p>"
        f"<p>Permissions requested:</p><ul>{items}</ul>"
        f"<form method='post'>{hidden}"
        "<button type='submit' name='decision' value='allow'>Allow</button> "
        "<button type='submit' name='decision' value='deny'>Deny</button>"
        "</form><p><small>Audience Sync platform sandbox: no real account is involved."
        "</small></p></body></html>"
    )


async def authorize_endpoint(request: Request, flow: Flow) -> Response:
    """GET shows the consent page; POST (a button) redirects back to the app."""
    state = sandbox_state(request)
    params = await _request_params(request)
    try:
        app, redirect_uri, scopes = _validated(state, flow, params)
    except SandboxError as refused:
        return refused.response
    if request.method == "GET":
        return HTMLResponse(consent_page(flow, app, scopes, params))
    user_state = params.get("state")
    if params.get("decision") != "allow":
        return RedirectResponse(with_query(redirect_uri, flow.deny_params(user_state)), 302)
    challenge = params.get("code_challenge") if flow.pkce else None
    code = issue_code(
        state,
        AuthCode(
            platform=flow.platform,
            client_id=app.client_id,
            redirect_uri=redirect_uri,
            scopes=scopes,
            expires_at=state.now() + state.settings.oauth_code_ttl_seconds[flow.platform],
            challenge=challenge or None,
            challenge_method=params.get("code_challenge_method", "plain"),
            extras=flow.granted(params),
        ),
    )
    return RedirectResponse(with_query(redirect_uri, flow.allow_params(code, user_state)), 302)


def authorize_route(router: APIRouter, path: str, flow: Flow) -> None:
    """Mount the authorize endpoint at `path` for GET (page) and POST (decision)."""

    async def endpoint(request: Request) -> Response:
        return await authorize_endpoint(request, flow)

    endpoint.__name__ = f"{flow.platform}_authorize"
    router.add_api_route(path, endpoint, methods=["GET", "POST"], include_in_schema=False)


class CodeRefusedError(Exception):
    """Why a code cannot be exchanged; each platform words it its own way."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


UNKNOWN, USED, EXPIRED, OTHER_CLIENT, REDIRECT, VERIFIER_MISSING, VERIFIER_WRONG = (
    "unknown",
    "used",
    "expired",
    "other_client",
    "redirect_uri",
    "verifier_missing",
    "verifier_wrong",
)


def redeem(
    state: SandboxState,
    platform: str,
    value: object,
    client_id: str,
    redirect_uri: object = None,
    verifier: object = None,
    *,
    check_redirect: bool = True,
) -> AuthCode:
    """Spend a code: it must exist for this platform and client, be unused and unexpired, come
    with the redirect URI it was issued for (RFC 6749 §4.1.3) and, if it has a PKCE challenge, a
    matching verifier. Raises `CodeRefusedError`; a used code stays used."""
    code = oauth_state(state).codes.get(value) if isinstance(value, str) else None
    if code is None or code.platform != platform:
        raise CodeRefusedError(UNKNOWN)
    if code.client_id != client_id:
        raise CodeRefusedError(OTHER_CLIENT)
    if code.used:
        raise CodeRefusedError(USED)
    if state.now() >= code.expires_at:
        raise CodeRefusedError(EXPIRED)
    if check_redirect and redirect_uri != code.redirect_uri:
        raise CodeRefusedError(REDIRECT)
    if code.challenge is not None:
        if not verifier:
            raise CodeRefusedError(VERIFIER_MISSING)
        if not pkce_ok(code, verifier):
            raise CodeRefusedError(VERIFIER_WRONG)
    code.used = True
    return code


def basic_client(request: Request) -> tuple[str, str] | None:
    """Client credentials from `Authorization: Basic` (RFC 6749 §2.3.1), if sent."""
    scheme, _, value = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        decoded = base64.b64decode(value.strip()).decode()
    except (ValueError, UnicodeDecodeError):
        return None
    user, sep, password = decoded.partition(":")
    if not sep:
        return None
    return unquote_plus(user), unquote_plus(password)


class AppIn(BaseModel):
    client_secret: str = Field(min_length=1)
    name: str = "Audience Sync"
    redirect_uris: tuple[str, ...] = ()
    allow_loopback: bool = True


class AccountsIn(BaseModel):
    accounts: list[str]


def control_router() -> APIRouter:
    """`/_sandbox/oauth/...`: register apps, list them, set the user's ad accounts."""
    router = APIRouter(prefix="/_sandbox/oauth", tags=["sandbox controls"])

    def platform_of(value: str) -> str:
        if value not in PLATFORMS:
            raise HTTPException(422, f"platform must be one of {', '.join(PLATFORMS)}")
        return value

    @router.get("/apps")
    async def list_apps(request: Request) -> list[dict[str, Any]]:
        """Registered apps, secrets left out."""
        apps = oauth_state(sandbox_state(request)).apps
        return [
            {"platform": p, **app.model_dump(exclude={"client_secret"})}
            for (p, _), app in sorted(apps.items())
        ]

    @router.put("/apps/{platform}/{client_id}")
    async def put_app(
        request: Request, platform: str, client_id: str, app: AppIn
    ) -> dict[str, Any]:
        """Register (or replace) an app: its secret, name and redirect URIs."""
        registered = OAuthApp(client_id=client_id, **app.model_dump())
        oauth_state(sandbox_state(request)).apps[(platform_of(platform), client_id)] = registered
        return {"platform": platform, **registered.model_dump(exclude={"client_secret"})}

    @router.delete("/apps/{platform}/{client_id}")
    async def delete_app(request: Request, platform: str, client_id: str) -> dict[str, Any]:
        apps = oauth_state(sandbox_state(request)).apps
        if apps.pop((platform_of(platform), client_id), None) is None:
            raise HTTPException(404, f"no {platform} app {client_id}")
        return {"deleted": True}

    @router.put("/accounts/{platform}")
    async def put_accounts(request: Request, platform: str, body: AccountsIn) -> dict[str, Any]:
        """Set the ad accounts the sandbox's user reaches on `platform` (discovery reads)."""
        oauth_state(sandbox_state(request)).accounts[platform_of(platform)] = tuple(body.accounts)
        return {"platform": platform, "accounts": body.accounts}

    return router


def accounts_of(state: SandboxState, platform: str) -> tuple[str, ...]:
    return oauth_state(state).accounts.get(platform, ())


def reaches(state: SandboxState, platform: str, token: str, account: str) -> bool:
    """Whether a token's user reaches `account`: a token from an OAuth flow reaches the user's
    accounts; the fixed and `/_sandbox/tokens` ones stand for every account (as everywhere
    else in the sandbox)."""
    known = state.tokens.access(platform, token)
    if known is None or known.client_id is None:
        return True
    return account in accounts_of(state, platform)
