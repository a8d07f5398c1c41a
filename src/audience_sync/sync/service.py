"""Wire the sync engine from settings: the one place entry points get a `SyncService` from."""

from __future__ import annotations

import dataclasses

from sqlalchemy import Engine

from audience_sync.config import Settings, secret_keys
from audience_sync.connectors import BaseAudienceConnector, Credentials, connector_for
from audience_sync.crypto import CredentialCipher
from audience_sync.exceptions import ValidationError
from audience_sync.store.db import session_factory
from audience_sync.sync.context import SyncService, Target

CREDENTIAL_FIELDS = frozenset(f.name for f in dataclasses.fields(Credentials))


def open_credentials(cipher: CredentialCipher, target: Target) -> Credentials:
    """Decrypt a connection's credentials — only here, where its connector is built."""
    return credentials_of(cipher.decrypt(target.sealed_credentials))


def credentials_of(stored: dict[str, object]) -> Credentials:
    """A connection's stored credentials as the connectors take them (unknown keys ignored)."""
    if not stored.get("access_token"):
        raise ValidationError("The connection has no access token; set the connection again.")
    return Credentials(**{k: str(v) for k, v in stored.items() if k in CREDENTIAL_FIELDS and v})


def connector_options(target: Target) -> dict[str, object]:
    """The audience's platform options, with the tenant's phone region as the default region
    for numbers stored without an E.164 form (a profile's own country still wins), and the
    connection's settings under `connection` (never an audience's to override)."""
    return {
        "default_region": target.region,
        **target.config,
        "connection": dict(target.connection_settings),
    }


def build_service(settings: Settings, engine: Engine) -> SyncService:
    cipher = CredentialCipher(secret_keys(settings))

    def connect(target: Target) -> BaseAudienceConnector:
        return connector_for(
            target.platform,
            settings,
            open_credentials(cipher, target),
            ad_account_id=target.ad_account_id,
            options=connector_options(target),
            # A stored per-connection address only when the operator allows them (one set
            # before that rule, or by a tenant, must not redirect the server's requests).
            base_url=target.base_url if settings.allow_connection_base_url else None,
        )

    return SyncService(session_factory(engine), engine, settings, cipher, connect)
