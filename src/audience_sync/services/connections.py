"""Ad platform connections: an account and its credentials, encrypted at rest, never shown."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from audience_sync.connectors.access import AccessCheck, AdAccount, NotSupportedError, Reason
from audience_sync.connectors.base import BaseAudienceConnector
from audience_sync.connectors.http import RetryPolicy
from audience_sync.connectors.registry import platform_spec, platforms
from audience_sync.domain.models import SyncPlatform
from audience_sync.exceptions import AudienceSyncError, FieldError
from audience_sync.store.db import transaction
from audience_sync.store.repositories import ConnectionRepository, TenantRepository
from audience_sync.store.tables import PlatformConnection
from audience_sync.sync.context import SyncService, Target
from audience_sync.sync.service import credentials_of
from audience_sync.sync.tokens import open_connector

__all__ = [
    "Connection",
    "TokenState",
    "ad_accounts",
    "check_base_url",
    "choose_ad_account",
    "connection_view",
    "delete",
    "describe",
    "get",
    "list_connections",
    "put",
    "test",
    "token_state",
]

log = logging.getLogger(__name__)
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
    token_expires_at: datetime | None = None,
    scopes: str | None = None,
) -> PlatformConnection:
    """Connect or reconnect an account; the credentials replace the stored ones, `settings`
    change the stored ones key by key, the token's expiry and scopes are those given (None:
    not known, as for a pasted token). A `base_url` only where the operator allows one: a
    connection pointed elsewhere would send its tokens, and the server's requests, there."""
    check_base_url(service, base_url)
    with transaction(service.factory) as session:
        repo = ConnectionRepository(session, tenant_id, service.cipher)
        return repo.put(
            platform,
            ad_account_id,
            credentials,
            base_url=base_url,
            settings=settings,
            token_expires_at=token_expires_at,
            scopes=scopes,
        )


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


async def delete(service: SyncService, tenant_id: int, platform: SyncPlatform) -> bool:
    """Revoke the token at the platform where it can (Google `/revoke`, Meta `DELETE
    /me/permissions`, TikTok `oauth2/revoke_token/`), then forget the account and its
    credentials (audiences on it fail until it is reconnected). A refused or unreachable
    revocation is logged (never the token) and the connection is deleted anyway: True when
    the platform confirmed the revocation."""
    target, _ = _target(service, tenant_id, platform)
    revoked = False
    try:
        connector = _single_try(service.connect(target))
        async with connector:
            revoked = await connector.revoke_access()
    except AudienceSyncError as exc:
        log.warning(
            "revoking the token at the platform failed; the connection is deleted anyway",
            extra={"platform": platform.value, "error": type(exc).__name__},
        )
    with transaction(service.factory) as session:
        ConnectionRepository(session, tenant_id, service.cipher).delete(platform)
    return revoked


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
        "scopes": connection.scopes.split() if connection.scopes else None,
        "updated_at": connection.updated_at.isoformat() if connection.updated_at else None,
    }


async def test(service: SyncService, tenant_id: int, platform: SyncPlatform) -> AccessCheck:
    """Test a connection with one cheap documented read on its ad account (each connector's
    `test_access`: Meta `/act_{id}`, Google `listAccessibleCustomers`, TikTok
    `advertiser/info/`, Snapchat `/adaccounts/{id}`): ok, or the reason (bad token, expired,
    missing scope, unknown ad account) in plain words. A token refreshed on the way is
    stored. `NotFoundError` when the platform is not connected."""
    target, expires_at = _target(service, tenant_id, platform)
    name = platform_spec(platform).display_name
    try:
        credentials_of(service.cipher.decrypt(target.sealed_credentials))
    except AudienceSyncError as exc:
        return AccessCheck(Reason.BAD_TOKEN, exc.message)
    connector = _single_try(open_connector(service, target))
    async with connector:
        found = await connector.test_access()
    lapsed = expires_at is not None and expires_at <= service.clock()
    if found.reason is Reason.BAD_TOKEN and lapsed and not connector.http.tokens.refreshed:
        # Snapchat words an expired token as any refused one: the stored expiry tells.
        return AccessCheck(Reason.EXPIRED, f"{name}: the token expired; connect the account again.")
    return found


