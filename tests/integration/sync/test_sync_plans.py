"""A sync's and an import's hot queries keep their index plans on PostgreSQL tables without
statistics (issue 23).

This server runs with autovacuum off, so a table loaded from empty is never analyzed: the
planner guesses its size and selectivity. Here a fresh database (migrated from empty, autovacuum
off for the big tables) gets a few thousand profiles of two tenants by the importer, then a
re-import of some changed rows; each hot statement is EXPLAINed (FORMAT JSON) with real
parameters and must read `profiles` and `segment_members` through the intended index — never
sequentially, and the import's lookup by both columns of `(tenant_id, profile_id)`, not the
tenant's whole stretch of the index.

The hot queries checked (the rest of a sync reads or writes a few rows by key: its job, its
audience, the snapshot's and member state's parts by audience):

- a sync's pages of the segment (`members.POSTGRES_PAGE_BOUNDS_SQL`): the segment's key walked
  in pk order, nothing sorted (a sort of ten million memberships would spill to disk);
- a sync's page of members (`members.POSTGRES_PROFILES_PAGE_SQL`, inside its `COPY`): its own
  closed range of the segment's key, each member's profile by primary key (the plain join,
  `PROFILES_PAGE_SQL`, was planned in some runs from a bitmap of the tenant's whole stretch of
  the `(tenant_id, profile_id)` index, and `profile_pk > ? … LIMIT ?` as a bitmap of the rest of
  the segment, every page);
- the members' contents, a page at a time (`members.POSTGRES_CONTENTS_SQL`, in its `COPY`):
  the same;
- an update's listed members (`members.POSTGRES_PROFILES_OF_SQL`, 2,000 pks): profiles by
  primary key, each membership by the segment's key (the shape used on SQLite, `p.id IN (…)`,
  was planned here as a sequential scan of `profiles`);
- the import's lookup of a batch's ids (`profile_writer.POSTGRES_LOOKUP`): `(tenant_id,
  profile_id)`, both columns in the index condition, as a custom and as a generic plan;
- the import's update of changed profiles (`UPDATE profiles … ctid`): by primary key;
- the import's new memberships (`profile_writer.POSTGRES_ADD_MEMBERS`): no scan.

`tests/integration/sources/test_import_plans.py` (slow) runs the import's checks at 150,000 rows
and times its batches.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, text
from tests.integration.sources.test_import_plans import (
    PLAN_MODES,
    Recorder,
    fresh_postgres,
    plan_nodes,
    postgres_plan,
    postgres_statistics,
    recording,
    table_scans,
)

from audience_sync.sources import importer
from audience_sync.sources.demo import generate_rows, write_profiles_csv
from audience_sync.sources.members import (
    EVERYTHING,
    MERGE_JOIN_ONLY,
    POSTGRES_CONTENTS_SQL,
    POSTGRES_DENSE_CONTENTS_SQL,
    POSTGRES_DENSE_PAGE_SQL,
    POSTGRES_PAGE_BOUNDS_SQL,
    POSTGRES_PROFILES_OF_SQL,
    POSTGRES_PROFILES_PAGE_SQL,
    lines_sql,
)
from audience_sync.store import db, profile_writer
from audience_sync.store.repositories import SegmentRepository, TenantRepository

pytestmark = pytest.mark.postgres

ROWS = 3_000
CONTENTS = {"owner": int, "content_hash": str}  # `lines_sql` counts the columns
BATCH = 1_000
SEGMENT = "Plans"


@dataclass
class Loaded:
    engine: Engine
    tenant_id: int
    segment_id: uuid.UUID
    recorder: Recorder


@pytest.fixture(scope="module")
def loaded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Loaded]:
    """Two tenants of `ROWS` profiles each in a never-analyzed database; the first tenant's
    profiles imported again with a tenth of them changed (so the update runs)."""
    folder = tmp_path_factory.mktemp("sync-plans")
    first, changed = folder / "profiles.csv", folder / "changed.csv"
    write_profiles_csv(first, generate_rows(ROWS))
    rows = list(generate_rows(ROWS))
    for row in rows[::10]:
        row["first_name"] = "Changed"
    write_profiles_csv(changed, rows)
    with fresh_postgres() as engine:
        factory = db.session_factory(engine)
        with db.transaction(factory) as session:
            TenantRepository(session).create("other")
        with recording() as recorder:
            for tenant, path in (("other", first), ("default", first), ("default", changed)):
                load(factory, path, tenant)
        with db.transaction(factory) as session:
            tenant_id = TenantRepository(session).get("default").id
            segment_id = SegmentRepository(session, tenant_id).ensure(SEGMENT).id
        assert postgres_statistics(engine) == 0
        yield Loaded(engine, tenant_id, segment_id, recorder)


def load(factory: Any, path: Path, tenant: str) -> None:
    report = importer.import_profiles(
        factory, path, tenant=tenant, segment=SEGMENT, batch_rows=BATCH, workers=1
    )
    assert report.accounted


def pg(sql: str) -> str:
    return sql.replace("?", "%s")


def probes(plan: dict[str, Any], table: str, *columns: str) -> bool:
    """Some node reads `table` through an index whose condition names every one of `columns`."""
    return any(
        node.get("Relation Name") == table
        and node["Node Type"] in ("Index Scan", "Index Only Scan", "Bitmap Heap Scan")
        and all(
            re.search(rf"\b{c}\)?(::\w+)? = ", node.get("Index Cond", node.get("Recheck Cond", "")))
            for c in columns
        )
        for node in plan_nodes(plan)
    )


def no_sequential_scan(plan: dict[str, Any]) -> bool:
    return not any(kind == "Seq Scan" for kind, _, _ in table_scans(plan))


def assert_walks_a_page_of_the_segments_key(plan: dict[str, Any]) -> None:
    """Profiles probed by primary key; the members read from their own range of the segment's
    key, whether walked in order or as a bitmap."""
    assert no_sequential_scan(plan), table_scans(plan)
    assert probes(plan, "profiles", "id"), table_scans(plan)
    (members,) = [scan for scan in table_scans(plan) if scan[1] == "segment_members"]
    for condition in ("segment_id = ", "profile_pk >= ", "profile_pk <= "):
        assert condition in members[2], members


def test_the_database_was_never_analyzed(loaded: Loaded) -> None:
    assert postgres_statistics(loaded.engine) == 0
    with loaded.engine.connect() as connection:
        count = connection.execute(text("SELECT count(*) FROM profiles")).scalar_one()
    assert count == 2 * ROWS


@pytest.mark.parametrize("settings", [(), MERGE_JOIN_ONLY])
def test_a_page_of_members_walks_the_segments_key(loaded: Loaded, settings: Any) -> None:
    """A sparse page; its transaction has turned the other joins off for the dense ones."""
    sql = pg(EVERYTHING.sql(POSTGRES_PROFILES_PAGE_SQL, marked=True))
    params = (loaded.segment_id, loaded.tenant_id, ROWS + 1_001, ROWS + 2_000)
    plan = postgres_plan(loaded.engine, sql, params, PLAN_MODES[0], settings)
    assert_walks_a_page_of_the_segments_key(plan)


def assert_merges_the_two_keys(plan: dict[str, Any]) -> None:
    """One merge join of the page's stretch of the segment's key with its stretch of the
    profiles' primary key: both walked in order, nothing probed a member at a time, no sort."""
    kinds = [node["Node Type"] for node in plan_nodes(plan)]
    assert kinds.count("Merge Join") == 1, kinds
    for kind in ("Nested Loop", "Hash Join", "Sort"):
        assert kind not in kinds, kinds
    scans = {table: condition for _, table, condition in table_scans(plan)}
    assert set(scans) == {"profiles", "segment_members"}, table_scans(plan)
    for condition in ("id >= ", "id <= "):
        assert condition in scans["profiles"], scans
    for condition in ("segment_id = ", "profile_pk >= ", "profile_pk <= "):
        assert condition in scans["segment_members"], scans


