"""The API's reads of an audience's jobs keep the audience's index on PostgreSQL tables without
statistics (issue 23, the API under load).

`GET /audiences/{id}/jobs` and `GET /audiences/{id}/health` read one audience's jobs. Written with
`audience_sync_jobs.tenant_id = ?` (and health with `status IN (…)`), they were planned, on a
table never analyzed (autovacuum off), as a BitmapAnd of the tenant's whole stretch of
`ix_audience_sync_jobs_tenant_id` (and every completed job of every tenant in
`ix_audience_sync_jobs_status`) with the audience's index: 42-137 ms and 290-550 ms at 200,000
jobs in a tenant, growing with the tenant's history. Each statement is EXPLAINed here with the
parameters it ran with: it must read the jobs by `ix_audience_sync_jobs_audience` only.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from typing import Any

import pytest
from sqlalchemy import Engine, event, insert, select, update
from tests.integration.sources.test_import_plans import fresh_postgres, plan_nodes

from audience_sync.domain.models import SyncOperation, SyncPlatform, SyncStatus, TriggeredBy
from audience_sync.services import overview
from audience_sync.services.history import POINTS
from audience_sync.services.history import sync_points as history_points
from audience_sync.store import db
from audience_sync.store.alerts import AlertRepository
from audience_sync.store.repositories import (
    AudienceRepository,
    SegmentRepository,
    SyncJobRepository,
    TenantRepository,
)
from audience_sync.store.tables import AudienceSyncJob, PlatformAudience
from audience_sync.sync.health import audience_health

pytestmark = pytest.mark.postgres

NOW = datetime(2026, 12, 5, tzinfo=UTC)
JOBS = 3_000  # per audience; three audiences, two tenants
AUDIENCE_INDEX = "ix_audience_sync_jobs_audience"
WHOLE_TABLE_INDEXES = {"ix_audience_sync_jobs_tenant_id", "ix_audience_sync_jobs_status"}


@pytest.fixture(scope="module")
def loaded() -> Iterator[tuple[Engine, int, uuid.UUID]]:
    with fresh_postgres() as engine:
        factory = db.session_factory(engine)
        audiences: list[tuple[int, uuid.UUID]] = []
        with db.transaction(factory) as session:
            for slug, count in (("acme", 2), ("globex", 1)):
                tenant = TenantRepository(session).create(slug)
                segment = SegmentRepository(session, tenant.id).ensure("All")
                for n in range(count):
                    audience = AudienceRepository(session, tenant.id).add(
                        PlatformAudience(
                            segment_id=segment.id,
                            platform=SyncPlatform.META,
                            platform_audience_name=f"{slug} {n}",
                            ad_account_id="act_1",
                        )
                    )
                    audiences.append((tenant.id, audience.id))
        with engine.begin() as connection:
            for tenant_id, audience_id in audiences:
                rows = history(tenant_id, audience_id)
                connection.execute(insert(AudienceSyncJob.__table__), rows)
        tenant_id, audience_id = audiences[0]
        yield engine, tenant_id, audience_id


def history(tenant_id: int, audience_id: uuid.UUID) -> list[dict[str, Any]]:
    rows = []
    for n in range(JOBS):
        ended = NOW - timedelta(hours=JOBS - n)
        rows.append(
            {
                "id": uuid.uuid4(), "tenant_id": tenant_id, "platform_audience_id": audience_id,
                "operation": SyncOperation.UPDATE,
                "status": SyncStatus.FAILED if n % 9 == 0 else SyncStatus.COMPLETED,
                "triggered_by": TriggeredBy.SCHEDULED, "started_at": ended,
                "completed_at": ended, "next_retry_at": ended, "details": {},
                "match_rate": None if n % 9 == 0 else rate_of(n),
                "created_at": ended, "updated_at": ended,
            }
        )  # fmt: skip
    return rows


def rate_of(n: int) -> float:
    """The match rate of the `n`th job of `history` (when it completed)."""
    return 0.5 + n % 7 / 100


def job_reads(engine: Engine, read: Any) -> list[tuple[str, Any]]:
    """The statements reading `audience_sync_jobs` that `read(session)` ran, with their
    parameters."""
    return table_reads(engine, "audience_sync_jobs", read)


def table_reads(engine: Engine, table: str, read: Any) -> list[tuple[str, Any]]:
    """The SELECTs naming `table` that `read(session)` ran (in a transaction of its own), with
    their parameters."""
    seen: list[tuple[str, Any]] = []

    def record(_conn: object, _cursor: object, statement: str, parameters: Any, *_: object) -> None:
        if statement.lstrip().upper().startswith("SELECT") and table in statement:
            seen.append((statement, parameters))

    event.listen(engine, "before_cursor_execute", record)
    try:
        with db.transaction(db.session_factory(engine)) as session:
            read(session)
    finally:
        event.remove(engine, "before_cursor_execute", record)
    return seen


def job_indexes(engine: Engine, statement: str, parameters: Any) -> list[str]:
    """How the plan reads `audience_sync_jobs`: the index of each node that reads it
    (`Seq Scan` for a sequential read)."""
    with engine.connect() as connection:
        plan = connection.exec_driver_sql(f"EXPLAIN (FORMAT JSON) {statement}", parameters)
        root = plan.scalar_one()[0]["Plan"]
    return [
        node.get("Index Name", node["Node Type"])
        for node in plan_nodes(root)
        if node["Node Type"] in SCANS and reads_jobs(node)
    ]


SCANS = ("Seq Scan", "Index Scan", "Index Only Scan", "Bitmap Index Scan")


def reads_jobs(node: dict[str, Any]) -> bool:
    """A scan of `audience_sync_jobs` (a Bitmap Index Scan names only its index)."""
    index = str(node.get("Index Name", ""))
    own_index = index.startswith(("ix_", "uq_", "pk_")) and "_audience_sync_jobs" in index
    return node.get("Relation Name") == "audience_sync_jobs" or own_index


def assert_by_audience_index(engine: Engine, reads: list[tuple[str, Any]]) -> None:
    assert reads
    for statement, parameters in reads:
        indexes = job_indexes(engine, statement, parameters)
        assert indexes == [AUDIENCE_INDEX], (statement, indexes)
        assert not WHOLE_TABLE_INDEXES & set(indexes)


def test_an_audiences_job_list_reads_its_jobs_by_the_audience_index(
    loaded: tuple[Engine, int, uuid.UUID],
) -> None:
    engine, tenant_id, audience_id = loaded
    found: list[AudienceSyncJob] = []

    def read(session: Any) -> None:
        found.extend(SyncJobRepository(session, tenant_id).for_audience(audience_id, 50))

    assert_by_audience_index(engine, job_reads(engine, read))
    assert len(found) == 50
    assert [j.created_at for j in found] == sorted((j.created_at for j in found), reverse=True)
    assert found[0].created_at == NOW - timedelta(hours=1)


def test_an_audiences_health_reads_its_jobs_by_the_audience_index(
    loaded: tuple[Engine, int, uuid.UUID],
) -> None:
    engine, tenant_id, audience_id = loaded
    health: dict[str, Any] = {}

    def read(session: Any) -> None:
        health.update(audience_health(session, tenant_id, audience_id, NOW))

    assert_by_audience_index(engine, job_reads(engine, read))
    # 30 days = the last 720 hourly jobs; every ninth failed (n % 9 == 0, n from 2,280 to 2,999).
    assert health["syncs_30d"] == 720
    failed = sum(1 for n in range(JOBS - 720, JOBS) if n % 9 == 0)
    assert health["sync_success_rate"] == pytest.approx((720 - failed) / 720)


def test_another_tenants_audience_has_no_jobs_to_list(
    loaded: tuple[Engine, int, uuid.UUID],
) -> None:
    engine, tenant_id, audience_id = loaded
    with db.transaction(db.session_factory(engine)) as session:
        assert SyncJobRepository(session, tenant_id + 1).for_audience(audience_id) == []


def test_an_audiences_sync_history_reads_its_jobs_by_the_audience_index(
    loaded: tuple[Engine, int, uuid.UUID],
) -> None:
    """The dashboard's size and match-rate charts (`services.history.sync_points`)."""
    engine, tenant_id, audience_id = loaded
    service: Any = SimpleNamespace(factory=db.session_factory(engine))
    points: list[Any] = []

    def read(session: Any) -> None:
        points.extend(history_points(service, tenant_id, audience_id))

    assert_by_audience_index(engine, job_reads(engine, read))
    assert len(points) == POINTS
    assert points[-1].at == NOW - timedelta(hours=1)
    assert [p.at for p in points] == sorted(p.at for p in points)


