"""Store platforms as names without a CHECK constraint.

The platforms are those registered in the code (`connectors.registry`), built-in or added in a
package of their own: a list in the schema would make each new platform a migration. The
column type (`store.types.PlatformName`) checks a name on the way in.

SQLite cannot drop a constraint, and rebuilding these tables (what batch mode does) would
empty their children: with foreign keys on, dropping a parent table deletes its rows and
cascades. So on SQLite the constraint is taken out of the stored table definition, the way
SQLite documents for removing a CHECK constraint ("Making Other Kinds Of Table Schema
Changes", https://www.sqlite.org/lang_altertable.html): no row is touched.

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-05
"""

from __future__ import annotations

import re

import sqlalchemy as sa
from alembic import op

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None

TABLES = ("platform_connections", "platform_audiences", "exports")
BUILT_IN = ("meta", "google", "tiktok", "snapchat")


def upgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        _sqlite_drop_checks()
        return
    for table in TABLES:
        op.drop_constraint("sync_platform", table, type_="check")  # named by `NAMING`


def downgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        return  # the names stay unconstrained: no version before this one reads them otherwise
    allowed = ", ".join(f"'{name}'" for name in BUILT_IN)
    for table in TABLES:
        op.create_check_constraint("sync_platform", table, sa.text(f"platform IN ({allowed})"))


def _sqlite_drop_checks() -> None:
    bind = op.get_bind()
    version = bind.exec_driver_sql("PRAGMA schema_version").scalar_one()
    bind.exec_driver_sql("PRAGMA writable_schema=ON")
    for table in TABLES:
        sql = bind.exec_driver_sql(
            "SELECT sql FROM sqlite_master WHERE type = 'table' AND name = ?", (table,)
        ).scalar_one()
        check = rf",\s*CONSTRAINT ck_{table}_sync_platform CHECK \(platform IN \([^)]*\)\)"
        bind.exec_driver_sql(
            "UPDATE sqlite_master SET sql = ? WHERE type = 'table' AND name = ?",
            (re.sub(check, "", sql), table),
        )
    bind.exec_driver_sql(f"PRAGMA schema_version={int(version) + 1}")
    bind.exec_driver_sql("PRAGMA writable_schema=OFF")
