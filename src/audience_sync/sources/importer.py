"""Import profiles from CSV or JSON Lines into the built-in CDP (`audience-sync import profiles`).

Streams the file in chunks; each chunk commits on its own, so a crash loses at most the chunk in
flight and re-running the same file converges (a row identical to what is stored changes nothing).
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy.orm import Session, sessionmaker

from audience_sync.exceptions import ValidationError
from audience_sync.identifiers import normalize_country, parse_phone_e164
from audience_sync.sources.rows import (
    BAD_TEXT,
    ProfileRecord,
    Rejection,
    RowResult,
    detect_format,
    open_source,
    read_rows,
)
from audience_sync.store.db import transaction
from audience_sync.store.profile_writer import (
    REFUSED_REASON,
    ProfileWriter,
    WriteCounts,
    write_chunk,
)
from audience_sync.store.repositories import SegmentRepository, TenantRepository

CHUNK_ROWS = 2_000
KEPT_REJECTIONS = 1_000  # reported in full up to this many; beyond, only counted


@dataclass(slots=True)
class ImportReport:
    """What an import did. `rejections` holds the first `KEPT_REJECTIONS` in file order."""

    counts: WriteCounts = field(default_factory=WriteCounts)
    rejected: int = 0
    rejections: list[Rejection] = field(default_factory=list)
    segment: str | None = None

    @property
    def imported(self) -> int:
        return self.counts.created + self.counts.updated + self.counts.unchanged

    @property
    def ok(self) -> bool:
        return self.rejected == 0

    def reject(self, rejection: Rejection) -> None:
        self.rejected += 1
        if len(self.rejections) < KEPT_REJECTIONS:
            self.rejections.append(rejection)


def import_profiles(
    factory: sessionmaker[Session],
    path: Path,
    *,
    tenant: str,
    segment: str | None = None,
    fmt: str | None = None,
    on_bytes: Callable[[int], None] | None = None,
    on_reject: Callable[[Rejection], None] | None = None,
    chunk_rows: int = CHUNK_ROWS,
) -> ImportReport:
    """Upsert every readable row of `path`; unreadable rows are reported, never fatal."""
    fmt = fmt or detect_format(path)
    if segment is not None and BAD_TEXT.search(segment):  # e.g. argv bytes that were not UTF-8
        raise ValidationError(
            "The segment name is not valid text (a NUL character or bytes that are not UTF-8)."
        )
    with transaction(factory) as session:
        found = TenantRepository(session).get(tenant)
        tenant_id, region = found.id, found.default_region
        segment_id = SegmentRepository(session, tenant_id).ensure(segment).id if segment else None
    report = ImportReport(segment=segment)

    def writer(session: Session) -> ProfileWriter:
        return ProfileWriter(
            session, tenant_id, region, parse_phone_e164, normalize_country, segment_id
        )

    with open_source(path) as stream:
        for chunk in _chunks(read_rows(stream, fmt, on_bytes), chunk_rows):
            written = write_chunk(factory, writer, _split(chunk, report, on_reject))
            report.counts.add(written.counts)
            for record in written.refused:
                _reject(report, Rejection(record.line, REFUSED_REASON), on_reject)
    return report


def _chunks(rows: Iterator[RowResult], size: int) -> Iterator[list[RowResult]]:
    while chunk := list(itertools.islice(rows, size)):
        yield chunk


def _split(
    chunk: list[RowResult],
    report: ImportReport,
    on_reject: Callable[[Rejection], None] | None,
) -> list[ProfileRecord]:
    records: list[ProfileRecord] = []
    for row in chunk:
        if isinstance(row, Rejection):
            _reject(report, row, on_reject)
        else:
            records.append(row)
    return records


def _reject(
    report: ImportReport, rejection: Rejection, on_reject: Callable[[Rejection], None] | None
) -> None:
    report.reject(rejection)
    if on_reject is not None:
        on_reject(rejection)
