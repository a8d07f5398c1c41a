"""The confirmed snapshot: add, re-confirm, remove, clear, compact, merge — tenant-scoped, on both
databases; the fold of its parts against a set."""

from __future__ import annotations

import io
import random
import uuid
from datetime import UTC, datetime

import polars as pl
import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from audience_sync.domain.models import SyncPlatform
from audience_sync.store import snapshot as snapshot_module
from audience_sync.store.db import transaction
from audience_sync.store.repositories import AudienceRepository, SegmentRepository, TenantRepository
from audience_sync.store.snapshot import SnapshotRepository
from audience_sync.store.tables import PlatformAudience, SnapshotPart
from audience_sync.sync.plan import encode_record, hash_keys

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


def test_the_parts_fold_to_what_was_confirmed_last(factory: sessionmaker[Session]) -> None:
    """Random chunks of adds (some records again, some in two parts) and removals (some of
    records never held), read after each: the snapshot equals a set that saw the same."""
    tenant_id, audience_id = audience(factory)
    pool = records(60)
    expected: set[tuple[str, str]] = set()
    rnd = random.Random(11)
    for step in range(40):
        chosen = rnd.sample(pool, rnd.randint(1, 12))
        with transaction(factory) as session:
            snapshot = SnapshotRepository(session, tenant_id)
            if rnd.random() < 0.6:
                snapshot.confirm(audience_id, NOW, added=chosen + chosen[:2])
                expected |= set(chosen)
            else:
                snapshot.confirm(audience_id, NOW, removed=[h for h, _ in chosen])
                expected -= set(chosen)
            if step % 13 == 12:
                snapshot.compact(audience_id, NOW)
        assert held(factory, tenant_id, audience_id) == expected
    with transaction(factory) as session:
        snapshot = SnapshotRepository(session, tenant_id)
        assert snapshot.count(audience_id) == len(expected)
        streamed = [h for frame in snapshot.hash_batches(audience_id) for h in frame["record_hash"]]
        assert set(streamed) == {h for h, _ in expected}  # a hash may come twice (two parts)
        gone = [h for h, _ in pool if (h, _) not in expected][:3]
        kept = sorted(expected)[:3]
        asked = [h for h, _ in kept] + gone
        assert snapshot.records_of(audience_id, asked).rows() == kept


