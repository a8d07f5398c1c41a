"""Parts stored smaller: PostgreSQL stores them out of line uncompressed; record hashes as bytes.

Their `data` is LZ4 Arrow IPC, already compressed. With the default storage (EXTENDED)
PostgreSQL first tries to compress each value with pglz before moving it to TOAST; on a part of
~15 MB that attempt fails after reading all of it, and it made a part's insert ~5× slower
(2.2 s against 0.4 s, measured on the test server; docs/performance.md). EXTERNAL keeps the
values out of line without the attempt. Rows already written keep their storage and read as
before. SQLite has no such setting: nothing to do there.

From this revision on, a snapshot part stores each `record_hash` as its 32 bytes rather than 64
hex digits (`store.snapshot.stored_hashes`); parts written before still read, so the upgrade
rewrites nothing. The downgrade writes the hashes of the newer parts back as hex text, which is
all the code before this revision reads.

Revision ID: 0022
Revises: 0021
Create Date: 2026-12-05
"""

from __future__ import annotations

import io

import polars as pl
import sqlalchemy as sa
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
    hashes_as_text()


def set_storage(storage: str) -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    for table in TABLES:
        op.execute(f"ALTER TABLE {table} ALTER COLUMN data SET STORAGE {storage}")


def hashes_as_text() -> None:
    """Every added part whose `record_hash` is bytes, written again with it as hex text (the
    same LZ4 Arrow IPC, the same columns), a part at a time."""
    bind = op.get_bind()
    parts = sa.table(
        "audience_snapshot_parts",
        sa.column("id", sa.Integer()),
        sa.column("removes", sa.Boolean()),
        sa.column("data", sa.LargeBinary()),
    )
    ids = bind.scalars(sa.select(parts.c.id).where(parts.c.removes.is_(False))).all()
    for part in ids:
        data: bytes = bind.execute(sa.select(parts.c.data).where(parts.c.id == part)).scalar_one()
        if pl.read_ipc_schema(io.BytesIO(data)).get("record_hash") != pl.Binary:
            continue
        frame = pl.read_ipc(io.BytesIO(data))
        out = io.BytesIO()
        frame.with_columns(pl.col("record_hash").bin.encode("hex")).write_ipc(
            out, compression="lz4"
        )
        bind.execute(sa.update(parts).where(parts.c.id == part).values(data=out.getvalue()))
