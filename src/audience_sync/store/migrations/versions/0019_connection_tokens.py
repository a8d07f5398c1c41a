"""Connections know their token's expiry, the granted scopes, and a version for safe refreshes.

Revision ID: 0019
Revises: 0018
Create Date: 2026-12-05
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0019"
down_revision = "0018"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("platform_connections", schema=None) as batch_op:
        batch_op.add_column(sa.Column("token_expires_at", sa.DateTime(timezone=True)))
        batch_op.add_column(sa.Column("scopes", sa.Text()))
        batch_op.add_column(
            sa.Column("credentials_version", sa.Integer(), nullable=False, server_default="0")
        )


def downgrade() -> None:
    with op.batch_alter_table("platform_connections", schema=None) as batch_op:
        batch_op.drop_column("credentials_version")
        batch_op.drop_column("scopes")
        batch_op.drop_column("token_expires_at")
