"""Snapchat's OAuth, emulated: the consent page (`accounts.snapchat.com/login/oauth2/authorize`
→ `/snapchat/login/oauth2/authorize`), the token endpoint (`/login/oauth2/access_token` →
`/snapchat/login/oauth2/access_token`: code exchange and refresh), and the discovery reads of the
Marketing API (`/v1/me`, `/v1/me/organizations`, `/v1/organizations/{id}/adaccounts`,
`/v1/adaccounts/{id}`). Snap documents no revocation endpoint for the Marketing API: none here.
Sources: docs/connections.md §Snapchat.
"""

from __future__ import annotations

import secrets
from typing import Any

from fastapi import APIRouter, Request
from starlette.responses import Response

from audience_sync.sandbox.dialect import bearer, json_response
from audience_sync.sandbox.oauth import (
    EXPIRED,
    OTHER_CLIENT,
    REDIRECT,
    UNKNOWN,
    USED,
    VERIFIER_MISSING,
    VERIFIER_WRONG,
    Flow,
    accounts_of,
    authorize_route,
    reaches,
)
from audience_sync.sandbox.oauth_form import FormTokenEndpoint
from audience_sync.sandbox.snapchat import E_NOT_FOUND, open_call, snap_error
from audience_sync.sandbox.state import SandboxState

SCOPE = "snapchat-marketing-api"
ORGANIZATION_ID = "5b1c0a6e-0000-4000-8000-00000000000a"  # the sandbox user's organization
USER_ID = "5b1c0a6e-0000-4000-8000-0000000000ff"

FLOW = Flow(platform="snapchat", title="Snapchat: authorize this app")

# Snap documents the request and the success answer, not its refusals: the RFC 6749 §5.2 codes
# with Snap-sounding descriptions. [INFER]
_BAD_CODE = ("invalid_grant", "Invalid authorization code")
TOKEN = FormTokenEndpoint(
    platform="snapchat",
    ttl=lambda state: state.settings.snapchat_token_ttl_seconds,
    default_scopes=(SCOPE,),
    code_errors={
        UNKNOWN: _BAD_CODE,
        OTHER_CLIENT: _BAD_CODE,
        USED: _BAD_CODE,
        EXPIRED: _BAD_CODE,
        REDIRECT: ("invalid_grant", "Invalid redirect_uri"),
        VERIFIER_MISSING: _BAD_CODE,  # no PKCE on this flow: never raised
        VERIFIER_WRONG: _BAD_CODE,
    },
    unknown_client="Invalid client",
    bad_secret="Invalid client",  # noqa: S106 - an error description, not a secret
    bad_refresh="Invalid refresh token",
    refresh_in_refresh_answer=True,
)


def _envelope(**body: Any) -> Response:
    return json_response({"request_status": "SUCCESS", "request_id": secrets.token_hex(12), **body})


def _ad_account(account_id: str) -> dict[str, Any]:
    """An ad account as Snap describes one; the values are the sandbox's. [INFER values]"""
    return {
        "id": account_id,
        "name": f"Sandbox ad account {account_id[-4:]}",
        "type": "PARTNER",
        "status": "ACTIVE",
        "organization_id": ORGANIZATION_ID,
        "currency": "USD",
        "timezone": "America/Los_Angeles",
    }


def _organization(state: SandboxState, with_accounts: bool) -> dict[str, Any]:
    organization: dict[str, Any] = {
        "id": ORGANIZATION_ID,
        "name": "Sandbox organization",
        "type": "ENTERPRISE",
        "state": "ACTIVE",
    }
    if with_accounts:
        organization["ad_accounts"] = [_ad_account(a) for a in accounts_of(state, "snapchat")]
    return organization


def build_router() -> APIRouter:
    router = APIRouter(prefix="/snapchat")
    authorize_route(router, "/login/oauth2/authorize", FLOW)
    router.add_api_route(
        "/login/oauth2/access_token", TOKEN.__call__, methods=["POST"], name="snapchat_token"
    )

    @router.get("/v1/me")
    async def me(request: Request) -> Response:
        """Who the token belongs to: the cheap read of a connection test."""
        open_call(request)
        user = {
            "id": USER_ID,
            "display_name": "Sandbox User",
            "email": "sandbox.user@example.com",
            "organization_id": ORGANIZATION_ID,
        }
        return _envelope(me=user)

    @router.get("/v1/me/organizations")
    async def organizations(request: Request, with_ad_accounts: bool = False) -> Response:
        """The organizations the user belongs to, with their ad accounts when
        `with_ad_accounts=true`."""
        state = open_call(request)
        organization = _organization(state, with_ad_accounts)
        return _envelope(
            organizations=[{"sub_request_status": "SUCCESS", "organization": organization}]
        )

    @router.get("/v1/organizations/{organization_id}/adaccounts")
    async def ad_accounts(request: Request, organization_id: str) -> Response:
        state = open_call(request)
        if organization_id != ORGANIZATION_ID:
            return snap_error(404, E_NOT_FOUND, f"Organization {organization_id} not found")
        rows = [
            {"sub_request_status": "SUCCESS", "adaccount": _ad_account(a)}
            for a in accounts_of(state, "snapchat")
        ]
        return _envelope(adaccounts=rows)

    @router.get("/v1/adaccounts/{ad_account_id}")
    async def ad_account(request: Request, ad_account_id: str) -> Response:
        state = open_call(request)
        if not reaches(state, "snapchat", bearer(request) or "", ad_account_id):
            return snap_error(404, E_NOT_FOUND, f"Ad account {ad_account_id} not found")
        return _envelope(
            adaccounts=[{"sub_request_status": "SUCCESS", "adaccount": _ad_account(ad_account_id)}]
        )

    return router
