"""Import profiles from CSV, JSON Lines or Parquet into the built-in CDP
(`audience-sync import profiles`).

The file is read in batches (`tabular.read_batches`), each batch prepared column-wise
(`prepare`) and written in its own transaction (`profile_writer`): a crash loses at most the
batch in flight, and re-running the same file converges (a row identical to what is stored
changes nothing). Every line is accounted for: `ImportReport.accounted` holds for any input.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import text
from sqlalchemy.orm import Session, sessionmaker

from audience_sync.domain.profiles import END_LINE, LINE
from audience_sync.exceptions import ValidationError
from audience_sync.sources.phones import PhoneParsing, Phones, parse_ahead
from audience_sync.sources.prefetch import prefetch
from audience_sync.sources.prepare import (
    Prepared,
    Warning,
    prepare_frame,
)
from audience_sync.sources.prepare_records import prepare_records
from audience_sync.sources.rows import (
    BAD_TEXT,
    REFUSED_REASON,
    ProfileRecord,
    Rejection,
    read_object,
)
from audience_sync.sources.tabular import Batch, ReadOptions, read_batches
from audience_sync.store.db import transaction
from audience_sync.store.profile_writer import Destination, WriteCounts, write_prepared
from audience_sync.store.repositories import SegmentRepository, TenantRepository

BATCH_ROWS = 25_000
KEPT_REJECTIONS = 1_000  # reported in full up to this many; beyond, only counted
# After writing at least this many profiles, PostgreSQL's statistics are refreshed (`ANALYZE`):
# a table loaded from empty has none until autovacuum runs, and some servers run without it.
ANALYZE_AFTER = 10_000


@dataclass(slots=True)
class ImportReport:
    """What an import did. `rejections` holds the first `KEPT_REJECTIONS` in file order.

    Lines are the file's physical lines after the header (rows, for Parquet). A row is one
    line, or several when a quoted value holds line breaks: those extra lines are `continued`.
    For any input: lines = imported + rejected + blank + continued."""

    counts: WriteCounts = field(default_factory=WriteCounts)
    lines: int = 0
    blank: int = 0
    continued: int = 0
    rejected: int = 0
    rejections: list[Rejection] = field(default_factory=list)
    warnings: Counter[Warning] = field(default_factory=Counter)
    segment: str | None = None

    @property
    def imported(self) -> int:
        return self.counts.created + self.counts.updated + self.counts.unchanged

    @property
    def ok(self) -> bool:
        return self.rejected == 0

    @property
    def accounted(self) -> bool:
        return self.lines == self.imported + self.rejected + self.blank + self.continued

    def reject(self, rejection: Rejection) -> None:
        self.rejected += 1
        self.continued += _extra_lines(rejection)
        if len(self.rejections) < KEPT_REJECTIONS:
            self.rejections.append(rejection)

    def as_json(self) -> dict[str, Any]:
        """The summary scripts read (`import profiles --json`)."""
        return {
            "lines": self.lines,
            "imported": self.imported,
            "new": self.counts.created,
            "updated": self.counts.updated,
            "unchanged": self.counts.unchanged,
            "rejected": self.rejected,
            "blank": self.blank,
            "continued": self.continued,
            "warnings": [
                {"field": w.field, "reason": w.reason, "value": w.value, "count": count}
                for w, count in sorted(self.warnings.items(), key=_warning_order)
            ],
            "rejections": [
                {"line": r.line, "end_line": r.end_line or r.line, "reason": r.reason}
                for r in self.rejections
            ],
            "rejections_listed": len(self.rejections),
            "segment": self.segment,
        }


def _warning_order(item: tuple[Warning, int]) -> tuple[str, int, str]:
    warning, count = item
    return (warning.field, -count, warning.value or "")


def _extra_lines(rejection: Rejection) -> int:
    return max((rejection.end_line or rejection.line) - rejection.line, 0)


def import_profiles(
    factory: sessionmaker[Session],
    path: Path,
    *,
    tenant: str,
    segment: str | None = None,
    options: ReadOptions | None = None,
    on_bytes: Callable[[int], None] | None = None,
    on_reject: Callable[[Rejection], None] | None = None,
    batch_rows: int = BATCH_ROWS,
    workers: int | None = None,
) -> ImportReport:
    """Upsert every readable row of `path`; unreadable rows are reported, never fatal."""
    if segment is not None and BAD_TEXT.search(segment):  # e.g. argv bytes that were not UTF-8
        raise ValidationError(
            "The segment name is not valid text (a NUL character or bytes that are not UTF-8)."
        )
    batches = read_batches(path, options or ReadOptions(), rows=batch_rows, on_bytes=on_bytes)
    with transaction(factory) as session:
        found = TenantRepository(session).get(tenant)
        tenant_id, region = found.id, found.default_region
        segment_id = SegmentRepository(session, tenant_id).ensure(segment).id if segment else None
    report = ImportReport(segment=segment)
    destination = Destination(tenant_id, segment_id)
    with PhoneParsing(workers) as parse:
        ahead = _Ahead(factory, destination, parse, region)
        with prefetch(map(ahead.ready, batches), depth=1) as ready:
            for item in ready:
                _account(report, item.batch, item.prepared, item.unreadable, on_reject)
                written = _write_batch(factory, destination, item, parse, report, on_reject)
                ahead.learn(written, item.prepared.profiles.height)
    report.rejections.sort(key=lambda r: r.line)  # the database's refusals came last
    if report.counts.created + report.counts.updated >= ANALYZE_AFTER:
        refresh_statistics(factory)
    return report


@dataclass(frozen=True, slots=True)
class _Ready:
    """A batch read, prepared and its phones being parsed (in the prefetch thread: Polars and
    the parser's workers leave the GIL, so this overlaps the write of the batch before)."""

    batch: Batch
    prepared: Prepared
    unreadable: list[Rejection]  # the JSON rows that could not be read
    phones: Phones


class _Ahead:
    """Makes each batch ready to write, in the prefetch thread: prepared, and its phones being
    parsed (`phones.parse_ahead`). Which phones: those of the rows not stored as they are — read
    from the database first, unless the batch written last was all new profiles (a first
    import, where the read would find nothing and cost a probe a row)."""

    def __init__(
        self,
        factory: sessionmaker[Session],
        destination: Destination,
        parse: PhoneParsing,
        region: str,
    ) -> None:
        self.factory = factory
        self.destination = destination
        self.parse = parse
        self.region = region
        self.all_new = False

    def ready(self, batch: Batch) -> _Ready:
        prepared, unreadable = _prepare(batch, self.region)
        where, parse = self.destination, self.parse
        phones = parse_ahead(self.factory, where, prepared, parse, read_stored=not self.all_new)
        return _Ready(batch, prepared, unreadable, phones)

    def learn(self, written: WriteCounts | None, rows: int) -> None:
        """What the batch just written was (None: nothing to write)."""
        if written is not None:
            self.all_new = written.created == rows


def _prepare(batch: Batch, region: str) -> tuple[Prepared, list[Rejection]]:
    """The batch prepared for writing, with the JSON rows that could not be read."""
    if batch.frame is not None:
        return prepare_frame(batch.frame, region), []
    records: list[ProfileRecord] = []
    unreadable: list[Rejection] = []
    for line, data in batch.objects:
        result = read_object(line, data)
        if isinstance(result, Rejection):
            unreadable.append(result)
        else:
            records.append(result)
    return prepare_records(records, region), unreadable


def _account(
    report: ImportReport,
    batch: Batch,
    prepared: Prepared,
    unreadable: list[Rejection],
    on_reject: Callable[[Rejection], None] | None,
) -> None:
    """Count the batch's lines and report its rows that could not be read or kept, in file
    order, and its warnings."""
    report.lines += batch.lines
    report.blank += batch.blank
    report.warnings.update(prepared.warnings)
    rejections = [*batch.rejections, *unreadable, *prepared.rejections]
    for rejection in sorted(rejections, key=lambda r: r.line):
        _reject(report, rejection, on_reject)


def _write_batch(
    factory: sessionmaker[Session],
    destination: Destination,
    ready: _Ready,
    parse: PhoneParsing,
    report: ImportReport,
    on_reject: Callable[[Rejection], None] | None,
) -> WriteCounts | None:
    """What the batch's write did (None: it had nothing to write)."""
    profiles = ready.prepared.profiles
    if profiles.is_empty():
        return None
    report.continued += int((profiles[END_LINE] - profiles[LINE]).sum())
    written = write_prepared(factory, destination, ready.prepared, parse.e164(ready.phones))
    report.counts.add(written.counts)
    for line in written.refused:
        _reject(report, Rejection(line, REFUSED_REASON), on_reject)
    return written.counts


def _reject(
    report: ImportReport, rejection: Rejection, on_reject: Callable[[Rejection], None] | None
) -> None:
    report.reject(rejection)
    if on_reject is not None:
        on_reject(rejection)


def refresh_statistics(factory: sessionmaker[Session]) -> None:
    """Give the planner statistics of the tables an import filled (PostgreSQL's `ANALYZE`;
    SQLite's `PRAGMA optimize`, which analyzes only what needs it). The import's own queries do
    not need them; the syncs and reports that follow read better plans with them."""
    with transaction(factory) as session:
        if session.get_bind().dialect.name == "postgresql":
            session.execute(text("ANALYZE profiles, segment_members"))
        else:
            session.execute(text("PRAGMA optimize"))
