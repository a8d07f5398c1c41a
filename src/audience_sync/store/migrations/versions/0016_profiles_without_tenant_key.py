"""`profiles.tenant_id` loses its foreign key to `tenants`.

Why: on PostgreSQL the key's check of each row (a query and a row lock a profile) was a third
of a first import's `COPY`: a million profiles, ~2.5 s of the server's ~11 s, where the import
must stay within twice the time of reading the file and parsing its phones. A profile is written
only by the profile writer, under the tenant it has just resolved, and no tenant is ever deleted
(`store.tables.Profile`).

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-05
"""

from __future__ import annotations

from alembic import op

revision = "0016"
down_revision = "0015"
branch_labels = None
depends_on = None

KEY = "fk_profiles_tenant_id_tenants"


def upgrade() -> None:
    with op.batch_alter_table("profiles", schema=None) as batch_op:
        batch_op.drop_constraint(KEY, type_="foreignkey")


def downgrade() -> None:
    with op.batch_alter_table("profiles", schema=None) as batch_op:
        batch_op.create_foreign_key(KEY, "tenants", ["tenant_id"], ["id"], ondelete="CASCADE")
