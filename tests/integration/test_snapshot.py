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
from audience_sync.sync.plan import encode_record

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


def held(factory: sessionmaker[Session], tenant_id: int, audience_id: uuid.UUID) -> set:
    with transaction(factory) as session:
        return set(SnapshotRepository(session, tenant_id).records(audience_id).iter_rows())


def records(n: int) -> list[tuple[str, str]]:
    return [encode_record([("EMAIL_SHA256", f"{i:064x}")]) for i in range(n)]


def test_confirmed_records_are_kept_and_reconfirming_is_harmless(
    factory: sessionmaker[Session],
) -> None:
    tenant_id, audience_id = audience(factory)
    added = records(2)
    for _ in range(2):
        with transaction(factory) as session:
            SnapshotRepository(session, tenant_id).confirm(audience_id, NOW, added=added)
    assert held(factory, tenant_id, audience_id) == set(added)


def test_removed_records_leave_the_snapshot_in_chunks(factory: sessionmaker[Session]) -> None:
    tenant_id, audience_id = audience(factory)
    added = records(1_200)
    with transaction(factory) as session:
        SnapshotRepository(session, tenant_id).confirm(audience_id, NOW, added=added)
    with transaction(factory) as session:
        SnapshotRepository(session, tenant_id).confirm(
            audience_id, NOW, removed=[h for h, _ in added[:1_100]]
        )
    assert held(factory, tenant_id, audience_id) == set(added[1_100:])


def test_another_tenant_sees_and_clears_nothing(factory: sessionmaker[Session]) -> None:
    tenant_id, audience_id = audience(factory)
    with transaction(factory) as session:
        other = TenantRepository(session).create("other").id
        SnapshotRepository(session, tenant_id).confirm(audience_id, NOW, added=records(1))
    with transaction(factory) as session:
        assert SnapshotRepository(session, other).count(audience_id) == 0
        SnapshotRepository(session, other).clear(audience_id)
    assert held(factory, tenant_id, audience_id) == set(records(1))
    with transaction(factory) as session:
        SnapshotRepository(session, tenant_id).clear(audience_id)
        assert SnapshotRepository(session, tenant_id).count(audience_id) == 0
