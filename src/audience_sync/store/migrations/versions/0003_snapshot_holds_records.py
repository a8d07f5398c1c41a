"""The snapshot holds whole records as sent (multi-key rows), not single identifiers.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-28
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "audience_snapshot_records",
        sa.Column("audience_id", sa.Uuid(), nullable=False),
        sa.Column("record_hash", sa.String(length=64), nullable=False),
        sa.Column("tenant_id", sa.Integer(), nullable=False),
        sa.Column("record", sa.Text(), nullable=False),
        sa.Column("confirmed_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["audience_id"],
            ["platform_audiences.id"],
            name=op.f("fk_audience_snapshot_records_audience_id_platform_audiences"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["tenant_id"],
            ["tenants.id"],
            name=op.f("fk_audience_snapshot_records_tenant_id_tenants"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint(
            "audience_id", "record_hash", name=op.f("pk_audience_snapshot_records")
        ),
    )
    op.drop_table("audience_snapshot_entries")


def downgrade() -> None:
    op.create_table(
        "audience_snapshot_entries",
        sa.Column("audience_id", sa.Uuid(), nullable=False),
        sa.Column("key", sa.String(length=32), nullable=False),
        sa.Column("value", sa.String(length=128), nullable=False),
        sa.Column("tenant_id", sa.Integer(), nullable=False),
        sa.Column("confirmed_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["audience_id"],
            ["platform_audiences.id"],
            name=op.f("fk_audience_snapshot_entries_audience_id_platform_audiences"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["tenant_id"],
            ["tenants.id"],
            name=op.f("fk_audience_snapshot_entries_tenant_id_tenants"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint(
            "audience_id", "key", "value", name=op.f("pk_audience_snapshot_entries")
        ),
    )
    op.drop_table("audience_snapshot_records")
