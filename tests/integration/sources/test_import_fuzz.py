"""Fuzzing the whole import: generate-profiles files, corrupted at random, imported end to end.

Valid files of 1–60 rows with the 16 columns of `generate-profiles` (some values holding `,`,
`"`, `;` and line breaks, so quoted), line endings mixed, then random rows corrupted as the
reader's fuzz test does (stray and unbalanced quotes, truncated lines, extra delimiters, NUL
bytes, bytes that are not UTF-8). Whatever the damage: every line is accounted for, the report
has its keys, every rejection has a line and a reason, and every row the fuzzer did not touch is
stored exactly as the row-wise reference (`rows.read_object`) reads it — trimmed, null tokens
and blanks absent. Bounded (max_examples, no deadline) so `make test` stays fast."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import Engine, delete, select
from sqlalchemy.orm import Session, sessionmaker
from tests.unit.sources.test_tabular_fuzz import CORRUPTIONS, Written, corrupt, encode, protected

from audience_sync.domain.profiles import PROFILE_FIELDS
from audience_sync.sources import importer
from audience_sync.sources.demo import COLUMNS, generate_rows
from audience_sync.sources.rows import ProfileRecord, Rejection, read_object
from audience_sync.store import db
from audience_sync.store.db import transaction
from audience_sync.store.stored_identifiers import items
from audience_sync.store.tables import Profile

FUZZ = settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
REPORT_KEYS = {"lines", "imported", "new", "updated", "unchanged", "rejected", "blank", "warnings"}
# Text put into values: the delimiter, quotes, the split character, line breaks, padding.
PIECES = st.sampled_from([*',";\n é', "\r\n", "n/a"])
DECORATIONS = st.lists(PIECES, min_size=1, max_size=4).map("".join)
MUTABLE = [c for c in COLUMNS if c != "profile_id"]  # ids stay distinct: one row per profile


@st.composite
def profile_files(draw: st.DrawFn) -> list[Written]:
    """A header and 1–60 generate-profiles rows, some values decorated, some rows corrupted."""
    count = draw(st.integers(min_value=1, max_value=60))
    seed = draw(st.integers(min_value=0, max_value=2**32))
    written = [Written(COLUMNS, encode(COLUMNS, ",", "\n"))]
    for row in generate_rows(count, seed):
        cells = [row[c] for c in COLUMNS]
        for column in draw(st.lists(st.sampled_from(MUTABLE), max_size=3)):
            k = COLUMNS.index(column)
            at = draw(st.integers(min_value=0, max_value=len(cells[k])))
            cells[k] = cells[k][:at] + draw(DECORATIONS) + cells[k][at:]
        ending = draw(st.sampled_from(["\n", "\r\n"]))
        written.append(Written(cells, encode(cells, ",", ending, draw(st.booleans()))))
    broken = draw(st.dictionaries(st.integers(1, count), st.sampled_from(CORRUPTIONS)))
    for index, kind in broken.items():
        at = draw(st.integers(min_value=0, max_value=400))
        written[index] = Written([], corrupt(written[index].data, kind, at, ","), True)
    return written


def stored(factory: sessionmaker[Session], profile_id: str) -> dict[str, Any] | None:
    """A stored profile as the reference describes one (None: not stored)."""
    with transaction(factory) as session:
        profile = session.scalars(select(Profile).where(Profile.profile_id == profile_id)).first()
        if profile is None:
            return None
        identifiers = sorted((i.type, i.value, i.kind) for i in items(profile.identifiers))
        fields = {name: getattr(profile, name) for name in PROFILE_FIELDS}
        return {"fields": fields, "identifiers": identifiers, "traits": profile.traits}


def expected(record: ProfileRecord) -> dict[str, Any]:
    identifiers = sorted(
        (i.type.value, i.value, i.kind and i.kind.value) for i in record.identifiers
    )
    fields = {name: record.fields[name] for name in PROFILE_FIELDS}
    return {"fields": fields, "identifiers": identifiers, "traits": record.traits}


def check_import(factory: sessionmaker[Session], written: list[Written], rows: int) -> None:
    data = b"".join(w.data for w in written)
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "profiles.csv"
        path.write_bytes(data)
        report = importer.import_profiles(
            factory, path, tenant="default", batch_rows=rows, workers=1
        )
    summary = report.as_json()
    assert set(summary) >= REPORT_KEYS
    assert report.accounted, summary
    assert summary["lines"] == data.count(b"\n") - 1
    assert summary["imported"] == summary["new"] + summary["updated"] + summary["unchanged"]
    assert summary["rejected"] == len(report.rejections)  # fewer than KEPT_REJECTIONS here
    for rejection in report.rejections:
        assert 2 <= rejection.line <= summary["lines"] + 1
        assert rejection.reason
    rejected = {r.line for r in report.rejections}

    line = 2
    starts = []
    for row in written[1:]:
        starts.append(line)
        line += row.lines
    for index in protected(written, ","):
        row, start = written[index], starts[index - 1]
        reference = read_object(start, dict(zip(COLUMNS, row.cells, strict=True)))
        if isinstance(reference, Rejection):
            assert start in rejected, (start, reference.reason)
            continue
        assert stored(factory, reference.profile_id) == expected(reference), start


@contextmanager
def sqlite_factory(template: Path) -> Iterator[sessionmaker[Session]]:
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "fuzz.db"
        shutil.copy(template, path)
        engine = db.make_engine(f"sqlite:///{path}")
        try:
            yield db.session_factory(engine)
        finally:
            engine.dispose()


@FUZZ
@given(written=profile_files(), rows=st.integers(min_value=1, max_value=40))
def test_corrupted_rows_never_change_how_the_untouched_rows_are_stored_sqlite(
    sqlite_template: Path, written: list[Written], rows: int
) -> None:
    with sqlite_factory(sqlite_template) as factory:
        check_import(factory, written, rows)


@pytest.mark.postgres
@settings(FUZZ, max_examples=15, derandomize=True)
@given(written=profile_files(), rows=st.integers(min_value=1, max_value=40))
def test_corrupted_rows_never_change_how_the_untouched_rows_are_stored_postgres(
    postgres_engine: Engine, written: list[Written], rows: int
) -> None:
    factory = db.session_factory(postgres_engine)
    with transaction(factory) as session:
        session.execute(delete(Profile))  # identifiers and memberships go with them
    check_import(factory, written, rows)
