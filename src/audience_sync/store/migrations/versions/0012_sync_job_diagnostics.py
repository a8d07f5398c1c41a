"""Per-identifier diagnostics of a sync job: which profile's value of which field was dropped or
refused, why, and the value masked (never the raw value); bounded per job by the sync.

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-05
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "sync_job_diagnostics",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("tenant_id", sa.Integer(), nullable=False),
        sa.Column("job_id", sa.Uuid(), nullable=False),
        sa.Column("profile_id", sa.String(length=255), nullable=True),
        sa.Column("field", sa.String(length=32), nullable=True),
        sa.Column("reason", sa.String(length=64), nullable=False),
        sa.Column("masked_value", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(
            ["job_id"],
            ["audience_sync_jobs.id"],
            name=op.f("fk_sync_job_diagnostics_job_id_audience_sync_jobs"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["tenant_id"],
            ["tenants.id"],
            name=op.f("fk_sync_job_diagnostics_tenant_id_tenants"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_sync_job_diagnostics")),
    )
    op.create_index(
        "ix_sync_job_diagnostics_job", "sync_job_diagnostics", ["tenant_id", "job_id", "id"]
    )
    op.create_index(op.f("ix_sync_job_diagnostics_job_id"), "sync_job_diagnostics", ["job_id"])


def downgrade() -> None:
    op.drop_index(op.f("ix_sync_job_diagnostics_job_id"), table_name="sync_job_diagnostics")
    op.drop_index("ix_sync_job_diagnostics_job", table_name="sync_job_diagnostics")
    op.drop_table("sync_job_diagnostics")
