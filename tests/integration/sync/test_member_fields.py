"""A sync reads only what its platform's records are made of, and makes the same records."""

from __future__ import annotations

import csv
import uuid
from pathlib import Path
from typing import Any

import polars as pl
import pytest

from audience_sync.connectors import platform_spec
from audience_sync.connectors.columnar import member_fields, record_frame
from audience_sync.domain.models import SyncPlatform
from audience_sync.sources import columns
from audience_sync.sources import members as members_module
from audience_sync.sources.importer import import_profiles
from audience_sync.sources.members import (
    EVERYTHING,
    PROFILE_SCHEMA,
    MemberFields,
    member_batches,
    member_batches_of,
)
from audience_sync.store.db import transaction
from audience_sync.store.repositories import SegmentRepository, TenantRepository
from audience_sync.sync.members import SENDABLE

from .world import World

CASES = [(p, False) for p in SyncPlatform] + [(SyncPlatform.GOOGLE, True)]


def load(world: World, members: int) -> tuple[int, uuid.UUID]:
    """Members with every kind of field the importer takes, some missing."""
    rows = [
        {
            "profile_id": f"P{i}",
            "email": f" Person.{i}@Example.com" if i % 6 else "",
            "phone": f"(650) 555-{i:04d}" if i % 3 == 0 else "",
            "mobile_id": f"{i:08X}-AAAA-4BBB-8CCC-{i:012X}" if i % 4 == 1 else "",
            "mobile_id_kind": "idfa" if i % 4 == 1 else "",
            "external_id": f"CUST-{i}" if i % 2 else "",
            "first_name": "Mary-Jane" if i % 5 else "",
            "last_name": f"O'Brien {i % 7}",
            "city": "Palo Alto",
            "state": "CA",
            "zip": "94045-1234" if i % 5 else "",
            "country": ("US", "FR", "")[i % 3],
            "date_of_birth": f"19{50 + i % 40}-0{1 + i % 9}-1{i % 9}",
            "gender": "mf"[i % 2],
        }
        for i in range(members)
    ]
    return import_rows(world, rows)


def import_rows(world: World, rows: list[dict[str, str]]) -> tuple[int, uuid.UUID]:
    """The rows imported as a CSV file into the segment VIP: its tenant and id."""
    path = world.tmp / f"rows-{uuid.uuid4().hex}.csv"
    with path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    import_profiles(world.factory, Path(path), tenant="default", segment="VIP")
    with transaction(world.factory) as session:
        tenant_id = TenantRepository(session).get("default").id
        return tenant_id, SegmentRepository(session, tenant_id).ensure("VIP").id


def records(
    world: World, scope: tuple[int, uuid.UUID], case: tuple[SyncPlatform, bool], fields: Any
) -> tuple[list[Any], list[Any]]:
    """The records and drops of every member (batches of 7) and of some members again."""
    (tenant_id, segment_id), (platform, mobile) = scope, case
    batches = [
        *member_batches(world.engine, tenant_id, segment_id, 7, fields=fields),
        *member_batches_of(world.engine, tenant_id, segment_id, list(range(1, 40, 3)), fields),
    ]
    shape = platform_spec(platform).shape
    built = [
        record_frame(shape, profiles, identifiers, SENDABLE, region="US", mobile_list=mobile)
        for profiles, identifiers in batches
    ]
    return (
        pl.concat([b.records for b in built]).rows(),
        pl.concat([b.drops for b in built]).rows(),
    )


@pytest.mark.parametrize("case", CASES)
async def test_narrowed_reads_make_the_same_records(
    world: World, case: tuple[SyncPlatform, bool]
) -> None:
    scope = load(world, 40)
    needs = member_fields(platform_spec(case[0]).shape, case[1])
    narrowed = MemberFields(needs.columns, needs.types)
    assert narrowed != EVERYTHING or case[0] is SyncPlatform.META
    made = records(world, scope, case, narrowed)
    assert made[0]  # records were made
    assert made == records(world, scope, case, EVERYTHING)


