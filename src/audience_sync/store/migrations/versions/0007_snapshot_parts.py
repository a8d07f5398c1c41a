"""The snapshot kept as parts (one LZ4 Arrow IPC blob per confirmed chunk) instead of a row per
record under a random 64-digit key: see `store/snapshot.py`. The records move over.

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-30
"""

from __future__ import annotations

import io
from datetime import UTC, datetime

import polars as pl
import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

PART_ROWS = 1_000_000
OLD = sa.table(
    "audience_snapshot_records",
    sa.column("tenant_id", sa.Integer()),
    sa.column("audience_id", sa.Uuid()),
    sa.column("record_hash", sa.String()),
    sa.column("record", sa.Text()),
)


def upgrade() -> None:
    parts = op.create_table(
        "audience_snapshot_parts",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("tenant_id", sa.Integer(), nullable=False),
        sa.Column("audience_id", sa.Uuid(), nullable=False),
        sa.Column("removes", sa.Boolean(), nullable=False),
        sa.Column("rows", sa.Integer(), nullable=False),
        sa.Column("data", sa.LargeBinary(), nullable=False),
        sa.Column("confirmed_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["audience_id"],
            ["platform_audiences.id"],
            name=op.f("fk_audience_snapshot_parts_audience_id_platform_audiences"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["tenant_id"],
            ["tenants.id"],
            name=op.f("fk_audience_snapshot_parts_tenant_id_tenants"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_audience_snapshot_parts")),
    )
    op.create_index(
        "ix_audience_snapshot_parts_audience",
        "audience_snapshot_parts",
        ["tenant_id", "audience_id", "id"],
    )
    assert parts is not None
    _move_records(parts)
    op.drop_table("audience_snapshot_records")


def _move_records(parts: sa.Table) -> None:
    """Each audience's records as parts of `PART_ROWS` (k1, k2, record_hash, record)."""
    bind = op.get_bind()
    audiences = bind.execute(sa.select(OLD.c.tenant_id, OLD.c.audience_id).distinct()).all()
    now = datetime.now(UTC)
    for tenant_id, audience_id in audiences:
        rows = bind.execute(
            sa.select(OLD.c.record_hash, OLD.c.record).where(
                OLD.c.tenant_id == tenant_id, OLD.c.audience_id == audience_id
            )
        )
        while chunk := rows.fetchmany(PART_ROWS):
            frame = pl.DataFrame(chunk, schema=["record_hash", "record"], orient="row")
            digits = pl.col("record_hash").str
            keys = [
                digits.slice(16 * i, 16).str.to_integer(base=16, dtype=pl.UInt64).alias(name)
                for i, name in enumerate(("k1", "k2"))
            ]
            buffer = io.BytesIO()
            frame.select(*keys, "record_hash", "record").write_ipc(buffer, compression="lz4")
            bind.execute(
                parts.insert().values(
                    tenant_id=tenant_id,
                    audience_id=audience_id,
                    removes=False,
                    rows=len(frame),
                    data=buffer.getvalue(),
                    confirmed_at=now,
                )
            )


def downgrade() -> None:
    op.create_table(
        "audience_snapshot_records",
        sa.Column("audience_id", sa.Uuid(), nullable=False),
        sa.Column("record_hash", sa.String(length=64), nullable=False),
        sa.Column("tenant_id", sa.Integer(), nullable=False),
        sa.Column("record", sa.Text(), nullable=False),
        sa.Column("confirmed_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["audience_id"],
            ["platform_audiences.id"],
            name=op.f("fk_audience_snapshot_records_audience_id_platform_audiences"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["tenant_id"],
            ["tenants.id"],
            name=op.f("fk_audience_snapshot_records_tenant_id_tenants"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint(
            "tenant_id", "audience_id", "record_hash", name=op.f("pk_audience_snapshot_records")
        ),
    )
    _move_parts_back()
    op.drop_index("ix_audience_snapshot_parts_audience", table_name="audience_snapshot_parts")
    op.drop_table("audience_snapshot_parts")


def _move_parts_back() -> None:
    """Each audience's held records (the fold of its parts, as `store/snapshot.py` reads them)
    back as rows."""
    bind = op.get_bind()
    parts = sa.table(
        "audience_snapshot_parts",
        sa.column("id", sa.Integer()),
        sa.column("tenant_id", sa.Integer()),
        sa.column("audience_id", sa.Uuid()),
        sa.column("removes", sa.Boolean()),
        sa.column("data", sa.LargeBinary()),
    )
    rows = sa.table(
        "audience_snapshot_records",
        sa.column("tenant_id", sa.Integer()),
        sa.column("audience_id", sa.Uuid()),
        sa.column("record_hash", sa.String()),
        sa.column("record", sa.Text()),
        sa.column("confirmed_at", sa.DateTime(timezone=True)),
    )
    audiences = bind.execute(sa.select(parts.c.tenant_id, parts.c.audience_id).distinct()).all()
    now = datetime.now(UTC)
    for tenant_id, audience_id in audiences:
        found = bind.execute(
            sa.select(parts.c.removes, parts.c.data)
            .where(parts.c.tenant_id == tenant_id, parts.c.audience_id == audience_id)
            .order_by(parts.c.id)
        ).all()
        events = [
            pl.read_ipc(io.BytesIO(data)).with_columns(gone=pl.lit(removes))
            for removes, data in found
        ]
        folded = pl.concat(events, how="diagonal").unique(["k1", "k2"], keep="last")
        held = folded.filter(~pl.col("gone")).select("record_hash", "record")
        for chunk in held.iter_slices(50_000):
            bind.execute(
                rows.insert(),
                [
                    {"tenant_id": tenant_id, "audience_id": audience_id, "record_hash": h,
                     "record": r, "confirmed_at": now}
                    for h, r in chunk.iter_rows()
                ],
            )  # fmt: skip