def test_the_audiences_page_reads_each_audiences_newest_jobs_by_its_index(
    loaded: tuple[Engine, int, uuid.UUID],
) -> None:
    """The dashboard's Audiences page (`services.overview`): each audience's last ended job and
    the match rates of its last two completed syncs, read backwards through the audience's
    index and stopped there, not ranked over the tenant's whole history."""
    engine, tenant_id, audience_id = loaded
    service: Any = SimpleNamespace(factory=db.session_factory(engine), clock=lambda: NOW)
    rows: list[overview.AudienceRow] = []

    def read(session: Any) -> None:
        rows.extend(overview.audience_rows(service, tenant_id))

    newest = [read for read in job_reads(engine, read) if "ORDER BY" in read[0]]
    assert len(newest) == 1
    indexes = job_indexes(engine, *newest[0])
    assert indexes
    assert set(indexes) == {AUDIENCE_INDEX}, indexes
    row = next(r for r in rows if r.id == audience_id)
    last = JOBS - 1  # the newest job completed (last % 9 != 0), as did the one before
    assert row.match_rate_change == pytest.approx(rate_of(last) - rate_of(last - 1))
    with engine.connect() as connection:
        newest_job = connection.scalar(
            select(AudienceSyncJob.id)
            .where(AudienceSyncJob.platform_audience_id == audience_id)
            .order_by(AudienceSyncJob.created_at.desc())
            .limit(1)
        )
    assert row.last_job_id == newest_job


