"""The confirmed snapshot: add, re-confirm, remove, clear — tenant-scoped, on both databases."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from sqlalchemy.orm import Session, sessionmaker

from audience_sync.domain.models import SyncPlatform
from audience_sync.store.db import transaction
from audience_sync.store.repositories import AudienceRepository, SegmentRepository, TenantRepository
from audience_sync.store.snapshot import SnapshotRepository
from audience_sync.store.tables import PlatformAudience

NOW = datetime(2026, 11, 28, tzinfo=UTC)


def audience(factory: sessionmaker[Session], tenant: str = "default") -> tuple[int, uuid.UUID]:
    with transaction(factory) as session:
        tenant_id = TenantRepository(session).get(tenant).id
        segment = SegmentRepository(session, tenant_id).ensure("VIP")
        created = AudienceRepository(session, tenant_id).add(
            PlatformAudience(
                segment_id=segment.id,
                platform=SyncPlatform.SNAPCHAT,
                platform_audience_name="VIP",
                ad_account_id="a",
            )
        )
        return tenant_id, created.id


def pairs(factory: sessionmaker[Session], tenant_id: int, audience_id: uuid.UUID) -> set:
    with transaction(factory) as session:
        return set(SnapshotRepository(session, tenant_id).pairs(audience_id).iter_rows())


def test_confirmed_pairs_are_kept_and_reconfirming_is_harmless(
    factory: sessionmaker[Session],
) -> None:
    tenant_id, audience_id = audience(factory)
    added = [("EMAIL_SHA256", "a" * 64), ("PHONE_SHA256", "b" * 64)]
    for _ in range(2):
        with transaction(factory) as session:
            SnapshotRepository(session, tenant_id).confirm(audience_id, NOW, added=added)
    assert pairs(factory, tenant_id, audience_id) == set(added)


def test_removed_pairs_leave_the_snapshot_in_chunks(factory: sessionmaker[Session]) -> None:
    tenant_id, audience_id = audience(factory)
    added = [("EMAIL_SHA256", f"{i:064x}") for i in range(1_200)]
    with transaction(factory) as session:
        SnapshotRepository(session, tenant_id).confirm(audience_id, NOW, added=added)
    with transaction(factory) as session:
        SnapshotRepository(session, tenant_id).confirm(audience_id, NOW, removed=added[:1_100])
    assert pairs(factory, tenant_id, audience_id) == set(added[1_100:])


def test_another_tenant_sees_and_clears_nothing(factory: sessionmaker[Session]) -> None:
    tenant_id, audience_id = audience(factory)
    with transaction(factory) as session:
        other = TenantRepository(session).create("other").id
        SnapshotRepository(session, tenant_id).confirm(audience_id, NOW, added=[("K", "v")])
    with transaction(factory) as session:
        assert SnapshotRepository(session, other).count(audience_id) == 0
        SnapshotRepository(session, other).clear(audience_id)
    assert pairs(factory, tenant_id, audience_id) == {("K", "v")}
    with transaction(factory) as session:
        SnapshotRepository(session, tenant_id).clear(audience_id)
        assert SnapshotRepository(session, tenant_id).count(audience_id) == 0
