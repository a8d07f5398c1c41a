"""A held record's last confirmed upload (freshness): its newest part's time, kept through a
removal, a compaction and a merge of small parts (store/snapshot.py)."""

from __future__ import annotations

import uuid
from datetime import timedelta

import polars as pl
import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from audience_sync.store import snapshot as snapshot_module
from audience_sync.store.db import transaction
from audience_sync.store.snapshot import SnapshotRepository
from audience_sync.store.tables import SnapshotPart
from audience_sync.sync.plan import encode_record, hash_keys

from .test_snapshot import NOW, audience, held


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


def test_a_run_of_small_parts_is_merged_each_record_keeping_its_time(
    factory: sessionmaker[Session], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Small parts (a run's chunks) over the limit are merged from the newest back, never the
    whole audience compacted: what is held and each record's time stay as they were."""
    monkeypatch.setattr(snapshot_module, "COMPACT_AFTER", 3)
    monkeypatch.setattr(snapshot_module, "PART_ROWS", 10)
    compactions: list[object] = []
    monkeypatch.setattr(SnapshotRepository, "compact", lambda *args: compactions.append(args))
    tenant_id, audience_id = audience(factory)
    pool = [encode_record([("EMAIL_SHA256", f"{i:064x}")]) for i in range(40)]
    day = timedelta(days=1)
    for n, start in enumerate(range(0, 40, 2)):  # twenty parts of two records, a day apart
        with transaction(factory) as session:
            SnapshotRepository(session, tenant_id).confirm(
                audience_id, NOW + n * day, added=pool[start : start + 2]
            )
    assert compactions == []
    assert held(factory, tenant_id, audience_id) == set(pool)
    with transaction(factory) as session:
        parts = session.scalars(select(SnapshotPart.rows).order_by(SnapshotPart.id)).all()
    assert len(parts) < 20
    assert max(parts) == 10  # merged into parts of PART_ROWS
    keys = pl.DataFrame({"record_hash": [h for h, _ in pool]}).select(hash_keys())
    expected = {(k1, k2): NOW + (i // 2) * day for i, (k1, k2) in enumerate(keys.iter_rows())}
    assert times(factory, tenant_id, audience_id) == expected