@pytest.mark.parametrize("mode", PLAN_MODES)
@pytest.mark.parametrize(
    "template",
    [EVERYTHING.sql(POSTGRES_DENSE_PAGE_SQL, marked=True), POSTGRES_DENSE_CONTENTS_SQL],
    ids=["members", "contents"],
)
def test_a_dense_page_merges_the_segments_key_with_the_profiles(
    loaded: Loaded, mode: str, template: str
) -> None:
    first, last = ROWS + 1_001, ROWS + 2_000
    params = (loaded.segment_id, loaded.tenant_id, first, last, first, last)
    plan = postgres_plan(loaded.engine, pg(template), params, mode, MERGE_JOIN_ONLY)
    assert_merges_the_two_keys(plan)


@pytest.mark.parametrize("mode", PLAN_MODES)
def test_the_pages_bounds_walk_the_segments_key_in_order(loaded: Loaded, mode: str) -> None:
    """`members._page_bounds` (after `MERGE_JOIN_ONLY`, sorts off, as the read runs it): the
    segment's key in pk order feeds the window functions, so nothing is sorted."""
    params = (loaded.segment_id, loaded.tenant_id, 1_000, 1_000, 1_000)
    sql = pg(POSTGRES_PAGE_BOUNDS_SQL)
    settings = (*MERGE_JOIN_ONLY, "SET LOCAL enable_sort = off")  # as `_page_bounds` runs it
    plan = postgres_plan(loaded.engine, sql, params, mode, settings)
    assert no_sequential_scan(plan), table_scans(plan)
    assert probes(plan, "segment_members", "segment_id"), table_scans(plan)
    kinds = [node["Node Type"] for node in plan_nodes(plan)]
    assert "Sort" not in kinds, kinds
    assert "Bitmap Heap Scan" not in kinds, kinds


