"""Migrations run unchanged on SQLite and PostgreSQL and produce exactly the model's schema."""

from __future__ import annotations

import io
from datetime import UTC, datetime

import polars as pl
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import (
    DateTime,
    Engine,
    Integer,
    String,
    Text,
    Uuid,
    column,
    inspect,
    select,
    table,
    text,
)

from audience_sync.domain.models import SyncOperation, SyncPlatform, SyncStatus, TriggeredBy
from audience_sync.store import db
from audience_sync.store.repositories import (
    AudienceRepository,
    ProfileRepository,
    SegmentRepository,
    SyncJobRepository,
    TenantRepository,
)
from audience_sync.store.snapshot import SnapshotRepository
from audience_sync.store.tables import AudienceSyncJob, Base, PlatformAudience, SnapshotPart
from audience_sync.store.types import JSONType
from audience_sync.sync.plan import encode_record

NOW = datetime(2026, 11, 28, tzinfo=UTC)

SPEC_AUDIENCE_FIELDS = {
    "id", "tenant_id", "segment_id", "platform", "platform_audience_id",
    "platform_audience_name", "ad_account_id", "description", "auto_sync",
    "sync_interval_hours", "next_sync_at", "is_active", "last_sync_at", "last_sync_status",
    "last_sync_error", "platform_size", "matched_size", "match_rate",
}  # fmt: skip
SPEC_JOB_FIELDS = {
    "id", "tenant_id", "platform_audience_id", "operation", "status", "profiles_sent",
    "profiles_added", "profiles_removed", "profiles_failed", "match_rate", "started_at",
    "completed_at", "duration_ms", "error_message", "triggered_by", "triggered_by_user_id",
}  # fmt: skip


def test_the_migrated_schema_matches_the_models(engine: Engine) -> None:
    with engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        assert compare_metadata(context, Base.metadata) == []


def test_every_field_of_the_spec_models_is_a_column(engine: Engine) -> None:
    inspector = inspect(engine)
    audience_columns = {c["name"] for c in inspector.get_columns("platform_audiences")}
    job_columns = {c["name"] for c in inspector.get_columns("audience_sync_jobs")}
    assert audience_columns >= SPEC_AUDIENCE_FIELDS
    assert job_columns >= SPEC_JOB_FIELDS


def test_migrations_go_down_to_nothing_and_up_again(engine: Engine) -> None:
    db.downgrade(engine, "base")
    assert set(inspect(engine).get_table_names()) <= {"alembic_version"}
    db.upgrade(engine)
    assert set(Base.metadata.tables) <= set(inspect(engine).get_table_names())


def test_upgrading_twice_is_harmless(engine: Engine) -> None:
    db.upgrade(engine)
    db.upgrade(engine)
    assert db.is_migrated(engine)


def test_the_snapshot_records_move_into_parts_and_back(engine: Engine) -> None:
    """0007 moves each audience's snapshot rows into parts; its downgrade moves the held records
    (the fold of the parts, a removal included) back into rows."""
    factory = db.session_factory(engine)
    records = [encode_record([("EMAIL_SHA256", f"{i:064x}")]) for i in range(30)]
    with db.transaction(factory) as session:
        tenant_id = TenantRepository(session).get("default").id
        segment = SegmentRepository(session, tenant_id).ensure("VIP")
        audience_id = (
            AudienceRepository(session, tenant_id)
            .add(
                PlatformAudience(
                    segment_id=segment.id,
                    platform=SyncPlatform.SNAPCHAT,
                    platform_audience_name="VIP",
                    ad_account_id="a",
                )
            )
            .id
        )
    db.downgrade(engine, "0006")
    rows = table(
        "audience_snapshot_records",
        column("tenant_id", Integer()),
        column("audience_id", Uuid()),
        column("record_hash", String()),
        column("record", Text()),
        column("confirmed_at", DateTime(timezone=True)),
    )
    with engine.begin() as connection:
        connection.execute(
            rows.insert(),
            [
                {"tenant_id": tenant_id, "audience_id": audience_id, "record_hash": h,
                 "record": r, "confirmed_at": NOW}
                for h, r in records
            ],
        )  # fmt: skip
    db.upgrade(engine)
    with db.transaction(factory) as session:
        snapshot = SnapshotRepository(session, tenant_id)
        assert set(snapshot.records(audience_id).iter_rows()) == set(records)
        snapshot.confirm(audience_id, NOW, removed=[h for h, _ in records[:10]])
    db.downgrade(engine, "0006")
    with engine.connect() as connection:
        back = connection.execute(select(rows.c.record_hash, rows.c.record)).all()
    assert set(map(tuple, back)) == set(records[10:])
    db.upgrade(engine)


