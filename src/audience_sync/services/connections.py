"""Ad platform connections: an account and its credentials, encrypted at rest, never shown."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from sqlalchemy import select

from audience_sync.connectors.registry import platform_spec, platforms
from audience_sync.domain.models import SyncPlatform
from audience_sync.exceptions import AudienceSyncError, FieldError
from audience_sync.store.db import transaction
from audience_sync.store.repositories import ConnectionRepository, TenantRepository
from audience_sync.store.tables import PlatformAudience, PlatformConnection
from audience_sync.sync.context import SyncService, Target
from audience_sync.sync.service import credentials_of
from audience_sync.sync.tokens import open_connector

__all__ = [
    "Check",
    "Connection",
    "TokenState",
    "check",
    "check_base_url",
    "connection_view",
    "delete",
    "get",
    "list_connections",
    "put",
    "token_state",
]

Connection = PlatformConnection
NO_AUDIENCE = uuid.UUID(int=0)  # a test's target with no audience: nothing is read by this id
BASE_URL_REFUSED = (
    "base_url is refused: platform addresses come from the service's settings. Leave it out "
    "(the operator may allow it with AUDIENCE_SYNC_ALLOW_CONNECTION_BASE_URL for a sandbox)"
)


def put(
    service: SyncService,
    tenant_id: int,
    platform: SyncPlatform,
    ad_account_id: str,
    credentials: dict[str, Any],
    *,
    base_url: str | None = None,
    settings: dict[str, Any] | None = None,
) -> PlatformConnection:
    """Connect or reconnect an account; the credentials replace the stored ones, `settings`
    change the stored ones key by key. A `base_url` only where the operator allows one: a
    connection pointed elsewhere would send its tokens, and the server's requests, there."""
    check_base_url(service, base_url)
    with transaction(service.factory) as session:
        repo = ConnectionRepository(session, tenant_id, service.cipher)
        return repo.put(platform, ad_account_id, credentials, base_url=base_url, settings=settings)


def check_base_url(service: SyncService, base_url: str | None) -> None:
    """`FieldError` for a per-connection address the operator does not allow."""
    if base_url and not service.settings.allow_connection_base_url:
        raise FieldError("base_url", "not_allowed", BASE_URL_REFUSED)


def get(service: SyncService, tenant_id: int, platform: SyncPlatform) -> PlatformConnection:
    """The connection (`NotFoundError` when the platform is not connected); nothing decrypted."""
    with transaction(service.factory) as session:
        return ConnectionRepository(session, tenant_id, service.cipher).get(platform)


def list_connections(service: SyncService, tenant_id: int) -> Sequence[PlatformConnection]:
    """The tenant's connections, in the platforms' order."""
    with transaction(service.factory) as session:
        repo = ConnectionRepository(session, tenant_id, service.cipher)
        found = (repo.find(spec.key) for spec in platforms())  # type: ignore[arg-type]
        return [connection for connection in found if connection is not None]


def delete(service: SyncService, tenant_id: int, platform: SyncPlatform) -> None:
    """Forget the account and its credentials (audiences on it fail until it is reconnected)."""
    with transaction(service.factory) as session:
        ConnectionRepository(session, tenant_id, service.cipher).delete(platform)


@dataclass(frozen=True, slots=True)
class TokenState:
    """A connection's status with its token's expiry taken into account. `expires_in_days`
    (whole days left, 0 once expired) only for a token nothing renews (Meta's long-lived one,
    or a pasted token with no refresh token): a token the service refreshes by itself shows
    its expiry but no countdown."""

    status: str
    status_message: str | None
    token_expires_at: datetime | None
    expires_in_days: int | None


