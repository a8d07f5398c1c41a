"""Jobs keep the lease token of the run that holds them: every write of a run checks it in the
same statement, so a run whose job was reaped writes nothing (fenced runs).

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-05
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("audience_sync_jobs", schema=None) as batch_op:
        batch_op.add_column(sa.Column("lease_token", sa.String(length=32), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("audience_sync_jobs", schema=None) as batch_op:
        batch_op.drop_column("lease_token")
