"""Reading a segment's members as columnar batches, tenant-scoped, on both databases."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import polars as pl
import pytest
from sqlalchemy import Engine, insert
from sqlalchemy.orm import Session, sessionmaker

from audience_sync.sources import columns
from audience_sync.sources import members as members_module
from audience_sync.sources.importer import import_profiles
from audience_sync.sources.members import member_batches, member_content_pages
from audience_sync.store.db import transaction
from audience_sync.store.repositories import SegmentRepository, TenantRepository
from audience_sync.store.stored_identifiers import text_of
from audience_sync.store.tables import Profile, SegmentMember

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


# Texts a CSV or a row reader could get wrong: separators of the stored identifiers (escaped in
# storage), CSV's own quote, comma and line ends, backslashes, non-ASCII, what looks like a NULL.
AWKWARD = [
    'O"Brien, "Jr."',
    "line\nbreak",
    "cr\r\nlf",
    "unit\x1fsep\x1erecord\x1bescape",
    "back\\slash \\N",
    "\\N",
    "é ü 漢字 🙂",
    "",
    " ",
    "null",
    "NULL",
    '""',
    ",",
    "\t tab",
]


def insert_awkward(engine: Engine, tenant_id: int, segment_id: uuid.UUID, count: int) -> None:
    """`count` profiles whose fields and identifiers cycle through `AWKWARD`, some fields NULL
    and some '' (the two must stay apart), all members of the segment."""
    now = datetime(2026, 12, 1, tzinfo=UTC)

    def odd(i: int) -> str | None:
        return None if i % 5 == 4 else AWKWARD[i % len(AWKWARD)]

    profiles = [
        {
            "id": i,
            "tenant_id": tenant_id,
            "profile_id": f"P{i}{AWKWARD[i % len(AWKWARD)]}",
            "first_name": odd(i),
            "last_name": odd(i + 1),
            "city": odd(i + 2),
            "zip": "" if i % 3 else None,
            "gender": odd(i + 3),
            "traits": {},
            "content_hash": f"{i:064x}",
            "created_at": now,
            "updated_at": now,
            "identifiers": text_of(
                [
                    ("email", f"{AWKWARD[i % len(AWKWARD)]}{i}@example.com", None, None),
                    ("external_id", AWKWARD[(i + 7) % len(AWKWARD)], None, None),
                    ("phone", "+16505551212", "+16505551212", None),
                ][: i % 4]
            ),
        }
        for i in range(1, count + 1)
    ]
    members = [
        {"segment_id": segment_id, "profile_pk": i, "tenant_id": tenant_id, "added_at": now}
        for i in range(1, count + 1)
    ]
    with engine.begin() as connection:
        connection.execute(insert(Profile.__table__), profiles)
        connection.execute(insert(SegmentMember.__table__), members)


def test_the_fast_read_gives_what_the_row_read_gives_on_awkward_text(
    engine: Engine, factory: sessionmaker[Session], monkeypatch: pytest.MonkeyPatch
) -> None:
    """PostgreSQL's `COPY` in CSV and SQLite's column reader against the driver's rows: every
    text arrives exactly, NULL and '' apart, in batches of the same members, and the contents
    (what an update compares) alike. Enough rows for Polars to parse the CSV on several threads."""
    with transaction(factory) as session:
        tenant_id = TenantRepository(session).get("default").id
        segment_id = SegmentRepository(session, tenant_id).ensure("Awkward").id
    insert_awkward(engine, tenant_id, segment_id, 3_000)
    monkeypatch.setattr(members_module, "CONTENTS_PAGE_ROWS", 700)  # five pages

    def read() -> tuple[list[Any], list[Any], list[Any]]:
        batches = list(member_batches(engine, tenant_id, segment_id, batch_rows=1_000))
        contents = pl.concat(member_content_pages(engine, tenant_id, segment_id)).sort("owner")
        # The contents read with the members, by their own query: the same frame.
        along: list[pl.DataFrame] = []
        again = list(
            member_batches(engine, tenant_id, segment_id, batch_rows=1_000, contents=along)
        )
        assert [p.rows() for p, _ in again] == [p.rows() for p, _ in batches]
        assert [i.rows() for _, i in again] == [i.rows() for _, i in batches]
        assert [len(c) for c in along] == [1_000] * 3
        assert pl.concat(along).sort("owner").rows() == contents.rows()
        return ([p.rows() for p, _ in batches], [i.rows() for _, i in batches], contents.rows())

    fast = read()
    monkeypatch.setattr(columns, "_COLUMNS", None)
    monkeypatch.setattr(members_module, "COPIED", frozenset())
    monkeypatch.setattr(members_module, "PACKED", frozenset())
    rows = read()
    assert fast == rows
    profiles = [row for batch in fast[0] for row in batch]
    assert len(profiles) == 3_000
    assert len(fast[0]) == 3
    texts = {value for row in profiles for value in row[1:]}
    assert {None, "", "\\N", "line\nbreak", 'O"Brien, "Jr."', "é ü 漢字 🙂"} <= texts
    values = {row[2] for batch in fast[1] for row in batch}
    assert "unit\x1fsep\x1erecord\x1bescape" in values
    assert "cr\r\nlf" in values


def test_dense_and_sparse_pages_read_the_same_members(
    engine: Engine, factory: sessionmaker[Session], monkeypatch: pytest.MonkeyPatch
) -> None:
    """On PostgreSQL a page whose members fill most of its pk range is read by a merge join, a
    sparse one by probes (`members.DENSE`): both give what the driver's rows give. Members
    1–1,000, then every tenth profile (a sparse page after a dense one)."""
    with transaction(factory) as session:
        tenant_id = TenantRepository(session).get("default").id
        segment_id = SegmentRepository(session, tenant_id).ensure("Awkward").id
    insert_awkward(engine, tenant_id, segment_id, 3_000)
    with engine.begin() as connection:
        connection.execute(
            SegmentMember.__table__.delete().where(
                SegmentMember.profile_pk > 1_000, SegmentMember.profile_pk % 10 != 0
            )
        )
    monkeypatch.setattr(members_module, "CONTENTS_PAGE_ROWS", 700)
    queries: list[str] = []

    def recording(copy: Any) -> Any:
        def recorded(connection: Any, sql: str, *args: Any) -> pl.DataFrame:
            queries.append("dense" if "p.id BETWEEN" in sql else "sparse")
            return copy(connection, sql, *args)

        return recorded

    for copy in ("_copy_frame", "_copy_lines"):  # the contents are plain (`_copy_lines`)
        monkeypatch.setattr(members_module, copy, recording(getattr(members_module, copy)))
    bounds = members_module._page_bounds

    def recorded_bounds(*args: Any) -> list[tuple[int, int, int]]:
        queries.append("bounds")
        return bounds(*args)

    monkeypatch.setattr(members_module, "_page_bounds", recorded_bounds)

    def read() -> tuple[list[Any], list[Any]]:
        batches = member_batches(engine, tenant_id, segment_id, batch_rows=1_000)
        profiles = [row for batch, _ in batches for row in batch.rows()]
        contents = pl.concat(member_content_pages(engine, tenant_id, segment_id))
        return profiles, contents.sort("owner").rows()

    fast = read()
    if engine.dialect.name == "postgresql":  # the pages' bounds, a dense page, a sparse one
        assert queries == ["bounds", "dense", "sparse", "bounds", "dense", "sparse"]
    monkeypatch.setattr(columns, "_COLUMNS", None)
    monkeypatch.setattr(members_module, "COPIED", frozenset())
    monkeypatch.setattr(members_module, "PACKED", frozenset())
    assert fast == read()
    assert [row[0] for row in fast[0]] == [*range(1, 1_001), *range(1_010, 3_001, 10)]


@pytest.mark.parametrize("engine", ["postgresql"], indirect=True)  # SQLite reads by keyset
@pytest.mark.parametrize("rows", [1, 3, 7, 20])
def test_the_pages_bounds_cut_the_segments_pks_into_pages(
    engine: Engine, factory: sessionmaker[Session], rows: int
) -> None:
    """PostgreSQL's pages (`members._page_bounds`, found by the server): each page's first and
    last pk and its members, `rows` to a page in pk order, the last one short; none for no
    member."""
    with transaction(factory) as session:
        tenant_id = TenantRepository(session).get("default").id
        segment_id = SegmentRepository(session, tenant_id).ensure("Awkward").id
    with engine.begin() as connection:
        assert members_module._page_bounds(connection, (segment_id, tenant_id), rows) == []
    insert_awkward(engine, tenant_id, segment_id, 20)
    with engine.begin() as connection:
        connection.execute(
            SegmentMember.__table__.delete().where(SegmentMember.profile_pk % 3 == 0)
        )
        pks = sorted(
            pk
            for (pk,) in connection.execute(
                SegmentMember.__table__.select()
                .with_only_columns(SegmentMember.profile_pk)
                .where(SegmentMember.segment_id == segment_id)
            )
        )
        found = members_module._page_bounds(connection, (segment_id, tenant_id), rows)
    pages = [pks[start : start + rows] for start in range(0, len(pks), rows)]
    assert found == [(page[0], page[-1], len(page)) for page in pages]
