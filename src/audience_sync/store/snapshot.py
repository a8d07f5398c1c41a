"""The per-audience snapshot of identifiers the platform confirmed (hashes or raw MAIDs only)."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import cast

import polars as pl
from sqlalchemy import Table, delete, func, select, tuple_

from audience_sync.store.bulk import insert_ignore
from audience_sync.store.repositories import TenantScoped
from audience_sync.store.tables import SnapshotEntry

SNAPSHOT = cast(Table, SnapshotEntry.__table__)
READ_BATCH = 500_000
DELETE_CHUNK = 500  # pairs per DELETE … WHERE (key, value) IN (…), well under parameter limits

Pair = tuple[str, str]


class SnapshotRepository(TenantScoped):
    """Confirmed `(key, value)` pairs per audience; the caller's transaction also holds the job."""

    def pairs(self, audience_id: uuid.UUID) -> pl.DataFrame:
        """Every confirmed pair, read in batches into one frame."""
        query = select(SNAPSHOT.c.key, SNAPSHOT.c.value).where(
            SNAPSHOT.c.tenant_id == self.tenant_id, SNAPSHOT.c.audience_id == audience_id
        )
        result = self.session.execute(query.execution_options(stream_results=True))
        frames = [
            pl.DataFrame(rows, schema={"key": pl.String, "value": pl.String}, orient="row")
            for rows in iter(lambda: result.fetchmany(READ_BATCH), [])
        ]
        if not frames:
            return pl.DataFrame(schema={"key": pl.String, "value": pl.String})
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
        added: Sequence[Pair] = (),
        removed: Sequence[Pair] = (),
    ) -> None:
        """Record what the platform accepted in one batch (re-confirming a pair is harmless)."""
        rows = [
            {
                "audience_id": audience_id,
                "key": key,
                "value": value,
                "tenant_id": self.tenant_id,
                "confirmed_at": now,
            }
            for key, value in added
        ]
        insert_ignore(self.session, SnapshotEntry, rows, ("audience_id", "key", "value"))
        for start in range(0, len(removed), DELETE_CHUNK):
            chunk = removed[start : start + DELETE_CHUNK]
            self.session.execute(
                delete(SNAPSHOT).where(
                    SNAPSHOT.c.tenant_id == self.tenant_id,
                    SNAPSHOT.c.audience_id == audience_id,
                    tuple_(SNAPSHOT.c.key, SNAPSHOT.c.value).in_(chunk),
                )
            )

    def clear(self, audience_id: uuid.UUID) -> None:
        """Forget every pair (after a delete, or before a native replace's confirmation)."""
        self.session.execute(
            delete(SNAPSHOT).where(
                SNAPSHOT.c.tenant_id == self.tenant_id, SNAPSHOT.c.audience_id == audience_id
            )
        )
