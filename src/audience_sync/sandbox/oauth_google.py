"""Google's OAuth 2.0 for web server apps, emulated: the consent page
(`accounts.google.com/o/oauth2/v2/auth` → `/google/o/oauth2/v2/auth`), the token endpoint
(`oauth2.googleapis.com/token` → `/google/token`), revocation (`/revoke` → `/google/revoke`) and
the Google Ads API's `customers:listAccessibleCustomers`. Sources: docs/connections.md §Google.
"""

from __future__ import annotations

from fastapi import APIRouter, Request
from starlette.responses import Response

from audience_sync.sandbox.dialect import json_response, sandbox_state
from audience_sync.sandbox.google_ads import open_call
from audience_sync.sandbox.google_common import ADS_SCOPE, DATA_MANAGER_SCOPE
from audience_sync.sandbox.oauth import (
    EXPIRED,
    OTHER_CLIENT,
    REDIRECT,
    UNKNOWN,
    USED,
    VERIFIER_MISSING,
    VERIFIER_WRONG,
    AuthCode,
    Flow,
    accounts_of,
    authorize_route,
    error_html,
    oauth_state,
)
from audience_sync.sandbox.oauth_form import FormTokenEndpoint, oauth_error
from audience_sync.sandbox.settings import SANDBOX_REFRESH_TOKEN, SANDBOX_TOKEN
from audience_sync.sandbox.state import SandboxState


def _granted(params: dict[str, str]) -> dict[str, str]:
    return {"access_type": params.get("access_type", "online"), "prompt": params.get("prompt", "")}


def _gives_refresh(state: SandboxState, code: AuthCode) -> bool:
    """A refresh token comes with `access_type=offline`, and only on the app's first consent
    unless `prompt=consent` asks again [SEEN: Google's web-server guide, "Refresh tokens"]."""
    if code.extras.get("access_type") != "offline":
        return False
    consented = oauth_state(state).consented
    first = ("google", code.client_id) not in consented
    consented.add(("google", code.client_id))
    return first or "consent" in code.extras.get("prompt", "").split()


FLOW = Flow(
    platform="google",
    title="Sign in with Google",
    scope_required=True,
    pkce=True,
    granted=_granted,
    # Google shows its own page, e.g. "Error 400: redirect_uri_mismatch". [SEEN]
    error_page=lambda status, error, text: error_html(status, f"Error {status}: {error}", text),
)

TOKEN = FormTokenEndpoint(
    platform="google",
    ttl=lambda state: state.settings.google_token_ttl_seconds,
    default_scopes=(DATA_MANAGER_SCOPE, ADS_SCOPE),
    code_errors={
        UNKNOWN: ("invalid_grant", "Malformed auth code."),  # [INFER wording]
        OTHER_CLIENT: ("invalid_grant", "Bad Request"),  # [INFER]
        USED: ("invalid_grant", "Bad Request"),
        EXPIRED: ("invalid_grant", "Bad Request"),
        REDIRECT: ("redirect_uri_mismatch", "Bad Request"),
        VERIFIER_MISSING: ("invalid_grant", "Missing code verifier."),  # [INFER wording]
        VERIFIER_WRONG: ("invalid_grant", "Invalid code verifier."),
    },
    unknown_client="The OAuth client was not found.",
    bad_secret="Unauthorized",  # noqa: S106 - an error description, not a secret
    bad_refresh="Token has been expired or revoked.",
    refresh_in_refresh_answer=False,
    gives_refresh=_gives_refresh,
)


def build_router() -> APIRouter:
    router = APIRouter()
    authorize_route(router, "/google/o/oauth2/v2/auth", FLOW)
    router.add_api_route("/google/token", TOKEN.__call__, methods=["POST"], name="google_token")

    @router.post("/google/revoke")
    async def revoke(request: Request) -> Response:
        """`token` (access or refresh) in the query or the form. Revoking a refresh token revokes
        the access tokens minted from it too. [SEEN: web-server guide, "Revoking a token"]"""
        state = sandbox_state(request)
        form = await request.form()
        token = request.query_params.get("token") or form.get("token")
        if not isinstance(token, str) or not token:
            return oauth_error("invalid_request", "Missing required parameter: token")
        if token in (SANDBOX_TOKEN, SANDBOX_REFRESH_TOKEN):
            return json_response({})  # the fixed tokens stay valid: the suite relies on them
        if not state.tokens.revoke("google", token):
            return oauth_error("invalid_token", "Token expired or revoked")  # [INFER wording]
        return json_response({})

    @router.get("/googleads/{version}/customers:listAccessibleCustomers")
    async def accessible_customers(request: Request, version: str) -> Response:
        """The customers the token's user can reach directly (Google Ads API
        `CustomerService.ListAccessibleCustomers`) [SEEN: REST reference]."""
        state = open_call(request, version)
        names = [f"customers/{c}" for c in accounts_of(state, "google")]
        return json_response({"resourceNames": names})

    return router
