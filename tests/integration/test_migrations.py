"""Migrations run unchanged on SQLite and PostgreSQL and produce exactly the model's schema."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import Engine, inspect

from audience_sync.store import db
from audience_sync.store.tables import Base

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
