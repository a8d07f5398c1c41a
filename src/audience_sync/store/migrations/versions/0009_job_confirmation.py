"""Jobs keep the confirmation of requests a platform processes after the job ends (Google):
its state, when to read the statuses next, the requests still processing, the reads so far;
and a partial index for the scheduler's due read.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-05
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

DUE = "confirmation = 'processing'"


def upgrade() -> None:
    with op.batch_alter_table("audience_sync_jobs", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("confirmation", sa.String(length=16), server_default="none", nullable=False)
        )
        batch_op.add_column(
            sa.Column("confirmation_next_at", sa.DateTime(timezone=True), nullable=True)
        )
        batch_op.add_column(
            sa.Column(
                "confirmation_requests",
                sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
                nullable=True,
            )
        )
        batch_op.add_column(
            sa.Column("confirmation_checks", sa.Integer(), server_default="0", nullable=False)
        )
        batch_op.create_index(
            "ix_audience_sync_jobs_confirmation_due",
            ["confirmation_next_at"],
            sqlite_where=sa.text(DUE),
            postgresql_where=sa.text(DUE),
        )


def downgrade() -> None:
    with op.batch_alter_table("audience_sync_jobs", schema=None) as batch_op:
        batch_op.drop_index(
            "ix_audience_sync_jobs_confirmation_due",
            sqlite_where=sa.text(DUE),
            postgresql_where=sa.text(DUE),
        )
        batch_op.drop_column("confirmation_checks")
        batch_op.drop_column("confirmation_requests")
        batch_op.drop_column("confirmation_next_at")
        batch_op.drop_column("confirmation")
