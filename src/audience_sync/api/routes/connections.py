"""Ad platform connections: the account and its credentials, encrypted at rest, never shown;
connecting by OAuth, the connection test and the ad accounts a token reaches."""

from __future__ import annotations

from functools import partial

from fastapi import APIRouter, Response, status
from starlette.concurrency import run_in_threadpool

from audience_sync.api.deps import Ctx, TenantId
from audience_sync.api.errors import field_error
from audience_sync.api.schemas import (
    SETTING_PLATFORMS,
    AdAccountOut,
    AuthorizeOut,
    ConnectionIn,
    ConnectionOut,
    ConnectionTestOut,
    Platform,
)
from audience_sync.connectors.access import AccessCheck
from audience_sync.services import connections, oauth

router = APIRouter(tags=["connections"])


def _out(connection: connections.Connection, test: AccessCheck | None = None) -> ConnectionOut:
    state = connections.token_state(connection)
    return ConnectionOut(
        platform=connection.platform,
        ad_account_id=connection.ad_account_id,
        status=state.status,
        status_message=state.status_message,
        token_expires_at=state.token_expires_at,
        expires_in_days=state.expires_in_days,
        base_url=connection.base_url,
        credentials=dict(connection.credentials_hint or {}),
        settings=dict(connection.settings or {}),
        scopes=connection.scopes.split() if connection.scopes else None,
        updated_at=connection.updated_at,
        test=_test_out(test) if test else None,
    )


def _test_out(check: AccessCheck) -> ConnectionTestOut:
    return ConnectionTestOut(
        ok=check.ok,
        reason=check.reason.value,
        message=check.message,
        account_name=check.account_name,
    )


@router.get("/connections", response_model=list[ConnectionOut])
def list_connections(ctx: Ctx, tenant_id: TenantId) -> list[ConnectionOut]:
    """The tenant's connections: status, scopes, token expiry, credential hints (never a
    secret), in the platforms' order."""
    return [_out(c) for c in connections.list_connections(ctx.service, tenant_id)]


@router.put("/connections/{platform}", response_model=ConnectionOut)
async def put_connection(
    platform: Platform, body: ConnectionIn, ctx: Ctx, tenant_id: TenantId
) -> ConnectionOut:
    """Connect or reconnect an account; the credentials replace the stored ones. The
    connection is saved, then tested: `test` says what the platform answered."""
    connections.check_base_url(ctx.service, body.base_url)  # answered first, as it always was
    credentials = body.credentials.plain()
    settings = body.settings.changes() if body.settings else None
    for key in settings or {}:
        owner = SETTING_PLATFORMS[key]
        if platform is not owner:
            raise field_error(
                "body.settings",
                "wrong_platform",
                f"{key} applies to {owner.value} connections only",
            )
    saved = await run_in_threadpool(
        partial(
            connections.put,
            ctx.service,
            tenant_id,
            platform,
            body.ad_account_id,
            credentials,
            base_url=body.base_url,
            settings=settings,
        )
    )
    test = await connections.test(ctx.service, tenant_id, platform)
    return _out(saved, test)


@router.get("/connections/{platform}", response_model=ConnectionOut)
def get_connection(platform: Platform, ctx: Ctx, tenant_id: TenantId) -> ConnectionOut:
    """Status, account and a masked hint of each credential (stored hints: nothing decrypted)."""
    return _out(connections.get(ctx.service, tenant_id, platform))


@router.delete(
    "/connections/{platform}", status_code=status.HTTP_204_NO_CONTENT, response_class=Response
)
async def delete_connection(platform: Platform, ctx: Ctx, tenant_id: TenantId) -> Response:
    """Revoke the token at the platform where it can (Google, Meta, TikTok), then forget the
    account and its credentials (audiences on it fail until it is reconnected)."""
    await connections.delete(ctx.service, tenant_id, platform)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post("/connections/{platform}/test", response_model=ConnectionTestOut)
async def test_connection(platform: Platform, ctx: Ctx, tenant_id: TenantId) -> ConnectionTestOut:
    """One cheap documented read on the connection's ad account: ok, or the reason."""
    return _test_out(await connections.test(ctx.service, tenant_id, platform))


@router.get("/connections/{platform}/ad-accounts", response_model=list[AdAccountOut])
async def list_ad_accounts(platform: Platform, ctx: Ctx, tenant_id: TenantId) -> list[AdAccountOut]:
    """The ad accounts the connection's token reaches (422 where the platform cannot list)."""
    found = await connections.ad_accounts(ctx.service, tenant_id, platform)
    return [AdAccountOut(id=account.id, name=account.name) for account in found]


@router.post("/connections/{platform}/authorize", response_model=AuthorizeOut)
def authorize(platform: Platform, ctx: Ctx, tenant_id: TenantId) -> AuthorizeOut:
    """Start connecting by OAuth: open `authorization_url` in a browser, sign in to the
    platform and allow; the platform sends the browser back to `/oauth/{platform}/callback`,
    which stores the tokens and returns to the dashboard's Connections page."""
    return AuthorizeOut(authorization_url=oauth.start(ctx.service, tenant_id, platform, None))
