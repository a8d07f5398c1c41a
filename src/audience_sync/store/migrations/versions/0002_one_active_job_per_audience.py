"""One pending-or-running job per audience (I3), enforced by a partial unique index.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-28
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("audience_sync_jobs", schema=None) as batch_op:
        batch_op.create_index(
            "uq_audience_sync_jobs_one_active",
            ["platform_audience_id"],
            unique=True,
            sqlite_where=sa.text("status IN ('pending', 'running')"),
            postgresql_where=sa.text("status IN ('pending', 'running')"),
        )


def downgrade() -> None:
    with op.batch_alter_table("audience_sync_jobs", schema=None) as batch_op:
        batch_op.drop_index(
            "uq_audience_sync_jobs_one_active",
            sqlite_where=sa.text("status IN ('pending', 'running')"),
            postgresql_where=sa.text("status IN ('pending', 'running')"),
        )
