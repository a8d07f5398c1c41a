"""Per-identifier diagnostics of a run: which profile's value was dropped or refused, and why.

A job's counts say how many values were dropped (`details.dropped`); the entries say which:
the profile, the field, the reason, the value masked (`identifiers.mask`). A run keeps its
first `LIMIT` entries, masked as they are collected (a raw value is held only as long as the
member batch it came from), and the exact counts by (field, reason) of every one:

- dropped values, by the reasons of `identifiers.Reason` (`invalid_email`, `zeroed_maid`, ...)
  and `consent_denied` (a Google member whose consent says no), collected from the members
  this run prepares and, for members taken unchanged from the member state, by reading those
  members again, only as many as the entries still missing (`sync.prepare`);
- `refused`: a record the platform refused at upload (`failed_users` of a batch); the entry names
  the profile but no field or value (the record is what was refused, hashed).

Google's refusals while processing after the job (`sync.confirm`) come without members: they
are counted on the job only.
"""

from __future__ import annotations

import uuid
from collections import Counter
from dataclasses import dataclass, field
from typing import IO, Any

import polars as pl
from sqlalchemy.orm import Session

from audience_sync.export.cells import safe_row, safe_writer
from audience_sync.identifiers.mask import mask_value
from audience_sync.store.diagnostics import DiagnosticsRepository, Entry
from audience_sync.store.repositories import SyncJobRepository

LIMIT = 10_000
REFUSED = "refused"
ENTRIES = {"owner": pl.Int64, "field": pl.String, "reason": pl.String, "masked_value": pl.String}


@dataclass
class Diagnostics:
    """A run's entries (`ENTRIES`, owners are profile pks, at most `limit`) and its exact
    counts by (field, reason); `field` is None for a refused record."""

    limit: int = field(default_factory=lambda: LIMIT)  # read when made (tests lower it)
    frames: list[pl.DataFrame] = field(default_factory=list)
    kept: int = 0
    counts: Counter[tuple[str | None, str]] = field(default_factory=Counter)

    @property
    def room(self) -> int:
        """How many entries may still be kept."""
        return max(0, self.limit - self.kept)

    def add_drops(self, drops: pl.DataFrame) -> None:
        """Keep the first of these dropped values (`owner`, `field`, `reason`, `value`), masked,
        while there is room; counts are not touched (they come from the summaries: `count`)."""
        if not self.room or drops.is_empty():
            return
        taken = drops.head(self.room)
        masked = [
            mask_value(value, name)
            for value, name in zip(taken["value"].to_list(), taken["field"].to_list(), strict=True)
        ]
        self._keep(
            taken.select("owner", "field", "reason").with_columns(
                masked_value=pl.Series(masked, dtype=pl.String)
            )
        )

    def add_refused(self, owners: pl.Series) -> None:
        """Records the platform refused, by owner (profile pk): counted, and kept while there
        is room."""
        self.counts[(None, REFUSED)] += len(owners)
        if not self.room or owners.is_empty():
            return
        taken = owners.head(self.room).cast(pl.Int64)
        self._keep(
            pl.DataFrame({"owner": taken}).with_columns(
                field=pl.lit(None, pl.String),
                reason=pl.lit(REFUSED),
                masked_value=pl.lit(None, pl.String),
            )
        )

    def count(self, dropped: Counter[tuple[str, str]]) -> None:
        """The exact counts of the segment's dropped values (`members.drop_counts`)."""
        for (name, reason), found in dropped.items():
            self.counts[(name, reason)] = found

    def entries(self) -> pl.DataFrame:
        """The kept entries, in the order they were found."""
        return pl.concat([pl.DataFrame(schema=ENTRIES), *self.frames])

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    def summary(self) -> dict[str, Any]:
        """What the job's `details.diagnostics` keeps: the counts, the entries kept, whether
        some were left out (more values than `limit`: `max_entries`)."""
        counts = [
            {"field": name, "reason": reason, "count": found}
            for (name, reason), found in sorted(
                self.counts.items(), key=lambda item: (item[0][1], item[0][0] or "")
            )
            if found
        ]
        return {
            "counts": counts,
            "entries": self.kept,
            "max_entries": self.limit,
            "truncated": self.total > self.kept,
        }

    def _keep(self, frame: pl.DataFrame) -> None:
        self.frames.append(frame.select(*ENTRIES))
        self.kept += len(frame)


# --- reading them back (the API's and the CLI's) ------------------------------------------------

CSV_HEADER = ["profile_id", "field", "reason", "masked_value"]


@dataclass(frozen=True, slots=True)
class Report:
    """A page of a job's entries, with the job's exact counts and whether entries were left
    out at the bound."""

    job_id: uuid.UUID
    counts: list[dict[str, Any]]
    truncated: bool
    max_entries: int
    matching: int  # kept entries matching the filters
    entries: list[Entry]


def read_report(
    session: Session,
    tenant_id: int,
    job_id: uuid.UUID,
    *,
    reason: str | None = None,
    field: str | None = None,
    offset: int = 0,
    limit: int | None = None,
) -> Report:
    """The job's diagnostics (`NotFoundError` for a job of another tenant, or none)."""
    job = SyncJobRepository(session, tenant_id).get(job_id)
    found = (job.details or {}).get("diagnostics") or {}
    repository = DiagnosticsRepository(session, tenant_id)
    return Report(
        job_id=job.id,
        counts=list(found.get("counts", [])),
        truncated=bool(found.get("truncated", False)),
        max_entries=int(found.get("max_entries", LIMIT)),
        matching=repository.count(job_id, reason=reason, field=field),
        entries=repository.page(job_id, reason=reason, field=field, offset=offset, limit=limit),
    )


def write_csv(entries: list[Entry], sink: IO[str]) -> None:
    """The entries as formula-safe CSV (`export.cells`): a header, then one row an entry."""
    writer = safe_writer(sink)
    writer.writerow(CSV_HEADER)
    for entry in entries:
        writer.writerow(safe_row([entry.profile_id, entry.field, entry.reason, entry.masked_value]))
