"""What a run is given: the engine's dependencies (`SyncService`) and its audience (`Target`)."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import httpx
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from audience_sync.config import Settings
from audience_sync.connectors import BaseAudienceConnector
from audience_sync.crypto import CredentialCipher
from audience_sync.domain.models import SyncPlatform

ConnectorFactory = Callable[["Target"], BaseAudienceConnector]


@dataclass(frozen=True, slots=True)
class Target:
    """Everything about the audience a run needs, read once (no ORM objects leave the session)."""

    tenant_id: int
    audience_id: uuid.UUID
    segment_id: uuid.UUID
    platform: SyncPlatform
    platform_audience_id: str | None
    name: str
    ad_account_id: str
    description: str | None
    config: dict[str, Any]
    sealed_credentials: str  # still encrypted: opened only where the connector is built
    base_url: str | None
    region: str
    # The connection's non-secret settings (Google `login_account_id`,
    # `customer_match_terms_accepted`), handed to the connector as `options["connection"]`.
    connection_settings: dict[str, Any] = field(default_factory=dict)
    # What the credentials were when read: a refresh writes back only over these
    # (`sync.tokens`), and refreshes first when the token expires soon.
    credentials_version: int = 0
    token_expires_at: datetime | None = None


@dataclass
class SyncService:
    """The engine's dependencies; `connect` builds a connector (tests point it at the sandbox)."""

    factory: sessionmaker[Session]
    engine: Engine
    settings: Settings
    cipher: CredentialCipher
    connect: ConnectorFactory
    clock: Callable[[], datetime] = field(default=lambda: datetime.now(UTC))
    # True once this process is shutting down: a run stops at its next checkpoint and hands
    # its job back (`jobs.release_job`). Read from the checkpoint's thread: thread-safe.
    stopping: Callable[[], bool] = field(default=lambda: False)
    # The transport of the calls made outside a connector (OAuth code exchanges): None, the
    # network; tests and the demo give the sandbox's (as `connect` does for connectors).
    http_transport: Callable[[], httpx.AsyncBaseTransport] | None = None
    # Where alert webhooks go (`services.alerts`): None is the network; a test passes an
    # `httpx.MockTransport` so that nothing leaves the process.
    webhook_transport: httpx.BaseTransport | None = None
