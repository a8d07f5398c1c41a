"""Per-audience member state: what each member produced when last prepared (see
`tables.MemberStatePart`). A cache: losing it costs one full preparation, never correctness."""

from __future__ import annotations

import io
import uuid
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime

import polars as pl
from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session

from audience_sync.store.db import binary_rows
from audience_sync.store.ipc import insert_frame
from audience_sync.store.repositories import TenantScoped
from audience_sync.store.tables import MemberStatePart

# `dropped`: the member's dropped values by reason (`sync.members.drop_summary`), on each of its
# rows, so that an incremental run can report the whole segment's.
STATE_SCHEMA = {
    "owner": pl.Int64,
    "content": pl.UInt64,
    "k1": pl.UInt64,
    "k2": pl.UInt64,
    "dropped": pl.String,
}
# Rows per stored part (~6 MB): no single value grows without bound, and an update reads the
# state a part at a time beside every member's content (`prepare._kept`), each part's joins
# in flight (parts of a million rows make each part's joins four times as large).
PART_ROWS = 250_000


@dataclass(frozen=True, slots=True)
class StoredState:
    frame: pl.DataFrame  # columns of STATE_SCHEMA
    converged: bool  # the snapshot held exactly these records' keys when last checked


@dataclass(frozen=True, slots=True)
class StoredParts:
    """A stored state not read yet: its parts' numbers, to read one at a time (`frames`)."""

    numbers: list[int]
    converged: bool


class MemberStateRepository(TenantScoped):
    def load(self, audience_id: uuid.UUID, fingerprint: str) -> StoredState | None:
        """The stored state, or None when there is none or it was made for other settings."""
        stored = self.parts(audience_id, fingerprint)
        if stored is None:
            return None
        frame = pl.concat(list(self.frames(audience_id, stored.numbers)))
        return StoredState(frame, stored.converged)

    def parts(self, audience_id: uuid.UUID, fingerprint: str) -> StoredParts | None:
        """The stored state's parts (not their data), or None when there is none or it was made
        for other settings."""
        parts = self.session.execute(
            select(MemberStatePart.part, MemberStatePart.fingerprint, MemberStatePart.converged)
            .where(
                MemberStatePart.tenant_id == self.tenant_id,
                MemberStatePart.audience_id == audience_id,
            )
            .order_by(MemberStatePart.part)
        ).all()
        if not parts or any(found != fingerprint for _, found, _ in parts):
            return None
        return StoredParts([n for n, _, _ in parts], all(c for _, _, c in parts))

    def frames(self, audience_id: uuid.UUID, numbers: list[int]) -> Iterator[pl.DataFrame]:
        """The state's parts `numbers`, one read at a time (columns of `STATE_SCHEMA`)."""
        for number in numbers:
            ((data,),) = binary_rows(  # PostgreSQL's binary format: see `binary_rows`
                self.session,
                select(MemberStatePart.data).where(
                    MemberStatePart.tenant_id == self.tenant_id,
                    MemberStatePart.audience_id == audience_id,
                    MemberStatePart.part == number,
                ),
            )
            yield pl.read_ipc(io.BytesIO(data))

    def mark_converged(self, audience_id: uuid.UUID) -> None:
        """The snapshot now holds exactly the state's records (a run confirmed all of them)."""
        set_converged(self.session, self.tenant_id, audience_id, True)

    def save(
        self,
        audience_id: uuid.UUID,
        fingerprint: str,
        state: pl.DataFrame | Iterable[pl.DataFrame],
        now: datetime,
    ) -> None:
        """Replace the audience's state with `state` (columns of `STATE_SCHEMA`): one frame, or
        frames made as they are written (a part at a time: a state of ten million members is
        never whole in memory, nor are its parts' bytes: each goes in from its file)."""
        self.clear(audience_id)
        frames = [state] if isinstance(state, pl.DataFrame) else state
        number = 0
        for frame in frames:
            typed = frame.select(pl.col(name).cast(kind) for name, kind in STATE_SCHEMA.items())
            for part in typed.iter_slices(PART_ROWS):
                values = {
                    "audience_id": audience_id,
                    "part": number,
                    "tenant_id": self.tenant_id,
                    "fingerprint": fingerprint,
                    "prepared_at": now,
                    "converged": False,
                }
                insert_frame(self.session, MemberStatePart, values, part)
                number += 1

    def clear(self, audience_id: uuid.UUID) -> None:
        self.session.execute(
            delete(MemberStatePart).where(
                MemberStatePart.tenant_id == self.tenant_id,
                MemberStatePart.audience_id == audience_id,
            )
        )


def reset_converged(session: Session, tenant_id: int, audience_id: uuid.UUID) -> None:
    """The snapshot changed: it no longer equals any state's records (see `mark_converged`)."""
    set_converged(session, tenant_id, audience_id, False)


def set_converged(session: Session, tenant_id: int, audience_id: uuid.UUID, value: bool) -> None:
    session.execute(
        update(MemberStatePart)
        .where(
            MemberStatePart.tenant_id == tenant_id,
            MemberStatePart.audience_id == audience_id,
            MemberStatePart.converged.is_not(value),
        )
        .values(converged=value)
    )
