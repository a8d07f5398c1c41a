"""A job's diagnostics name their profiles by primary key, on SQLite and on PostgreSQL tables
without statistics (issue 23, ten million members).

`DiagnosticsRepository.profile_ids` looks up the customer's ids of up to 10,000 entries' profiles
when a run ends. Written `tenant_id = ? AND id IN (…)`, SQLite planned it as a search of the
`(tenant_id, profile_id)` index on the tenant alone, and so did PostgreSQL on a never-analyzed
table (a Bitmap Index Scan of the tenant's whole stretch, the list as a filter): every chunk read
every profile of the tenant, ~10 s a run at 4 million profiles. Each statement it runs is
EXPLAINed here with its own parameters.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, insert
from tests.integration.sources.test_import_plans import fresh_postgres, plan_nodes
from tests.integration.test_job_read_plans import table_reads

from audience_sync.store import db
from audience_sync.store.diagnostics import IN_CHUNK, DiagnosticsRepository
from audience_sync.store.tables import Profile

PROFILES = 25_000  # a tenant: on fewer, narrower rows PostgreSQL rightly reads the table whole


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def loaded(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Engine]:
    """Two tenants (1 and 2) of `PROFILES` profiles each, pks interleaved."""
    if request.param == "sqlite":
        path = tmp_path / "plans.db"
        shutil.copy(request.getfixturevalue("sqlite_template"), path)
        engine = db.make_engine(f"sqlite:///{path}")
        fill(engine)
        yield engine
        engine.dispose()
        return
    with fresh_postgres() as engine:
        fill(engine)
        yield engine


def fill(engine: Engine) -> None:
    rows = [
        {
            "id": pk,
            "tenant_id": 1 + pk % 2,
            "profile_id": f"p-{pk}",
            "content_hash": "0" * 64,
            "identifiers": "e" * 300,  # a profile's width: the table's pages weigh on the plan
        }
        for pk in range(1, 2 * PROFILES + 1)
    ]
    with engine.begin() as connection:
        connection.execute(insert(Profile.__table__), rows)


def lookups(engine: Engine, tenant_id: int, pks: list[int]) -> tuple[dict[int, str], list[Any]]:
    """What `profile_ids` answered, and the statements it ran with their parameters."""
    found: dict[int, str] = {}

    def read(session: Any) -> None:
        found.update(DiagnosticsRepository(session, tenant_id).profile_ids(pks))

    return found, table_reads(engine, "profiles", read)


def sqlite_plan(engine: Engine, statement: str, parameters: Any) -> list[str]:
    with engine.connect() as connection:
        rows = connection.exec_driver_sql(f"EXPLAIN QUERY PLAN {statement}", parameters)
        return [str(row[-1]) for row in rows]


def postgres_scans(engine: Engine, statement: str, parameters: Any) -> list[tuple[str, str]]:
    """(node type, index name or else table) of each scan in the plan."""
    with engine.connect() as connection:
        plan = connection.exec_driver_sql(f"EXPLAIN (FORMAT JSON) {statement}", parameters)
        root = plan.scalar_one()[0]["Plan"]
    return [
        (node["Node Type"], node.get("Index Name", node.get("Relation Name", "")))
        for node in plan_nodes(root)
        if node["Node Type"].endswith("Scan")
    ]


def test_a_jobs_entries_find_their_profiles_by_primary_key(loaded: Engine) -> None:
    engine = loaded
    # Both tenants' pks asked, in three chunks: only tenant 2's (the odd pks) are answered.
    pks = list(range(1, 2 * IN_CHUNK + 200))
    found, statements = lookups(engine, 2, pks)
    assert found == {pk: f"p-{pk}" for pk in pks if pk % 2 == 1}
    assert len(statements) == 3
    for statement, parameters in statements:
        if engine.dialect.name == "sqlite":
            plan = sqlite_plan(engine, statement, parameters)
            assert plan == ["SEARCH profiles USING INTEGER PRIMARY KEY (rowid=?)"], plan
        else:
            scans = postgres_scans(engine, statement, parameters)
            indexes = {name for kind, name in scans if "Index" in kind}
            assert indexes == {"pk_profiles"}, scans
            assert ("Seq Scan", "profiles") not in scans, scans
