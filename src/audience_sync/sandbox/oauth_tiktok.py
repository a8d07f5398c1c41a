"""TikTok API for Business advertiser authorization, emulated: the authorization page
(`business-api.tiktok.com/portal/auth` → `/tiktok/portal/auth`), the `auth_code` exchange
(`/open_api/v1.3/oauth2/access_token/`), revocation (`oauth2/revoke_token/`), and the reads a
connection needs (`oauth2/advertiser/get/`, `advertiser/info/`). Advertiser tokens do not expire
and have no refresh grant. Sources: docs/connections.md §TikTok.
"""

from __future__ import annotations

import json
from typing import Any

from fastapi import APIRouter, Request
from starlette.responses import Response

from audience_sync.sandbox.dialect import (
    SandboxError,
    authorize,
    json_object,
    sandbox_state,
    throttle,
)
from audience_sync.sandbox.oauth import (
    EXPIRED,
    USED,
    CodeRefusedError,
    Flow,
    accounts_of,
    authorize_route,
    find_app,
    reaches,
    redeem,
    secret_ok,
)
from audience_sync.sandbox.settings import OAuthApp
from audience_sync.sandbox.state import AuthFailure, SandboxState
from audience_sync.sandbox.tiktok_common import (
    DIALECT,
    NO_PERMISSION,
    OK,
    PARAM_ERROR,
    envelope,
    error,
    open_call,
)

# The permission scopes an app is granted, as the ids the exchange answers with. The sandbox
# grants one, Audience Management. [INFER: the id]
SCOPES = [4]

FLOW = Flow(
    platform="tiktok",
    title="TikTok for Business: authorize this app",
    client_param="app_id",
    response_type_required=False,
    # TikTok sends `auth_code` [SEEN: docs/platforms/tiktok.md §3.2]; `code` beside it, with the
    # same value, is what peers' callbacks also read. [INFER]
    allow_params=lambda code, state: {"auth_code": code, "code": code, "state": state},
)

# The exchange's refusals: 40002 for a bad auth_code, 40001 for a bad app or secret. [INFER:
# codes and messages; TikTok documents the single use and the hour, not the answers]
_CODE_MESSAGES = {USED: "auth_code has been used.", EXPIRED: "auth_code has expired."}


def _app(state: SandboxState, app_id: Any, secret: Any) -> OAuthApp:
    app = find_app(state, "tiktok", app_id)
    if app is None or not secret_ok(app, secret):
        raise error(NO_PERMISSION, "app_id or secret is invalid.")
    return app


def _required(body: dict[str, Any], *names: str) -> None:
    for name in names:
        if not body.get(name):
            raise error(PARAM_ERROR, f"{name}: Missing data for required field.")


def _advertiser_ids(raw: str | None) -> list[str]:
    """`advertiser_ids` is a JSON array in the query string (TikTok's GET convention)."""
    try:
        value = json.loads(raw or "")
    except ValueError:
        value = None
    if not isinstance(value, list) or not value:
        raise error(PARAM_ERROR, "advertiser_ids: Missing data for required field.")
    return [str(v) for v in value]


def build_router() -> APIRouter:
    router = APIRouter(prefix="/tiktok")
    authorize_route(router, "/portal/auth", FLOW)

    @router.post("/open_api/v1.3/oauth2/access_token/")
    async def access_token(request: Request) -> Response:
        """JSON `app_id`, `secret`, `auth_code` → a long-term token and the advertisers that
        authorized the app. The auth_code lasts an hour and works once. [SEEN]"""
        state = sandbox_state(request)
        body = await json_object(request, DIALECT)
        _required(body, "app_id", "secret", "auth_code")
        app = _app(state, body["app_id"], body["secret"])
        try:
            redeem(state, "tiktok", str(body["auth_code"]), app.client_id, check_redirect=False)
        except CodeRefusedError as problem:
            message = _CODE_MESSAGES.get(problem.reason, "auth_code is invalid.")
            raise error(PARAM_ERROR, message) from problem
        token = state.tokens.issue("tiktok", None, state.now(), client_id=app.client_id)
        data = {
            "access_token": token,
            "advertiser_ids": list(accounts_of(state, "tiktok")),
            "scope": SCOPES,
        }
        return envelope(OK, "OK", data)

    @router.post("/open_api/v1.3/oauth2/revoke_token/")
    async def revoke_token(request: Request) -> Response:
        """JSON `app_id`, `secret`, `access_token`: the token stops working (40105 after).
        [SEEN: the endpoint; INFER: the body and answer]"""
        state = sandbox_state(request)
        body = await json_object(request, DIALECT)
        _required(body, "app_id", "secret", "access_token")
        app = _app(state, body["app_id"], body["secret"])
        token = str(body["access_token"])
        known = state.tokens.access("tiktok", token)
        if known is None or known.client_id not in (None, app.client_id):
            raise SandboxError(DIALECT.auth_error(AuthFailure.INVALID))
        state.tokens.revoke("tiktok", token)
        return envelope(OK, "OK")

    @router.get("/open_api/v1.3/oauth2/advertiser/get/")
    async def advertiser_get(request: Request) -> Response:
        """The advertisers that authorized the app: query `app_id`, `secret`, header
        `Access-Token` [SEEN: tiktok-business-api-sdk `oauth2_advertiser_get`]."""
        state = sandbox_state(request)
        token = authorize(state, DIALECT, request.headers.get("access-token"), "tiktok")
        throttle(state, DIALECT, token)
        params = request.query_params
        _required(dict(params), "app_id", "secret")
        _app(state, params["app_id"], params["secret"])
        rows = [
            {"advertiser_id": a, "advertiser_name": f"Sandbox advertiser {a[-4:]}"}
            for a in accounts_of(state, "tiktok")
        ]
        return envelope(OK, "OK", {"list": rows})

    @router.get("/open_api/v1.3/advertiser/info/")
    async def advertiser_info(request: Request) -> Response:
        """Advertiser details (`advertiser_ids` JSON array): the cheap read of a connection
        test. [SEEN: the endpoint, docs/platforms/tiktok.md; INFER: the values]"""
        state = open_call(request)
        token = request.headers.get("access-token") or ""
        ids = _advertiser_ids(request.query_params.get("advertiser_ids"))
        for advertiser in ids:
            if not reaches(state, "tiktok", token, advertiser):
                raise error(NO_PERMISSION, f"No permission to operate advertiser {advertiser}.")
        rows = [
            {
                "advertiser_id": a,
                "name": f"Sandbox advertiser {a[-4:]}",
                "status": "STATUS_ENABLE",
                "currency": "USD",
                "timezone": "America/Los_Angeles",
            }
            for a in ids
        ]
        return envelope(OK, "OK", {"list": rows})

    return router
