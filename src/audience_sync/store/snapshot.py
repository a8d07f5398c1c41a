"""The per-audience snapshot: records the platform confirmed, exactly as sent (no raw PII beyond
what a platform itself takes raw)."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import cast

import polars as pl
from sqlalchemy import Table, delete, func, select

from audience_sync.store.bulk import insert_ignore
from audience_sync.store.repositories import TenantScoped
from audience_sync.store.tables import SnapshotRecord

SNAPSHOT = cast(Table, SnapshotRecord.__table__)
RECORD_SCHEMA = {"record_hash": pl.String, "record": pl.String}
READ_BATCH = 200_000
DELETE_CHUNK = 500  # hashes per DELETE … IN (…), well under parameter limits


class SnapshotRepository(TenantScoped):
    """Confirmed records per audience; the caller's transaction also holds the job's counters."""

    def records(self, audience_id: uuid.UUID) -> pl.DataFrame:
        """Every confirmed record (`record_hash`, `record`), read in batches into one frame."""
        query = select(SNAPSHOT.c.record_hash, SNAPSHOT.c.record).where(
            SNAPSHOT.c.tenant_id == self.tenant_id, SNAPSHOT.c.audience_id == audience_id
        )
        result = self.session.execute(query.execution_options(stream_results=True))
        frames = [
            pl.DataFrame(rows, schema=RECORD_SCHEMA, orient="row")
            for rows in iter(lambda: result.fetchmany(READ_BATCH), [])
        ]
        if not frames:
            return pl.DataFrame(schema=RECORD_SCHEMA)
        return pl.concat(frames, rechunk=False)

    def count(self, audience_id: uuid.UUID) -> int:
        return int(
            self.session.scalar(
                select(func.count())
                .select_from(SNAPSHOT)
                .where(
                    SNAPSHOT.c.tenant_id == self.tenant_id, SNAPSHOT.c.audience_id == audience_id
                )
            )
            or 0
        )

    def confirm(
        self,
        audience_id: uuid.UUID,
        now: datetime,
        added: Sequence[tuple[str, str]] = (),
        removed: Sequence[str] = (),
    ) -> None:
        """Record one batch the platform accepted: `added` (hash, record) pairs and `removed`
        hashes. Re-confirming a record is harmless."""
        rows = [
            {
                "audience_id": audience_id,
                "record_hash": record_hash,
                "record": record,
                "tenant_id": self.tenant_id,
                "confirmed_at": now,
            }
            for record_hash, record in added
        ]
        insert_ignore(self.session, SnapshotRecord, rows, ("audience_id", "record_hash"))
        for start in range(0, len(removed), DELETE_CHUNK):
            self.session.execute(
                delete(SNAPSHOT).where(
                    SNAPSHOT.c.tenant_id == self.tenant_id,
                    SNAPSHOT.c.audience_id == audience_id,
                    SNAPSHOT.c.record_hash.in_(removed[start : start + DELETE_CHUNK]),
                )
            )

    def clear(self, audience_id: uuid.UUID) -> None:
        """Forget every record (after a delete, or when a replace's records are confirmed)."""
        self.session.execute(
            delete(SNAPSHOT).where(
                SNAPSHOT.c.tenant_id == self.tenant_id, SNAPSHOT.c.audience_id == audience_id
            )
        )
