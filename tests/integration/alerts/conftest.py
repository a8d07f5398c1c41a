"""Fixtures for alert tests: a tenant with an audience, a clock the test moves, a real HTTP
receiver on a free port, and the services wired to them."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from cryptography.fernet import Fernet
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from audience_sync.config import Settings
from audience_sync.crypto import CredentialCipher
from audience_sync.domain.models import SyncOperation, SyncPlatform, SyncStatus, TriggeredBy
from audience_sync.services import alerts
from audience_sync.store.db import transaction
from audience_sync.store.repositories import (
    AudienceRepository,
    ConnectionRepository,
    SegmentRepository,
    TenantRepository,
)
from audience_sync.store.tables import AudienceSyncJob, PlatformAudience
from audience_sync.sync.context import SyncService, Target
from audience_sync.testing.receiver import Receiver, receiving

__all__ = ["Receiver"]

SECRET = "whsec-0123456789abcdef"
START = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with receiving() as found:
        yield found


class Clock:
    def __init__(self) -> None:
        self.now = START

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)


@dataclass
class Env:
    service: SyncService
    clock: Clock
    tenant_id: int
    audience_id: uuid.UUID

    def job(self, status: SyncStatus, **fields: Any) -> uuid.UUID:
        """A finished job of the audience, as the engine leaves one, ending now."""
        self.clock.advance(minutes=1)
        with transaction(self.service.factory) as session:
            job = AudienceSyncJob(
                tenant_id=self.tenant_id,
                platform_audience_id=self.audience_id,
                operation=SyncOperation.UPDATE,
                status=status,
                triggered_by=TriggeredBy.SCHEDULED,
                started_at=self.clock.now,
                completed_at=self.clock.now,
                attempt=1,
                profiles_failed=fields.pop("failed", 0),
                match_rate=fields.pop("match_rate", None),
                error_message=fields.pop("error", None),
                details=fields,
            )
            session.add(job)
            session.flush()
            return job.id

    def ended(self, status: SyncStatus, **fields: Any) -> uuid.UUID:
        """A job ends and the run boundary's hook runs."""
        job_id = self.job(status, **fields)
        alerts.after_job(self.service, self.tenant_id, job_id)
        return job_id

    def webhook(self, url: str) -> int:
        channel = alerts.NewChannel(kind="webhook", url=url, secret=SECRET)
        return alerts.create_channel(self.service, self.tenant_id, channel).id

    def events(self, **kw: Any) -> list[dict[str, Any]]:
        return alerts.events(self.service, self.tenant_id, **kw)


def make_service(
    engine: Engine, factory: sessionmaker[Session], clock: Clock, **settings: Any
) -> SyncService:
    def connect(target: Target) -> Any:
        raise AssertionError("alert tests run no sync")

    config = Settings(environment="test", alert_allow_private_webhooks=True, **settings)
    cipher = CredentialCipher([Fernet.generate_key()])
    return SyncService(factory, engine, config, cipher, connect, clock=clock)


def make_audience(service: SyncService, slug: str = "default") -> tuple[int, uuid.UUID]:
    with transaction(service.factory) as session:
        tenant = TenantRepository(session).create(slug)
        segment = SegmentRepository(session, tenant.id).ensure("VIP")
        ConnectionRepository(session, tenant.id, service.cipher).put(
            SyncPlatform.META, "1234567890", {"access_token": "sandbox-token"}
        )
        audience = AudienceRepository(session, tenant.id).add(
            PlatformAudience(
                segment_id=segment.id,
                platform=SyncPlatform.META,
                platform_audience_name="VIP buyers",
                platform_audience_id="6000000000001",
                ad_account_id="1234567890",
                sync_interval_hours=24,
                created_at=service.clock(),
            )
        )
        return tenant.id, audience.id


@pytest.fixture
def env(engine: Engine, factory: sessionmaker[Session]) -> Env:
    clock = Clock()
    service = make_service(engine, factory, clock)
    tenant_id, audience_id = make_audience(service)
    return Env(service, clock, tenant_id, audience_id)
