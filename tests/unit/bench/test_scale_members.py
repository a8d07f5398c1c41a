"""`sync-10m` builds its members in SQL (`bench_scale.profiles_sql`): the very rows
`bench_sync.profile_rows` inserts, so its figures are of the same member set."""

from __future__ import annotations

import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Row, create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import OperationalError

sys.path.insert(0, str(Path(__file__).resolve().parents[3]))  # the repository: `benchmarks`

from benchmarks.bench_scale import load_members, vip_segment
from benchmarks.bench_sync import insert_members
from tests.conftest import POSTGRES_URL, service_unavailable

from audience_sync.store import db

MEMBERS = (
    "SELECT m.profile_pk, m.tenant_id, m.added_at, s.name FROM segment_members m "
    "JOIN segments s ON s.id = m.segment_id ORDER BY m.profile_pk"
)


@pytest.fixture(params=["sqlite", "postgresql"])
def two_databases(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[str, str]]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'a.db'}", f"sqlite:///{tmp_path / 'b.db'}"
        return
    admin_url = make_url(POSTGRES_URL).set(drivername="postgresql+psycopg")
    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    names = [f"bench_scale_test_{uuid.uuid4().hex[:8]}" for _ in range(2)]
    try:
        with admin.connect() as connection:
            for name in names:
                connection.execute(text(f'CREATE DATABASE "{name}"'))
    except OperationalError as exc:
        admin.dispose()
        service_unavailable(f"PostgreSQL unreachable: {exc.orig}")
    try:
        urls = [admin_url.set(database=n).render_as_string(hide_password=False) for n in names]
        yield urls[0], urls[1]
    finally:
        with admin.connect() as connection:
            for name in names:
                connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def rows_of(url: str) -> tuple[list[Row[tuple[object, ...]]], list[Row[tuple[object, ...]]]]:
    engine = db.make_engine(url)
    with engine.connect() as connection:
        profiles = list(connection.execute(text("SELECT * FROM profiles ORDER BY id")))
        members = list(connection.execute(text(MEMBERS)))
    engine.dispose()
    return profiles, members


def inserted(url: str, rows: int) -> None:
    """The reference: `profile_rows`' rows inserted from Python (`bench_sync.insert_members`)."""
    engine = db.make_engine(url)
    tenant_id, segment_id = vip_segment(engine)
    insert_members(engine, tenant_id, segment_id, 1, rows + 1)
    engine.dispose()


def test_the_members_made_in_sql_are_those_profile_rows_makes(
    two_databases: tuple[str, str],
) -> None:
    reference, fast = two_databases
    inserted(reference, 1_500)
    load_members(fast, 1_500)
    assert rows_of(fast) == rows_of(reference)
    assert len(rows_of(fast)[0]) == 1_500
