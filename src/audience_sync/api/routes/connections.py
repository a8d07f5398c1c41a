"""Ad platform connections: the account and its credentials, encrypted at rest, never shown."""

from __future__ import annotations

from fastapi import APIRouter, Response, status

from audience_sync.api.deps import Ctx, TenantId
from audience_sync.api.errors import field_error
from audience_sync.api.schemas import SETTING_PLATFORMS, ConnectionIn, ConnectionOut, Platform
from audience_sync.services import connections

router = APIRouter(tags=["connections"])


def _out(connection: connections.Connection) -> ConnectionOut:
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
        updated_at=connection.updated_at,
    )


@router.put("/connections/{platform}", response_model=ConnectionOut)
def put_connection(
    platform: Platform, body: ConnectionIn, ctx: Ctx, tenant_id: TenantId
) -> ConnectionOut:
    """Connect or reconnect an account; the credentials replace the stored ones."""
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
    connection = connections.put(
        ctx.service,
        tenant_id,
        platform,
        body.ad_account_id,
        credentials,
        base_url=body.base_url,
        settings=settings,
    )
    return _out(connection)


@router.get("/connections/{platform}", response_model=ConnectionOut)
def get_connection(platform: Platform, ctx: Ctx, tenant_id: TenantId) -> ConnectionOut:
    """Status, account and a masked hint of each credential (stored hints: nothing decrypted)."""
    return _out(connections.get(ctx.service, tenant_id, platform))


@router.delete(
    "/connections/{platform}", status_code=status.HTTP_204_NO_CONTENT, response_class=Response
)
def delete_connection(platform: Platform, ctx: Ctx, tenant_id: TenantId) -> Response:
    """Forget the account and its credentials (audiences on it fail until it is reconnected)."""
    connections.delete(ctx.service, tenant_id, platform)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
