"""Jobs keep their live progress (phase, done of total, in which unit, since when, last write),
written by the worker and read by the API from another process.

Revision ID: 0017
Revises: 0016
Create Date: 2026-12-05
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0017"
down_revision = "0016"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("audience_sync_jobs", schema=None) as batch_op:
        batch_op.add_column(sa.Column("progress_phase", sa.String(length=16), nullable=True))
        batch_op.add_column(sa.Column("progress_unit", sa.String(length=16), nullable=True))
        batch_op.add_column(
            sa.Column("progress_done", sa.BigInteger(), server_default="0", nullable=False)
        )
        batch_op.add_column(sa.Column("progress_total", sa.BigInteger(), nullable=True))
        batch_op.add_column(
            sa.Column("progress_started_at", sa.DateTime(timezone=True), nullable=True)
        )
        batch_op.add_column(sa.Column("progress_at", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("audience_sync_jobs", schema=None) as batch_op:
        for name in (
            "progress_at",
            "progress_started_at",
            "progress_total",
            "progress_done",
            "progress_unit",
            "progress_phase",
        ):
            batch_op.drop_column(name)
