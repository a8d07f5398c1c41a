"""Facebook Login, emulated: the Login dialog (`www.facebook.com/v{N}/dialog/oauth` →
`/meta/v{N}/dialog/oauth`), the token endpoint (`graph.facebook.com/v{N}/oauth/access_token`:
code exchange, then `fb_exchange_token` for the long-lived token), revocation
(`DELETE /me/permissions`) and the reads a connection needs (`/me`, `/me/permissions`,
`/me/adaccounts`, `/act_{id}`). Meta has no refresh-token grant. Sources: docs/connections.md
§Meta.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from starlette.responses import Response

from audience_sync.sandbox.dialect import SandboxError, authorize, json_response, sandbox_state
from audience_sync.sandbox.meta import DIALECT, check_version
from audience_sync.sandbox.meta_graph import graph_error, graph_params, graph_token, require
from audience_sync.sandbox.oauth import (
    EXPIRED,
    OTHER_CLIENT,
    REDIRECT,
    UNKNOWN,
    USED,
    VERIFIER_MISSING,
    VERIFIER_WRONG,
    CodeRefusedError,
    Flow,
    accounts_of,
    authorize_route,
    error_html,
    find_app,
    reaches,
    redeem,
    secret_ok,
)
from audience_sync.sandbox.settings import OAuthApp
from audience_sync.sandbox.state import AuthFailure, SandboxState

USER_ID = "10000000000000001"  # the sandbox's signed-in Facebook user
DEFAULT_SCOPES = ("ads_management",)
"""Permissions of the fixed tokens (the ones no Login flow issued)."""

# What the Login dialog shows for a request it cannot send back. [SEEN: the "URL Blocked" text
# is Facebook's well-known page; INFER: the invalid-app wording and the status codes]
_DIALOG_ERRORS = {
    "invalid_client": ("Invalid App ID", "The provided app ID does not look like a valid app ID."),
    "redirect_uri_mismatch": (
        "URL Blocked",
        "This redirect failed because the redirect URI is not whitelisted in the app's Client "
        "OAuth Settings. Make sure Client and Web OAuth Login are on and add all your app "
        "domains as Valid OAuth Redirect URIs.",
    ),
}


def _dialog_error(status: int, error: str, text: str) -> Response:
    heading, words = _DIALOG_ERRORS.get(error, ("Error", text))
    return error_html(status, heading, words)


FLOW = Flow(
    platform="meta",
    title="Log in with Facebook",
    response_type_required=False,  # `code` is the default [SEEN: manual-flow guide]
    pkce=True,  # the OIDC code flow with PKCE [SEEN: oidc-token guide, "in testing"]
    deny_params=lambda state: {
        "error_reason": "user_denied",
        "error": "access_denied",
        "error_description": "Permissions error.",
        "state": state,
    },
    error_page=_dialog_error,
)

# Graph's answers to a code it will not exchange. [SEEN: code 100 with subcodes 36007 (expired),
# 36008 (redirect_uri), 36009 (used) and their messages, in several public clients' tests and
# logs (docs/connections.md); INFER: the answers for another app's code and for PKCE]
_CODE_ERRORS: dict[str, tuple[str, int | None]] = {
    UNKNOWN: ("Invalid verification code format.", None),
    OTHER_CLIENT: ("Invalid verification code format.", None),
    USED: ("This authorization code has been used.", 36009),
    EXPIRED: ("This authorization code has expired.", 36007),
    REDIRECT: (
        "Error validating verification code. Please make sure your redirect_uri is identical "
        "to the one you used in the OAuth dialog request",
        36008,
    ),
    VERIFIER_MISSING: ("Missing code_verifier.", None),
    VERIFIER_WRONG: ("Invalid code_verifier.", None),
}


def _fail(message: str, code: int, subcode: int | None = None) -> SandboxError:
    return SandboxError(graph_error(message, code, subcode=subcode))


def _app(state: SandboxState, params: dict[str, Any]) -> OAuthApp:
    """The app named by `client_id` with its `client_secret` checked. [SEEN: codes 101 and 1 and
    their messages, a public Q&A recording Graph's answers (docs/connections.md)]"""
    client_id = str(require(params, "client_id"))
    secret = str(require(params, "client_secret"))
    app = find_app(state, "meta", client_id)
    if app is None:
        raise _fail("Error validating application. Invalid application ID.", 101)
    if not secret_ok(app, secret):
        raise _fail("Error validating client secret.", 1)
    return app


def _exchange_code(state: SandboxState, params: dict[str, Any]) -> Response:
    app = _app(state, params)
    try:
        code = redeem(
            state,
            "meta",
            str(require(params, "code")),
            app.client_id,
            str(params.get("redirect_uri", "")),
            params.get("code_verifier"),
        )
    except CodeRefusedError as problem:
        message, subcode = _CODE_ERRORS[problem.reason]
        raise _fail(message, 100, subcode) from problem
    ttl = state.settings.meta_short_token_ttl_seconds
    token = state.tokens.issue(
        "meta", ttl, state.now(), client_id=app.client_id, scopes=code.scopes or DEFAULT_SCOPES
    )
    return json_response({"access_token": token, "token_type": "bearer", "expires_in": int(ttl)})


def _long_lived(state: SandboxState, params: dict[str, Any]) -> Response:
    """`fb_exchange_token`: a valid short-lived token of the same app becomes a ~60-day one.
    The fixed tokens (no app) exchange with any app credentials, as before apps existed."""
    short = str(require(params, "fb_exchange_token"))
    known = state.tokens.access("meta", short)
    client_id: str | None = None
    scopes: tuple[str, ...] = DEFAULT_SCOPES
    if known is not None and known.client_id is None:
        require(params, "client_id")
        require(params, "client_secret")
    else:
        app = _app(state, params)
        authorize(state, DIALECT, short, "meta")  # unknown → 190, expired → 190/463
        assert known is not None
        if known.client_id != app.client_id:  # another app's token [INFER: answered as invalid]
            raise SandboxError(DIALECT.auth_error(AuthFailure.INVALID))
        client_id, scopes = app.client_id, known.scopes
    authorize(state, DIALECT, short, "meta")
    ttl = state.settings.meta_token_ttl_seconds
    token = state.tokens.issue("meta", ttl, state.now(), client_id=client_id, scopes=scopes)
    return json_response({"access_token": token, "token_type": "bearer", "expires_in": int(ttl)})


async def _token_call(request: Request, version: str) -> tuple[SandboxState, dict[str, Any], str]:
    """A Graph read by the token's user: version checked, token accepted."""
    state = sandbox_state(request)
    check_version(version)
    params = await graph_params(request)
    token = authorize(state, DIALECT, graph_token(request, params), "meta")
    return state, params, token


def _unsupported(object_id: str) -> SandboxError:
    """Graph's usual answer for an object the token cannot see. [SEEN]"""
    return _fail(
        f"Unsupported get request. Object with ID '{object_id}' does not exist, cannot be "
        "loaded due to missing permissions, or does not support this operation.",
        100,
        33,
    )


def _check_user(user_id: str) -> None:
    if user_id not in ("me", USER_ID):
        raise _unsupported(user_id)


def _ad_account(account_id: str) -> dict[str, Any]:
    """An ad account's fields. [SEEN: the field names, Marketing API Ad Account reference;
    INFER: the values]"""
    number = account_id.removeprefix("act_")
    return {
        "id": f"act_{number}",
        "account_id": number,
        "name": f"Sandbox ad account {number[-4:]}",
        "account_status": 1,
        "currency": "USD",
        "timezone_name": "America/Los_Angeles",
    }


def _fields(
    row: dict[str, Any], params: dict[str, Any], default: tuple[str, ...]
) -> dict[str, Any]:
    raw = params.get("fields")
    wanted = [f.strip() for f in str(raw).split(",")] if raw else list(default)
    return {"id": row["id"], **{f: row[f] for f in wanted if f in row}}


def build_router() -> APIRouter:
    router = APIRouter(prefix="/meta/{version}")
    authorize_route(router, "/dialog/oauth", FLOW)

    @router.api_route("/oauth/access_token", methods=["GET", "POST"])
    async def access_token(request: Request, version: str) -> Response:
        """The code exchange (`client_id`, `redirect_uri`, `client_secret`, `code`) or, with
        `grant_type=fb_exchange_token`, the long-lived token exchange."""
        state = sandbox_state(request)
        check_version(version)
        params = await graph_params(request)
        grant_type = params.get("grant_type")
        if grant_type == "fb_exchange_token":
            return _long_lived(state, params)
        if grant_type not in (None, "", "authorization_code"):
            raise _fail(
                f"Invalid grant_type: '{grant_type}'. Supported types: authorization_code, "
                "client_credentials, fb_exchange_token",
                100,
            )
        return _exchange_code(state, params)

    @router.get("/me")
    async def me(request: Request, version: str) -> Response:
        _, params, _ = await _token_call(request, version)
        return json_response(_fields({"id": USER_ID, "name": "Sandbox User"}, params, ("name",)))

    @router.get("/{user_id}/permissions")
    async def permissions(request: Request, version: str, user_id: str) -> Response:
        """The permissions the user granted the app. [SEEN: Graph `/{user-id}/permissions`]"""
        state, _, token = await _token_call(request, version)
        _check_user(user_id)
        known = state.tokens.access("meta", token)
        scopes = (known.scopes if known else ()) or DEFAULT_SCOPES
        return json_response({"data": [{"permission": p, "status": "granted"} for p in scopes]})

    @router.delete("/{user_id}/permissions")
    async def deauthorize(request: Request, version: str, user_id: str) -> Response:
        """The user removes the app: every token of the app stops working. [SEEN: Facebook
        Login permissions guide, "DELETE /{user-id}/permissions"] The fixed tokens stay."""
        state, _, token = await _token_call(request, version)
        _check_user(user_id)
        known = state.tokens.access("meta", token)
        if known is not None and known.client_id is not None:
            state.tokens.revoke_client("meta", known.client_id)
        return json_response({"success": True})

    @router.get("/me/adaccounts")
    async def ad_accounts(request: Request, version: str) -> Response:
        """The ad accounts the user can reach. [SEEN: Graph User `adaccounts` edge]"""
        state, params, _ = await _token_call(request, version)
        rows = [
            _fields(_ad_account(a), params, ("account_id",)) for a in accounts_of(state, "meta")
        ]
        cursors = {"before": "MAZDZD", "after": "MAZDZD"} if rows else {}
        return json_response({"data": rows, "paging": {"cursors": cursors}})

    @router.get("/act_{account_id}")
    async def ad_account(request: Request, version: str, account_id: str) -> Response:
        """An ad account's fields: the cheap read of a connection test."""
        state, params, token = await _token_call(request, version)
        if not reaches(state, "meta", token, f"act_{account_id}"):
            raise _unsupported(f"act_{account_id}")
        return json_response(_fields(_ad_account(account_id), params, ()))

    return router
