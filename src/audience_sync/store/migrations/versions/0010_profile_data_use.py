"""Profiles keep each member's data-use choices: Google consent (ad user data, ad
personalization) and Meta Limited Data Use.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-05
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None

COLUMNS = ("consent_ad_user_data", "consent_ad_personalization", "limited_data_use")


def upgrade() -> None:
    with op.batch_alter_table("profiles", schema=None) as batch_op:
        for name in COLUMNS:
            batch_op.add_column(sa.Column(name, sa.String(length=16), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("profiles", schema=None) as batch_op:
        for name in reversed(COLUMNS):
            batch_op.drop_column(name)