async def ad_accounts(
    service: SyncService, tenant_id: int, platform: SyncPlatform
) -> list[AdAccount]:
    """The ad accounts the connection's token reaches; `NotSupportedError` where the platform
    or the stored credentials cannot list them, or the platform refused to."""
    target, _ = _target(service, tenant_id, platform)
    try:
        return await accounts_of(service, target)
    except NotSupportedError:
        raise
    except AudienceSyncError as exc:
        # The platform's refusal is this answer's content, not a failure of ours (a 422 in
        # the API, as "cannot be listed"), said in our words with the platform's.
        name = platform_spec(platform).display_name
        raise NotSupportedError(f"{name} did not list the ad accounts: {exc.message}") from exc


async def accounts_of(service: SyncService, target: Target) -> list[AdAccount]:
    async with _single_try(open_connector(service, target)) as connector:
        return await connector.list_ad_accounts()


async def choose_ad_account(
    service: SyncService, tenant_id: int, platform: SyncPlatform, ad_account_id: str
) -> PlatformConnection:
    """Point the connection at one of the ad accounts its token reaches (the dashboard's
    picker); `FieldError` for an account not among them."""
    reached = {account.id for account in await ad_accounts(service, tenant_id, platform)}
    chosen = ad_account_id.strip().removeprefix("act_")
    if chosen not in reached:
        raise FieldError("ad_account_id", "unknown", "This token does not reach that ad account.")
    with transaction(service.factory) as session:
        connection = ConnectionRepository(session, tenant_id, service.cipher).get(platform)
        connection.ad_account_id = chosen
        session.flush()
        return connection


def describe(check: AccessCheck) -> str:
    """A saved connection's one line: connected, and what the test found."""
    if check.ok:
        return f"Connected; the test passed: {check.message}"
    if check.reason is Reason.NOT_SUPPORTED:
        return f"Connected (not tested: {check.message})"
    return f"Connected, but the test failed: {check.message}"


def _single_try(connector: BaseAudienceConnector) -> BaseAudienceConnector:
    """Account-level calls are tried once: a person waits for the answer, and "did not
    answer" is an answer (a sync's calls keep their retries)."""
    connector.http.retry = RetryPolicy(attempts=1)
    return connector


def connector_target(
    service: SyncService,
    tenant_id: int,
    platform: SyncPlatform,
    ad_account_id: str,
    sealed_credentials: str,
    base_url: str | None = None,
    settings: dict[str, Any] | None = None,
    credentials_version: int = 0,
    token_expires_at: datetime | None = None,
) -> Target:
    """What a connector is built from for account-level calls (no audience)."""
    with transaction(service.factory) as session:
        region = TenantRepository(session).region_of(tenant_id)
    return Target(
        tenant_id=tenant_id,
        audience_id=NO_AUDIENCE,
        segment_id=NO_AUDIENCE,
        platform=platform,
        platform_audience_id=None,
        name="",
        ad_account_id=ad_account_id,
        description=None,
        config={},
        sealed_credentials=sealed_credentials,
        base_url=base_url,
        region=region,
        connection_settings=dict(settings or {}),
        credentials_version=credentials_version,
        token_expires_at=token_expires_at,
    )


def _target(
    service: SyncService, tenant_id: int, platform: SyncPlatform
) -> tuple[Target, datetime | None]:
    """The connection as a connector's target, and its token's stored expiry."""
    with transaction(service.factory) as session:
        connection = ConnectionRepository(session, tenant_id, service.cipher).get(platform)
        found = (
            connection.ad_account_id,
            connection.credentials_encrypted,
            connection.base_url,
            dict(connection.settings or {}),
            connection.credentials_version or 0,
            connection.token_expires_at,
        )
    account, sealed, base_url, settings, version, expires_at = found
    target = connector_target(
        service, tenant_id, platform, account, sealed, base_url, settings, version, expires_at
    )
    return target, expires_at