def test_identifiers_move_into_their_profiles_and_back(engine: Engine) -> None:
    """0014 folds each profile's identifier rows, in the order of their ids, into its text
    (a separator inside a value escaped); its downgrade makes the same rows again."""
    factory = db.session_factory(engine)
    with db.transaction(factory) as session:
        tenant_id = TenantRepository(session).get("default").id
    db.downgrade(engine, "0013")
    profiles = table(
        "profiles",
        column("id", Integer()),
        column("tenant_id", Integer()),
        column("profile_id", String()),
        column("traits", JSONType),
        column("content_hash", String()),
        column("created_at", DateTime(timezone=True)),
        column("updated_at", DateTime(timezone=True)),
    )
    identifiers = table(
        "profile_identifiers",
        column("id", Integer()),
        column("tenant_id", Integer()),
        column("profile_pk", Integer()),
        column("type", String()),
        column("value", String()),
        column("e164", String()),
        column("kind", String()),
    )
    rows = [  # (id, profile, type, value, e164, kind): ids out of the profiles' order
        (1, 2, "phone", "(415) 555-0123", "+14155550123", None),
        (2, 1, "email", "a@example.com", None, None),
        (3, 2, "email", "b@example.com", None, None),
        (4, 1, "external_id", "x\x1fy\x1ez\x1b", None, None),
        (5, 1, "mobile_id", "38400000-8cf0-11bd-b23e-10b96e40000d", None, "gaid"),
    ]
    with engine.begin() as connection:
        connection.execute(
            profiles.insert(),
            [
                {"id": pk, "tenant_id": tenant_id, "profile_id": f"P{pk}", "traits": {},
                 "content_hash": "0" * 64, "created_at": NOW, "updated_at": NOW}
                for pk in (1, 2, 3)
            ],
        )  # fmt: skip
        names = ("id", "profile_pk", "type", "value", "e164", "kind")
        connection.execute(
            identifiers.insert(),
            [{"tenant_id": tenant_id, **dict(zip(names, row, strict=True))} for row in rows],
        )
    db.upgrade(engine)
    with db.transaction(factory) as session:
        repo = ProfileRepository(session, tenant_id)
        assert repo.identifiers(1) == [r[2:] for r in (rows[1], rows[3], rows[4])]
        assert repo.identifiers(2) == [r[2:] for r in (rows[0], rows[2])]
        assert repo.identifiers(3) == []
    db.downgrade(engine, "0013")
    with engine.connect() as connection:
        back = connection.execute(
            select(*(identifiers.c[n] for n in names[1:])).order_by(identifiers.c.id)
        ).all()
    assert [tuple(r) for r in back] == [
        r[1:] for r in (rows[1], rows[3], rows[4], rows[0], rows[2])
    ]
    db.upgrade(engine)


PROGRESS_COLUMNS = {
    "progress_phase", "progress_unit", "progress_done", "progress_total",
    "progress_started_at", "progress_at",
}  # fmt: skip