def test_the_alert_rules_read_each_audiences_newest_jobs_by_its_index(
    loaded: tuple[Engine, int, uuid.UUID],
) -> None:
    """The alert rules' reads (`store.alerts`): stale audiences and the jobs to judge at each
    tick, the sync before a job at its end."""
    engine, tenant_id, audience_id = loaded
    with engine.begin() as connection:
        connection.execute(
            update(PlatformAudience)
            .where(PlatformAudience.tenant_id == tenant_id)
            .values(auto_sync=True)
        )
    found: dict[str, Any] = {}

    def read(session: Any) -> None:
        repo = AlertRepository(session, tenant_id)
        found["scheduled"] = dict(repo.scheduled_audiences())
        found["latest"] = repo.latest_finished(NOW - timedelta(hours=48))
        newest = next(j for j in found["latest"] if j.platform_audience_id == audience_id)
        found["newest"] = newest.created_at
        found["previous"] = repo.previous_completed(newest).created_at

    reads = job_reads(engine, read)
    assert len(reads) == 3
    for statement, parameters in reads:
        indexes = set(job_indexes(engine, statement, parameters))
        assert AUDIENCE_INDEX in indexes, (statement, indexes)
        assert indexes <= {AUDIENCE_INDEX, "pk_audience_sync_jobs"}, (statement, indexes)
    last = JOBS - 1  # the newest job completed, as did the one before (n % 9 != 0)
    (audience,) = [a for a in found["scheduled"] if a.id == audience_id]
    assert found["scheduled"][audience] == NOW - timedelta(hours=JOBS - last)
    assert found["newest"] == NOW - timedelta(hours=JOBS - last)
    assert found["previous"] == NOW - timedelta(hours=JOBS - last + 1)
    assert {j.platform_audience_id for j in found["latest"]} == {a.id for a in found["scheduled"]}


def test_the_audiences_pages_30_day_counts_read_only_the_windows_jobs(
    loaded: tuple[Engine, int, uuid.UUID],
) -> None:
    """The Audiences page's header (`overview.summary`): the tenant's real syncs that ended in
    30 days, read through the tenant's completion-time index (the window's jobs), not through
    the tenant's index (its whole history) or the status index (every tenant's)."""
    engine, tenant_id, _ = loaded
    service: Any = SimpleNamespace(factory=db.session_factory(engine), clock=lambda: NOW)
    found: list[overview.Summary] = []

    def read(session: Any) -> None:
        found.append(overview.summary(service, tenant_id, []))

    reads = job_reads(engine, read)
    assert len(reads) == 1
    indexes = job_indexes(engine, *reads[0])
    assert indexes == ["ix_audience_sync_jobs_tenant_completed"], indexes
    # Two audiences in this tenant, each with 720 hourly jobs in 30 days, every ninth failed.
    failed = sum(1 for n in range(JOBS - 720, JOBS) if n % 9 == 0)
    assert found[0].syncs_30d == 2 * 720
    assert found[0].success_rate_30d == pytest.approx((720 - failed) / 720)
