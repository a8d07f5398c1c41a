"""Reading a segment's members as columnar batches, tenant-scoped, on both databases."""

from __future__ import annotations

import uuid
from pathlib import Path

import polars as pl
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from audience_sync.sources.importer import import_profiles
from audience_sync.sources.members import member_batches
from audience_sync.store.db import transaction
from audience_sync.store.repositories import SegmentRepository, TenantRepository

DATA = Path(__file__).parents[1] / "data" / "import"


def vip(factory: sessionmaker[Session], tenant: str = "default") -> tuple[int, uuid.UUID]:
    with transaction(factory) as session:
        tenant_id = TenantRepository(session).get(tenant).id
        segment = SegmentRepository(session, tenant_id).by_name("VIP")
        assert segment is not None
        return tenant_id, segment.id


def identifiers_of(engine: Engine, tenant_id: int, segment_id: uuid.UUID) -> list[dict]:
    frames = [ids for _, ids in member_batches(engine, tenant_id, segment_id, batch_rows=2)]
    return pl.concat(frames).to_dicts() if frames else []


def test_batches_hold_every_members_identifiers_in_order(
    engine: Engine, factory: sessionmaker[Session]
) -> None:
    import_profiles(factory, DATA / "good.csv", tenant="default", segment="VIP")
    tenant_id, segment_id = vip(factory)
    batches = list(member_batches(engine, tenant_id, segment_id, batch_rows=2))
    assert [len(profiles) for profiles, _ in batches] == [2, 2]
    rows = identifiers_of(engine, tenant_id, segment_id)
    assert len(rows) == 10
    assert {r["type"] for r in rows} == {"email", "phone", "mobile_id", "external_id"}
    phone = next(r for r in rows if r["value"] == "(415) 555-0123")
    assert phone["e164"] == "+14155550123"
    maid = next(r for r in rows if r["type"] == "mobile_id" and r["kind"] == "gaid")
    assert maid["value"] == "38400000-8cf0-11bd-b23e-10b96e40000d"
    pks = [r["profile_pk"] for r in rows]
    assert pks == sorted(pks)


def test_profile_batches_hold_the_enhanced_matching_fields(
    engine: Engine, factory: sessionmaker[Session]
) -> None:
    import_profiles(factory, DATA / "good.csv", tenant="default", segment="VIP")
    tenant_id, segment_id = vip(factory)
    ((frame, _),) = list(member_batches(engine, tenant_id, segment_id))
    assert frame["profile_id"].to_list() == ["P1", "P2", "P3", "P4"]
    assert frame.row(1, named=True)["first_name"] == "Zoë"


def test_another_tenants_members_never_appear(
    engine: Engine, factory: sessionmaker[Session]
) -> None:
    with transaction(factory) as session:
        TenantRepository(session).create("other")
    import_profiles(factory, DATA / "good.csv", tenant="default", segment="VIP")
    import_profiles(factory, DATA / "good.jsonl", tenant="other", segment="VIP")
    tenant_id, segment_id = vip(factory, "other")
    assert len(identifiers_of(engine, tenant_id, segment_id)) == 5
    _, default_segment = vip(factory)
    assert identifiers_of(engine, tenant_id, default_segment) == []
