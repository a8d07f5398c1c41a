"""A world for sync tests: a tenant, a segment in the CDP, an in-process sandbox, the engine."""

from __future__ import annotations

import csv
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
from cryptography.fernet import Fernet
from fastapi import FastAPI
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from audience_sync.config import Settings
from audience_sync.connectors import BaseAudienceConnector, Credentials, RateLimiters, connector_for
from audience_sync.crypto import CredentialCipher
from audience_sync.domain.models import SyncOperation, SyncPlatform
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
from audience_sync.testing.support import (
    PREFIXES,
    SANDBOX_URL,
    FakeTime,
    expected_identifiers,
    held_identifiers,
)

COLUMNS = ["profile_id", "email", "phone", "mobile_id", "mobile_id_kind", "first_name",
           "last_name", "country", "zip"]  # fmt: skip
GOOGLE_SETTINGS = {"customer_match_terms_accepted": True}
PLATFORMS = list(SyncPlatform)  # the built-in platforms, which the sandbox emulates


def row(i: int, email: str | None = None) -> dict[str, str]:
    named = i % 5 == 2
    return {
        "profile_id": f"P{i}",
        "email": email or f"  Person.{i}@Example.COM ",
        "phone": f"(650) 555-{i:04d}" if i % 3 == 0 else "",
        "mobile_id": f"{i:08X}-AAAA-4BBB-8CCC-{i:012X}" if i % 4 == 1 else "",
        "mobile_id_kind": ("idfa" if i % 8 == 1 else "gaid") if i % 4 == 1 else "",
        "first_name": "Mary-Jane" if named else "",
        "last_name": f"O'Brien {i % 7}" if named else "",
        "country": "US" if named else "",
        "zip": "94045-1234" if named else "",
    }


def write(path: Path, rows: list[dict[str, str]]) -> Path:
    with path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=COLUMNS)
        writer.writeheader()
        writer.writerows(rows)
    return path


class World:
    """A tenant with one segment, a sandbox, and one audience on the platform under test."""

    def __init__(
        self, engine: Engine, factory: sessionmaker[Session], sandbox: FastAPI, tmp: Path
    ) -> None:
        self.engine, self.factory, self.sandbox, self.tmp = engine, factory, sandbox, tmp
        self.cipher = CredentialCipher([Fernet.generate_key()])
        self.time = FakeTime()
        self.clock = datetime(2026, 11, 28, tzinfo=UTC)
        self.service = SyncService(
            factory, engine, Settings(), self.cipher, self.connect, clock=lambda: self.clock
        )
        self.files = 0

    def connect(self, target: Target) -> BaseAudienceConnector:
        return connector_for(
            target.platform,
            self.service.settings,
            Credentials(**self.cipher.decrypt(target.sealed_credentials)),
            ad_account_id=target.ad_account_id,
            options=connector_options(target),
            base_url=target.base_url,
            transport=httpx.ASGITransport(app=self.sandbox),
            sleep=self.time.sleep,
            clock=self.time.clock,
            limiters=RateLimiters(),
            poll_interval=0.5,
            poll_timeout=30,
            timeout=2.0,  # real seconds: a `timeout` fault holds its answer longer than this
        )

    def load(self, rows: list[dict[str, str]]) -> None:
        self.files += 1
        path = write(self.tmp / f"rows{self.files}.csv", rows)
        import_profiles(self.factory, path, tenant="default", segment="VIP")

    def audience(self, platform: SyncPlatform, **fields: Any) -> uuid.UUID:
        with transaction(self.factory) as session:
            tenant = TenantRepository(session).get("default")
            self.tenant_id = tenant.id
            segment = SegmentRepository(session, tenant.id).ensure("VIP")
            self.segment_id = segment.id
            ConnectionRepository(session, tenant.id, self.cipher).put(
                platform,
                "1234567890",
                {
                    "access_token": "sandbox-token",
                    "refresh_token": "sandbox-refresh-token",
                    "client_id": "c",
                    "client_secret": "s",
                    "developer_token": "d",
                },
                base_url=SANDBOX_URL + PREFIXES[platform.value],
                settings=GOOGLE_SETTINGS if platform is SyncPlatform.GOOGLE else None,
            )
            audience = AudienceRepository(session, tenant.id).add(
                PlatformAudience(
                    segment_id=segment.id,
                    platform=platform,
                    platform_audience_name="VIP",
                    ad_account_id="1234567890",
                    **fields,
                )
            )
            return audience.id

    def leave(self, *profile_ids: str) -> None:
        with transaction(self.factory) as session:
            SegmentRepository(session, self.tenant_id).remove_members(self.segment_id, profile_ids)

    async def sync(
        self, audience_id: uuid.UUID, operation: SyncOperation = SyncOperation.UPDATE, **kw: Any
    ) -> AudienceSyncJob:
        job, _ = trigger_job(
            self.factory,
            self.tenant_id,
            audience_id,
            Trigger(operation=operation, **kw),
            self.clock,
        )
        done = await run_job(self.service, self.tenant_id, job.id)
        assert done is not None
        return done

    def expected(self, platform: SyncPlatform) -> dict[str, list[str]]:
        users = [
            user
            for profiles, identifiers in member_batches(
                self.engine, self.tenant_id, self.segment_id
            )
            for user in users_of(profiles, identifiers)
        ]
        return expected_identifiers(platform.value, users)

    async def held(self, platform: SyncPlatform, audience_id: uuid.UUID) -> dict[str, list[str]]:
        with transaction(self.factory) as session:
            platform_id = (
                AudienceRepository(session, self.tenant_id).get(audience_id).platform_audience_id
            )
        transport = httpx.ASGITransport(app=self.sandbox)
        async with httpx.AsyncClient(transport=transport, base_url=SANDBOX_URL) as client:
            return await held_identifiers(client, platform.value, str(platform_id))

    async def sandbox_audiences(self, platform: SyncPlatform) -> list[dict[str, Any]]:
        transport = httpx.ASGITransport(app=self.sandbox)
        async with httpx.AsyncClient(transport=transport, base_url=SANDBOX_URL) as client:
            answer = await client.get("/_sandbox/audiences", params={"platform": platform.value})
            found: list[dict[str, Any]] = answer.json()
            return found

    async def faults_pending(self) -> list[dict[str, Any]]:
        """Injected faults not yet used up (empty: every one hit a request)."""
        transport = httpx.ASGITransport(app=self.sandbox)
        async with httpx.AsyncClient(transport=transport, base_url=SANDBOX_URL) as client:
            found: list[dict[str, Any]] = (await client.get("/_sandbox/faults")).json()
            return [f for f in found if f.get("count", 0) > f.get("hits", 0)]

    async def fault(
        self, platform: SyncPlatform, kind: str, count: int = 1, **options: Any
    ) -> None:
        transport = httpx.ASGITransport(app=self.sandbox)
        async with httpx.AsyncClient(transport=transport, base_url=SANDBOX_URL) as client:
            body = {"kind": kind, "platform": platform.value, "count": count, **options}
            if kind == "rate_limit":
                body["retry_after"] = 2
            answer = await client.post("/_sandbox/faults", json=body)
            assert answer.status_code == 201, answer.text

    async def clear_faults(self) -> None:
        transport = httpx.ASGITransport(app=self.sandbox)
        async with httpx.AsyncClient(transport=transport, base_url=SANDBOX_URL) as client:
            answer = await client.delete("/_sandbox/faults")
            assert answer.status_code == 200, answer.text
