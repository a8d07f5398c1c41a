"""PostgreSQL: the snapshot's and the member state's parts are stored out of line uncompressed.

Their `data` is LZ4 Arrow IPC, already compressed. With the default storage (EXTENDED)
PostgreSQL first tries to compress each value with pglz before moving it to TOAST; on a part of
~15 MB that attempt fails after reading all of it, and it made a part's insert ~5× slower
(2.2 s against 0.4 s, measured on the test server; docs/performance.md). EXTERNAL keeps the
values out of line without the attempt. Rows already written keep their storage and read as
before. SQLite has no such setting: nothing to do there.

Revision ID: 0022
Revises: 0021
Create Date: 2026-12-05
"""

from __future__ import annotations

from alembic import op

revision = "0022"
down_revision = "0021"
branch_labels = None
depends_on = None

TABLES = ("audience_snapshot_parts", "audience_member_state")


def upgrade() -> None:
    set_storage("EXTERNAL")


def downgrade() -> None:
    set_storage("EXTENDED")


def set_storage(storage: str) -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    for table in TABLES:
        op.execute(f"ALTER TABLE {table} ALTER COLUMN data SET STORAGE {storage}")
