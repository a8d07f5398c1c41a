"""Per-audience member state (what each member produced when last prepared, a cache); the
snapshot's key leads with the tenant, so reading an audience's hashes uses the key alone.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-29
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "audience_member_state",
        sa.Column("audience_id", sa.Uuid(), nullable=False),
        sa.Column("part", sa.Integer(), nullable=False),
        sa.Column("tenant_id", sa.Integer(), nullable=False),
        sa.Column("fingerprint", sa.String(length=64), nullable=False),
        sa.Column("data", sa.LargeBinary(), nullable=False),
        sa.Column("prepared_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["audience_id"],
            ["platform_audiences.id"],
            name=op.f("fk_audience_member_state_audience_id_platform_audiences"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["tenant_id"],
            ["tenants.id"],
            name=op.f("fk_audience_member_state_tenant_id_tenants"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("audience_id", "part", name=op.f("pk_audience_member_state")),
    )
    _snapshot_key("tenant_id", "audience_id", "record_hash")


def downgrade() -> None:
    _snapshot_key("audience_id", "record_hash")
    op.drop_table("audience_member_state")


def _snapshot_key(*columns: str) -> None:
    name = op.f("pk_audience_snapshot_records")
    with op.batch_alter_table("audience_snapshot_records", schema=None) as batch_op:
        batch_op.drop_constraint(name, type_="primary")
        batch_op.create_primary_key(name, list(columns))