@pytest.mark.parametrize("settings", [(), MERGE_JOIN_ONLY])
def test_the_members_contents_walk_the_segments_key(loaded: Loaded, settings: Any) -> None:
    plan = postgres_plan(
        loaded.engine,
        pg(POSTGRES_CONTENTS_SQL),
        (loaded.segment_id, loaded.tenant_id, ROWS + 1_001, ROWS + 2_000),
        PLAN_MODES[0],
        settings,
    )
    assert_walks_a_page_of_the_segments_key(plan)


def test_listed_members_are_probed_by_primary_key(loaded: Loaded) -> None:
    pks = list(range(ROWS + 1, ROWS + 2_001))  # the first tenant's profiles came second
    sql = pg(EVERYTHING.sql(POSTGRES_PROFILES_OF_SQL))
    plan = postgres_plan(
        loaded.engine, sql, (pks, loaded.tenant_id, loaded.segment_id), PLAN_MODES[0]
    )
    assert no_sequential_scan(plan), table_scans(plan)
    assert probes(plan, "profiles", "id"), table_scans(plan)
    assert probes(plan, "segment_members", "segment_id", "profile_pk"), table_scans(plan)


@pytest.mark.parametrize("mode", PLAN_MODES)
def test_the_import_lookup_uses_both_columns_of_its_key(loaded: Loaded, mode: str) -> None:
    sql, params = loaded.recorder.largest(profile_writer.POSTGRES_LOOKUP, 0)
    assert len(params[0]) >= BATCH // 2
    plan = postgres_plan(loaded.engine, sql, params, mode)
    assert no_sequential_scan(plan), table_scans(plan)
    assert probes(plan, "profiles", "tenant_id", "profile_id"), table_scans(plan)


@pytest.mark.parametrize("mode", PLAN_MODES)
def test_the_import_update_probes_by_primary_key(loaded: Loaded, mode: str) -> None:
    sql, params = loaded.recorder.largest("UPDATE profiles", 1)
    plan = postgres_plan(loaded.engine, sql, params, mode)
    assert no_sequential_scan(plan), table_scans(plan)
    assert probes(plan, "profiles", "id"), table_scans(plan)


@pytest.mark.parametrize("mode", PLAN_MODES)
def test_the_import_new_memberships_scan_nothing(loaded: Loaded, mode: str) -> None:
    sql, params = loaded.recorder.largest(profile_writer.POSTGRES_ADD_MEMBERS, 3)
    plan = postgres_plan(loaded.engine, sql, params, mode)
    assert no_sequential_scan(plan), table_scans(plan)


@pytest.mark.parametrize("mode", PLAN_MODES)
def test_the_contents_joined_into_lines_keep_their_page_plans(loaded: Loaded, mode: str) -> None:
    """A dense page of contents, joined into lines, is still one merge join of the two keys,
    with no sort; a sparse one still probes the profiles' key from its stretch of the
    segment's."""
    first, last = ROWS + 1_001, ROWS + 2_000
    dense = postgres_plan(
        loaded.engine,
        pg(lines_sql(POSTGRES_DENSE_CONTENTS_SQL, CONTENTS)),
        (loaded.segment_id, loaded.tenant_id, first, last, first, last),
        mode,
        MERGE_JOIN_ONLY,
    )
    kinds = [node["Node Type"] for node in plan_nodes(dense)]
    assert kinds.count("Merge Join") == 1, kinds
    for kind in ("Nested Loop", "Hash Join", "Sort"):
        assert kind not in kinds, kinds
    assert no_sequential_scan(dense), table_scans(dense)
    sparse = postgres_plan(
        loaded.engine,
        pg(lines_sql(POSTGRES_CONTENTS_SQL, CONTENTS)),
        (loaded.segment_id, loaded.tenant_id, first, last),
        mode,
        MERGE_JOIN_ONLY,
    )
    assert_walks_a_page_of_the_segments_key(sparse)
