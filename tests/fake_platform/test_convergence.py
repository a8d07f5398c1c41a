"""The sync engine converges on the fake platform: sync, change the segment, sync again, and
the emulator's audience holds exactly what the segment's members derive to (both databases)."""

from __future__ import annotations

import csv
import uuid
from datetime import UTC, datetime
from pathlib import Path

import httpx
from cryptography.fernet import Fernet
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from audience_sync.config import Settings
from audience_sync.connectors import BaseAudienceConnector, Credentials, connector_for
from audience_sync.crypto import CredentialCipher
from audience_sync.domain.models import SyncOperation, SyncStatus
from audience_sync.sources.importer import import_profiles
from audience_sync.sources.members import member_batches
from audience_sync.store.db import transaction
from audience_sync.store.repositories import (
    AudienceRepository,
    ConnectionRepository,
    SegmentRepository,
    TenantRepository,
)
from audience_sync.store.tables import AudienceSyncJob, PlatformAudience
from audience_sync.sync.jobs import Trigger, trigger_job
from audience_sync.sync.members import users_of
from audience_sync.sync.runner import SyncService, Target, run_job
from audience_sync.sync.service import connector_options
from audience_sync.testing import SANDBOX_URL, FakeTime, expected_identifiers, held_identifiers

from .emulator import FAMILY, PREFIX, create_app
from .spec import FakePlatform


class Scene:
    """A tenant, a segment, the emulator, and one audience on the fake platform."""

    def __init__(self, engine: Engine, factory: sessionmaker[Session], tmp: Path) -> None:
        self.engine, self.factory, self.tmp = engine, factory, tmp
        self.emulator = create_app()
        self.cipher = CredentialCipher([Fernet.generate_key()])
        self.time = FakeTime()
        clock = datetime(2026, 12, 5, tzinfo=UTC)
        self.service = SyncService(
            factory, engine, Settings(), self.cipher, self.connect, clock=lambda: clock
        )
        self.clock, self.files = clock, 0

    def connect(self, target: Target) -> BaseAudienceConnector:
        return connector_for(
            target.platform,
            self.service.settings,
            Credentials(**self.cipher.decrypt(target.sealed_credentials)),
            ad_account_id=target.ad_account_id,
            options=connector_options(target),
            base_url=target.base_url,
            transport=httpx.ASGITransport(app=self.emulator),
            sleep=self.time.sleep,
            clock=self.time.clock,
        )

    def load(self, rows: dict[int, str], phones: dict[int, str] | None = None) -> None:
        """Profiles `P{i}` with these emails (and phones) into the segment."""
        self.files += 1
        path = self.tmp / f"rows{self.files}.csv"
        with path.open("w", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(["profile_id", "email", "phone"])
            for i, email in rows.items():
                writer.writerow([f"P{i}", email, (phones or {}).get(i, "")])
        import_profiles(self.factory, path, tenant="default", segment="VIP")

    def audience(self) -> uuid.UUID:
        with transaction(self.factory) as session:
            self.tenant_id = TenantRepository(session).get("default").id
            self.segment_id = SegmentRepository(session, self.tenant_id).ensure("VIP").id
            credentials = {"access_token": "sandbox-token"}
            ConnectionRepository(session, self.tenant_id, self.cipher).put(
                FakePlatform.FAKE, "acct-1", credentials, base_url=SANDBOX_URL + PREFIX
            )
            audience = AudienceRepository(session, self.tenant_id).add(
                PlatformAudience(
                    segment_id=self.segment_id,
                    platform=FakePlatform.FAKE,
                    platform_audience_name="VIP",
                    ad_account_id="acct-1",
                )
            )
            return audience.id

    def leave(self, *profile_ids: str) -> None:
        with transaction(self.factory) as session:
            SegmentRepository(session, self.tenant_id).remove_members(self.segment_id, profile_ids)

    async def sync(self, audience_id: uuid.UUID, operation: SyncOperation) -> AudienceSyncJob:
        job, _ = trigger_job(
            self.factory, self.tenant_id, audience_id, Trigger(operation=operation), self.clock
        )
        done = await run_job(self.service, self.tenant_id, job.id)
        assert done is not None
        assert done.status is SyncStatus.COMPLETED, done.error_message
        return done

    def expected(self) -> dict[str, list[str]]:
        batches = member_batches(self.engine, self.tenant_id, self.segment_id)
        users = [u for profiles, ids in batches for u in users_of(profiles, ids)]
        return expected_identifiers(FAMILY, users)

    async def held(self, audience_id: uuid.UUID) -> dict[str, list[str]]:
        with transaction(self.factory) as session:
            audience = AudienceRepository(session, self.tenant_id).get(audience_id)
            remote = str(audience.platform_audience_id)
        transport = httpx.ASGITransport(app=self.emulator)
        async with httpx.AsyncClient(transport=transport, base_url=SANDBOX_URL) as client:
            return await held_identifiers(client, FAMILY, remote)


async def test_the_fake_platform_converges(
    engine: Engine, factory: sessionmaker[Session], tmp_path: Path
) -> None:
    scene = Scene(engine, factory, tmp_path)
    scene.load({i: f" Person.{i}@Example.COM" for i in range(60)}, {3: "(650) 555-0103"})
    audience = scene.audience()

    created = await scene.sync(audience, SyncOperation.CREATE)
    held = await scene.held(audience)
    assert held == scene.expected()
    assert len(held["email_sha256"]) == 60
    assert len(held["phone_sha256"]) == 1
    assert created.profiles_added == 60

    # The segment changes: 10 members leave, 5 join, one changes its email.
    scene.leave(*[f"P{i}" for i in range(10)])
    scene.load({**{i: f"person.{i}@example.com" for i in range(60, 65)}, 20: "new.20@example.com"})
    updated = await scene.sync(audience, SyncOperation.UPDATE)
    assert await scene.held(audience) == scene.expected()
    assert updated.profiles_removed > 0

    replaced = await scene.sync(audience, SyncOperation.REPLACE)
    assert replaced.status is SyncStatus.COMPLETED
    assert await scene.held(audience) == scene.expected()