def test_many_parts_are_compacted_without_changing_what_is_held(
    factory: sessionmaker[Session], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(snapshot_module, "COMPACT_AFTER", 5)
    tenant_id, audience_id = audience(factory)
    pool = records(30)
    for start in range(0, 30, 3):  # ten parts of adds, then a removal
        with transaction(factory) as session:
            SnapshotRepository(session, tenant_id).confirm(
                audience_id, NOW, added=pool[start : start + 3]
            )
    with transaction(factory) as session:
        SnapshotRepository(session, tenant_id).confirm(
            audience_id, NOW, removed=[h for h, _ in pool[:4]]
        )
    with transaction(factory) as session:
        snapshot = SnapshotRepository(session, tenant_id)
        assert len(snapshot._part_ids(audience_id)) <= 5
    assert held(factory, tenant_id, audience_id) == set(pool[4:])


def test_records_of_keys_reads_each_held_record_once(factory: sessionmaker[Session]) -> None:
    tenant_id, audience_id = audience(factory)
    pool = records(6)
    with transaction(factory) as session:
        snapshot = SnapshotRepository(session, tenant_id)
        snapshot.confirm(audience_id, NOW, added=pool[:4])
        snapshot.confirm(audience_id, NOW, added=pool[2:])  # 2 and 3 in two parts
        snapshot.confirm(audience_id, NOW, removed=[pool[0][0]])
    asked = pl.DataFrame({"record_hash": [h for h, _ in pool[:4]] + ["f" * 64]})
    with transaction(factory) as session:
        found = SnapshotRepository(session, tenant_id).records_of_keys(
            audience_id, asked.select(hash_keys())
        )
    assert sorted(found.rows()) == sorted(pool[1:4])  # 0 removed, the unknown key absent


def add_hex_part(
    factory: sessionmaker[Session],
    tenant_id: int,
    audience_id: uuid.UUID,
    added: list[tuple[str, str]],
) -> None:
    """A part as written before hashes were stored as bytes: `record_hash` as 64 hex digits."""
    frame = pl.DataFrame(added, schema=snapshot_module.RECORD_SCHEMA, orient="row")
    data = io.BytesIO()
    frame.select(*hash_keys(), *snapshot_module.RECORD_SCHEMA).write_ipc(data, compression="lz4")
    with transaction(factory) as session:
        session.add(
            SnapshotPart(
                tenant_id=tenant_id,
                audience_id=audience_id,
                removes=False,
                rows=len(frame),
                data=data.getvalue(),
                confirmed_at=NOW,
            )
        )


def test_parts_hold_hashes_as_bytes_and_parts_with_hex_hashes_still_read(
    factory: sessionmaker[Session],
) -> None:
    """A part stores each record hash as its 32 bytes; a part written before (64 hex digits)
    reads the same, beside newer ones, through every reader and a compaction."""
    tenant_id, audience_id = audience(factory)
    old, new = records(6)[:3], records(6)[3:]
    add_hex_part(factory, tenant_id, audience_id, old)
    with transaction(factory) as session:
        snapshot = SnapshotRepository(session, tenant_id)
        snapshot.confirm(audience_id, NOW, added=new, removed=[old[0][0]])
        parts = session.scalars(select(SnapshotPart.data).order_by(SnapshotPart.id)).all()
        kinds = [pl.read_ipc_schema(io.BytesIO(data)).get("record_hash") for data in parts]
        assert kinds == [pl.String, pl.Binary, None]  # old, new, a removal (keys only)
        assert set(snapshot.records(audience_id).iter_rows()) == set(old[1:] + new)
        hashes = {h for batch in snapshot.hash_batches(audience_id) for h in batch["record_hash"]}
        assert hashes == {h for h, _ in old[1:] + new}
        wanted = [old[1][0], new[0][0]]
        assert snapshot.records_of(audience_id, wanted).rows() == [old[1], new[0]]
        snapshot.compact(audience_id, NOW)
        assert set(snapshot.records(audience_id).iter_rows()) == set(old[1:] + new)


def test_a_merge_stops_at_the_last_removal(
    factory: sessionmaker[Session], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Parts before a removal part are never merged past it: what it removed stays removed."""
    monkeypatch.setattr(snapshot_module, "PART_ROWS", 10)
    tenant_id, audience_id = audience(factory)
    pool = records(8)
    with transaction(factory) as session:
        snapshot = SnapshotRepository(session, tenant_id)
        snapshot.confirm(audience_id, NOW, added=pool[:2])
        snapshot.confirm(audience_id, NOW, added=pool[2:4])
        snapshot.confirm(audience_id, NOW, removed=[pool[0][0]])
        for start in (4, 6):
            snapshot.confirm(audience_id, NOW, added=pool[start : start + 2])
        snapshot.merge_tail(audience_id)
        kinds = session.execute(
            select(SnapshotPart.removes, SnapshotPart.rows).order_by(SnapshotPart.id)
        ).all()
    assert [tuple(row) for row in kinds] == [(False, 2), (False, 2), (True, 1), (False, 4)]
    assert held(factory, tenant_id, audience_id) == set(pool[1:])


def test_a_part_with_hex_hashes_merges_with_newer_parts(factory: sessionmaker[Session]) -> None:
    tenant_id, audience_id = audience(factory)
    old, new = records(6)[:3], records(6)[3:]
    add_hex_part(factory, tenant_id, audience_id, old)
    with transaction(factory) as session:
        snapshot = SnapshotRepository(session, tenant_id)
        snapshot.confirm(audience_id, NOW, added=new)
        snapshot.merge_tail(audience_id)
        (data,) = session.scalars(select(SnapshotPart.data)).all()
    assert pl.read_ipc_schema(io.BytesIO(data))["record_hash"] == pl.Binary
    assert held(factory, tenant_id, audience_id) == set(old + new)
