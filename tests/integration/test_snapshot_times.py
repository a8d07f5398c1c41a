"""A held record's last confirmed upload (freshness): its newest part's time, kept through a
removal and a compaction (store/snapshot.py)."""

from __future__ import annotations

import uuid
from datetime import timedelta

from sqlalchemy.orm import Session, sessionmaker

from audience_sync.store.db import transaction
from audience_sync.store.snapshot import SnapshotRepository
from audience_sync.sync.plan import encode_record

from .test_snapshot import NOW, audience


def times(factory: sessionmaker[Session], tenant_id: int, audience_id: uuid.UUID) -> dict:
    with transaction(factory) as session:
        frame = SnapshotRepository(session, tenant_id).confirmed_times(audience_id)
    return {(k1, k2): at for k1, k2, at in frame.iter_rows()}


def test_each_record_keeps_its_last_confirmation_through_a_compaction(
    factory: sessionmaker[Session],
) -> None:
    tenant_id, audience_id = audience(factory)
    added = [encode_record([("EMAIL_SHA256", f"{i:064x}")]) for i in range(6)]
    day = timedelta(days=1)
    with transaction(factory) as session:
        snapshot = SnapshotRepository(session, tenant_id)
        snapshot.confirm(audience_id, NOW, added=added)  # everyone, on day 0
        snapshot.confirm(audience_id, NOW + day, added=added[:2])  # two refreshed on day 1
        snapshot.confirm(audience_id, NOW + 2 * day, removed=[added[5][0]])  # one removed
        snapshot.confirm(audience_id, NOW + 3 * day, added=added[4:5])  # one refreshed again
    before = times(factory, tenant_id, audience_id)
    assert sorted(before.values()) == [NOW, NOW, NOW + day, NOW + day, NOW + 3 * day]
    with transaction(factory) as session:
        snapshot = SnapshotRepository(session, tenant_id)
        snapshot.compact(audience_id, NOW + 10 * day)
        assert snapshot.oldest_confirmed(audience_id) == NOW  # dated by its oldest record
    assert times(factory, tenant_id, audience_id) == before
    with transaction(factory) as session:  # and again, compacting a compacted part
        SnapshotRepository(session, tenant_id).compact(audience_id, NOW + 20 * day)
    assert times(factory, tenant_id, audience_id) == before