def test_job_progress_columns_come_and_go_and_jobs_keep_their_rows(engine: Engine) -> None:
    """0017 adds the progress columns to the jobs (a job already there: phase unknown, 0
    done); its downgrade drops them and nothing else."""

    def job_columns() -> set[str]:
        return {c["name"] for c in inspect(engine).get_columns("audience_sync_jobs")}

    factory = db.session_factory(engine)
    with db.transaction(factory) as session:
        tenant_id = TenantRepository(session).get("default").id
        segment = SegmentRepository(session, tenant_id).ensure("VIP")
        audience_id = (
            AudienceRepository(session, tenant_id)
            .add(
                PlatformAudience(
                    segment_id=segment.id,
                    platform=SyncPlatform.SNAPCHAT,
                    platform_audience_name="VIP",
                    ad_account_id="a",
                )
            )
            .id
        )
        job = AudienceSyncJob(
            platform_audience_id=audience_id,
            operation=SyncOperation.UPDATE,
            status=SyncStatus.COMPLETED,
            triggered_by=TriggeredBy.MANUAL,
            progress_phase="finishing",
        )
        job_id = SyncJobRepository(session, tenant_id).add(job).id
    with_progress = job_columns()
    db.downgrade(engine, "0016")
    assert with_progress - job_columns() == PROGRESS_COLUMNS
    db.upgrade(engine)  # the job's row kept through both (SQLite copies the table each way)
    assert job_columns() == with_progress
    with db.transaction(factory) as session:
        job = SyncJobRepository(session, tenant_id).get(job_id)
        assert (job.progress_phase, job.progress_done, job.progress_total) == (None, 0, None)
        assert job.status is SyncStatus.COMPLETED


def test_parts_are_stored_external_and_earlier_parts_still_read(engine: Engine) -> None:
    """0022 stores the snapshot's and the member state's parts (already LZ4) without
    PostgreSQL's compression attempt, and new parts hold record hashes as bytes: a part written
    before it (hex hashes) reads the same after it; its downgrade writes the newer parts' hashes
    back as hex. SQLite has no storage setting."""
    factory = db.session_factory(engine)
    records = [encode_record([("EMAIL_SHA256", f"{i:064x}")]) for i in range(30)]
    db.downgrade(engine, "0021")
    assert storage(engine) == on_postgresql(engine, "x")
    with db.transaction(factory) as session:
        tenant_id = TenantRepository(session).get("default").id
        segment = SegmentRepository(session, tenant_id).ensure("VIP")
        audience = PlatformAudience(
            segment_id=segment.id,
            platform=SyncPlatform.SNAPCHAT,
            platform_audience_name="VIP",
            ad_account_id="a",
        )
        audience_id = AudienceRepository(session, tenant_id).add(audience).id
        SnapshotRepository(session, tenant_id).confirm(audience_id, NOW, added=records[:20])
    db.upgrade(engine)
    assert storage(engine) == on_postgresql(engine, "e")
    with db.transaction(factory) as session:
        snapshot = SnapshotRepository(session, tenant_id)
        snapshot.confirm(audience_id, NOW, added=records[20:])
        assert set(snapshot.records(audience_id).iter_rows()) == set(records)
    db.downgrade(engine, "0021")
    assert storage(engine) == on_postgresql(engine, "x")
    with engine.connect() as connection:
        stored = connection.scalars(select(SnapshotPart.data)).all()
    hashes = pl.concat([pl.read_ipc(io.BytesIO(data))["record_hash"] for data in stored])
    assert hashes.dtype == pl.String  # as the code before 0022 reads them
    assert set(hashes) == {h for h, _ in records}
    with db.transaction(factory) as session:
        held = SnapshotRepository(session, tenant_id).records(audience_id)
        assert set(held.iter_rows()) == set(records)
    db.upgrade(engine)


def storage(engine: Engine) -> set[str]:
    """The storage of the parts' `data` columns on PostgreSQL (`x` extended, `e` external);
    empty on SQLite."""
    if engine.dialect.name != "postgresql":
        return set()
    query = text(
        "SELECT attstorage FROM pg_attribute WHERE attname = 'data' AND attrelid IN "
        "('audience_snapshot_parts'::regclass, 'audience_member_state'::regclass)"
    )
    with engine.connect() as connection:
        return {str(value) for value in connection.scalars(query)}


def on_postgresql(engine: Engine, letter: str) -> set[str]:
    return {letter} if engine.dialect.name == "postgresql" else set()