def token_state(connection: PlatformConnection, now: datetime | None = None) -> TokenState:
    """The connection's status; an expired token nothing renews is `needs_reconnect` at once
    (its next sync would fail the same way)."""
    status, message = connection.status, connection.status_message
    expires = connection.token_expires_at
    spec = platform_spec(connection.platform)
    renews = spec.capabilities.refreshes_tokens and "refresh_token" in (
        connection.credentials_hint or {}
    )
    if expires is None or renews:
        return TokenState(status, message, expires, None)
    now = now or datetime.now(UTC)
    if expires <= now:
        if status != "needs_reconnect":
            name = spec.display_name
            status = "needs_reconnect"
            message = (
                f"{name} access token expired on {expires:%Y-%m-%d} and cannot be renewed — "
                f"reconnect the {name} account."
            )
        return TokenState(status, message, expires, 0)
    return TokenState(status, message, expires, (expires - now) // timedelta(days=1))


def connection_view(connection: PlatformConnection) -> dict[str, Any]:
    """What may be shown of a connection: a masked hint of each credential, never a secret."""
    state = token_state(connection)
    expires = state.token_expires_at
    return {
        "platform": connection.platform.value,
        "ad_account_id": connection.ad_account_id,
        "status": state.status,
        "status_message": state.status_message,
        "token_expires_at": expires.isoformat() if expires else None,
        "expires_in_days": state.expires_in_days,
        "base_url": connection.base_url,
        "credentials": dict(connection.credentials_hint or {}),
        "settings": dict(connection.settings or {}),
        "updated_at": connection.updated_at.isoformat() if connection.updated_at else None,
    }


@dataclass(frozen=True, slots=True)
class Check:
    """What a connection test found: `ok` (the platform answered an authenticated read),
    `failed` (`message` says why, in our words: never a token), or `unverified` (the stored
    credentials open, but there is nothing on the platform yet to read with them)."""

    outcome: Literal["ok", "failed", "unverified"]
    message: str


async def check(service: SyncService, tenant_id: int, platform: SyncPlatform) -> Check:
    """Test a connection with the cheapest call its connector has: the stored credentials must
    decrypt, then the platform is asked for one of the tenant's audiences on it
    (`get_audience_info`, one GET). The connectors have no account-level read, so with no
    audience created on the platform yet the token cannot be tried without creating something:
    that is said, not guessed (`unverified`). `NotFoundError` when the platform is not
    connected."""
    name = platform_spec(platform).display_name
    target = _probe_target(service, tenant_id, platform)
    try:
        credentials_of(service.cipher.decrypt(target.sealed_credentials))
    except AudienceSyncError as exc:
        return Check("failed", exc.message)
    if target.platform_audience_id is None:
        return Check(
            "unverified",
            f"The stored credentials are readable, but no audience exists on {name} yet, and "
            f"{name} offers no cheaper read to try the token on: the first sync will.",
        )
    try:
        async with open_connector(service, target) as connector:
            info = await connector.get_audience_info(target.platform_audience_id)
    except AudienceSyncError as exc:
        return Check("failed", f"{name} refused the test read: {exc.message}")
    size = info.get("size")
    shown = f"{size:,}" if isinstance(size, int) else "not reported yet"
    return Check(
        "ok",
        f"{name} answered with these credentials: audience {target.name!r}, size {shown}.",
    )


def _probe_target(service: SyncService, tenant_id: int, platform: SyncPlatform) -> Target:
    """The connection, with the tenant's newest audience created on the platform (if any)."""
    with transaction(service.factory) as session:
        connection = ConnectionRepository(session, tenant_id, service.cipher).get(platform)
        audience = session.scalars(
            select(PlatformAudience)
            .where(
                PlatformAudience.tenant_id == tenant_id,
                PlatformAudience.platform == platform,
                PlatformAudience.is_active.is_(True),
                PlatformAudience.platform_audience_id.is_not(None),
            )
            .order_by(PlatformAudience.created_at.desc())
            .limit(1)
        ).one_or_none()
        settings = dict(connection.settings or {})
        return Target(
            tenant_id=tenant_id,
            audience_id=audience.id if audience else NO_AUDIENCE,
            segment_id=audience.segment_id if audience else NO_AUDIENCE,
            platform=platform,
            platform_audience_id=audience.platform_audience_id if audience else None,
            name=audience.platform_audience_name if audience else "",
            ad_account_id=(audience.ad_account_id if audience else None)
            or connection.ad_account_id,
            description=None,
            config=dict(audience.config or {}) if audience else {},
            sealed_credentials=connection.credentials_encrypted,
            base_url=connection.base_url,
            region=TenantRepository(session).region_of(tenant_id),
            connection_settings=settings,
            credentials_version=connection.credentials_version or 0,
            token_expires_at=connection.token_expires_at,
        )