async def test_fields_not_read_are_null_and_other_types_absent(world: World) -> None:
    tenant_id, segment_id = load(world, 12)
    fields = MemberFields(columns=("country",), types=("email",))
    profiles, identifiers = next(member_batches(world.engine, tenant_id, segment_id, fields=fields))
    assert profiles.columns == list(PROFILE_SCHEMA)
    assert profiles["first_name"].null_count() == len(profiles)
    assert profiles["country"].null_count() < len(profiles)
    assert set(identifiers["type"]) == {"email"}
    nothing = MemberFields(columns=(), types=())
    _, none = next(member_batches(world.engine, tenant_id, segment_id, fields=nothing))
    assert none.is_empty()
    with pytest.raises(ValueError, match="unknown profile fields"):
        MemberFields(columns=("1; DROP TABLE profiles",))


def read_all(
    world: World, tenant_id: int, segment_id: uuid.UUID, size: int, again: list[int]
) -> list[tuple[list[Any], list[Any]]]:
    """Every member batch of `size`, then the batches of the members `again`, as rows."""
    batches = [
        *member_batches(world.engine, tenant_id, segment_id, size),
        *member_batches_of(world.engine, tenant_id, segment_id, again),
    ]
    return [(p.rows(), i.rows()) for p, i in batches]


async def test_every_way_of_reading_rows_reads_the_same(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    """On SQLite members are read in columns (`columns.ColumnReader`), else as one JSON text a
    row (`members.PACKED`), else as plain rows: every value, whatever it holds, arrives alike."""
    odd = ['O"Brien \\ back', "tab\there", "é ü 漢字 🙂", "0042", "", "null", "[1,2]", "\x01"]
    rows = [
        {
            "profile_id": f"P{i}",
            "email": f"{odd[i % len(odd)]}{i}@example.com",
            "phone": "+16505551212" if i % 2 else "(650) 555-1212",
            "first_name": odd[i % len(odd)],
            "last_name": odd[(i + 3) % len(odd)],
            "city": odd[(i + 5) % len(odd)],
            "zip": "00501" if i % 3 else "",
            "external_id": odd[(i + 1) % len(odd)],
        }
        for i in range(24)
    ]
    tenant_id, segment_id = import_rows(world, rows)
    again = list(range(1, 30, 2))

    in_columns = read_all(world, tenant_id, segment_id, 5, again)
    monkeypatch.setattr(columns, "_COLUMNS", None)
    packed = read_all(world, tenant_id, segment_id, 5, again)
    monkeypatch.setattr(members_module, "PACKED", frozenset())
    assert in_columns == packed == read_all(world, tenant_id, segment_id, 5, again)
    assert any(p for p, _ in packed)
    assert any(i for _, i in packed)


async def test_members_read_alike_among_other_profiles(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Read in columns or as rows, a batch holds exactly its members and their identifiers,
    on a dense and a sparse segment, with another tenant's profiles between theirs."""
    with transaction(world.factory) as session:
        TenantRepository(session).create("other")
    for start, tenant in ((0, "default"), (10, "other"), (20, "default"), (30, "other")):
        path = world.tmp / f"{tenant}-{start}.csv"
        with path.open("w", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(["profile_id", "email", "phone", "external_id"])
            for i in range(start, start + 10):
                writer.writerow([f"P{i}", f"p{i}@example.com", f"+1650555{i:04d}", f"C{i}"])
        import_profiles(world.factory, path, tenant=tenant, segment="All")
    with transaction(world.factory) as session:
        tenant_id = TenantRepository(session).get("default").id
        segments = SegmentRepository(session, tenant_id)
        ids = [f"P{i}" for i in (*range(10), *range(20, 30))]
        dense, sparse = segments.ensure("Dense").id, segments.ensure("Sparse").id
        segments.add_members(dense, [p for k, p in enumerate(ids) if k % 7 != 3])
        segments.add_members(sparse, ids[::6])

    for segment_id, members in ((dense, 17), (sparse, 4)):
        in_columns = read_all(world, tenant_id, segment_id, 4, [])
        monkeypatch.setattr(columns, "_COLUMNS", None)
        assert in_columns == read_all(world, tenant_id, segment_id, 4, [])
        monkeypatch.undo()
        assert sum(len(p) for p, _ in in_columns) == members
        for profiles, identifiers in in_columns:
            assert {i[0] for i in identifiers} == {p[0] for p in profiles}
