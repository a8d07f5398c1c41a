"""The snapshot reads planning uses: hashes streamed a part at a time, records by hash."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from audience_sync.domain.models import SyncPlatform
from audience_sync.store.db import transaction
from audience_sync.store.repositories import AudienceRepository, SegmentRepository, TenantRepository
from audience_sync.store.snapshot import SnapshotRepository
from audience_sync.store.tables import PlatformAudience
from audience_sync.sync.plan import encode_record

NOW = datetime(2026, 11, 28, tzinfo=UTC)


def audience(factory: sessionmaker[Session]) -> tuple[int, uuid.UUID, uuid.UUID]:
    with transaction(factory) as session:
        tenant_id = TenantRepository(session).get("default").id
        segment = SegmentRepository(session, tenant_id).ensure("VIP")
        audiences = AudienceRepository(session, tenant_id)
        ids = [
            audiences.add(
                PlatformAudience(
                    segment_id=segment.id,
                    platform=SyncPlatform.SNAPCHAT,
                    platform_audience_name=name,
                    ad_account_id="1",
                )
            ).id
            for name in ("A", "B")
        ]
        return tenant_id, ids[0], ids[1]


def test_hashes_stream_a_part_at_a_time_and_records_come_back_by_hash(
    engine: Engine, factory: sessionmaker[Session]
) -> None:
    tenant_id, mine, other = audience(factory)
    records = [encode_record([("EMAIL_SHA256", f"{i:064x}")]) for i in range(25)]
    with transaction(factory) as session:
        repository = SnapshotRepository(session, tenant_id)
        for start in (0, 10, 20):  # three confirmed chunks: three parts
            repository.confirm(mine, NOW, added=records[start : start + 10])
        repository.confirm(other, NOW, added=[encode_record([("PHONE_SHA256", "f" * 64)])])
    with transaction(factory) as session:
        repository = SnapshotRepository(session, tenant_id)
        frames = list(repository.hash_batches(mine))
        wanted = [records[7][0], records[3][0], "0" * 64]
        found = repository.records_of(mine, wanted)
    assert [len(f) for f in frames] == [10, 10, 5]
    assert sorted(h for f in frames for h in f["record_hash"]) == sorted(h for h, _ in records)
    assert found.rows() == [records[7], records[3]]  # in the order asked; unknown ones absent


def test_no_snapshot_streams_nothing(engine: Engine, factory: sessionmaker[Session]) -> None:
    tenant_id, mine, _ = audience(factory)
    with transaction(factory) as session:
        assert list(SnapshotRepository(session, tenant_id).hash_batches(mine)) == []
