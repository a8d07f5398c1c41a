"""Drop the (tenant_id, type, value) index of profile_identifiers.

No query reads identifiers by value (the syncs read them by profile, and steer SQLite off this
index with `+tenant_id`), while every imported identifier paid for it: about 40% of the time of
writing an identifier on SQLite. An import of a million profiles writes ~2.6 million of them.

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-05
"""

from __future__ import annotations

from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.drop_index("ix_profile_identifiers_tenant_type_value", table_name="profile_identifiers")


def downgrade() -> None:
    op.create_index(
        "ix_profile_identifiers_tenant_type_value",
        "profile_identifiers",
        ["tenant_id", "type", "value"],
        unique=False,
    )
