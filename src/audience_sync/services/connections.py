"""Ad platform connections: an account and its credentials, encrypted at rest, never shown."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from audience_sync.connectors.registry import platforms
from audience_sync.domain.models import SyncPlatform
from audience_sync.exceptions import FieldError
from audience_sync.store.db import transaction
from audience_sync.store.repositories import ConnectionRepository
from audience_sync.store.tables import PlatformConnection
from audience_sync.sync.context import SyncService

__all__ = [
    "Connection",
    "check_base_url",
    "connection_view",
    "delete",
    "get",
    "list_connections",
    "put",
]

Connection = PlatformConnection
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


def connection_view(connection: PlatformConnection) -> dict[str, Any]:
    """What may be shown of a connection: a masked hint of each credential, never a secret."""
    return {
        "platform": connection.platform.value,
        "ad_account_id": connection.ad_account_id,
        "status": connection.status,
        "status_message": connection.status_message,
        "base_url": connection.base_url,
        "credentials": dict(connection.credentials_hint or {}),
        "settings": dict(connection.settings or {}),
        "updated_at": connection.updated_at.isoformat() if connection.updated_at else None,
    }
