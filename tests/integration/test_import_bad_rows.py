"""One bad row is rejected alone, with its line and a reason; the chunk's good rows are imported.

Issue 17, findings 5 and 6: a 5,000-digit integer, 3,000 levels of nesting, a lone surrogate or a
NUL byte (fatal on PostgreSQL only) in one row used to abort its whole 2,000-row chunk with a
traceback. Every test runs on SQLite and on PostgreSQL (the `engine` fixture).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from audience_sync.exceptions import ValidationError
from audience_sync.sources import rows
from audience_sync.sources.importer import ImportReport, import_profiles
from audience_sync.store.db import transaction
from audience_sync.store.tables import Profile

# Each bad JSON Lines row (raw text of its line) and the reason it must get.
BAD_JSONL = [
    ('{"profile_id":"X1","n":%s}' % ("9" * 5000), "a value holds a number longer than 100 digits"),
    ('{"profile_id":"X2","n":%s}' % ("9" * 200), "trait 'n' holds a number longer than 100 digits"),
    ('{"profile_id":"X3","n":%s}' % ("[" * 3000 + "]" * 3000), "nested deeper than 32 levels"),
    ('{"profile_id":"X4","n":%s}' % ("[" * 40 + "]" * 40), "trait 'n' is nested deeper than 32"),
    ('{"profile_id":"X5","email":"\\ud800"}', "email is not valid Unicode"),
    ('{"profile_id":"X6","plan":"a\\udfffb"}', "trait 'plan' is not valid Unicode"),
    ('{"profile_id":"\\ud800"}', "profile_id is not valid Unicode"),
    ('{"profile_id":"X8","plan":"a\\u0000b"}', "trait 'plan' contains a NUL character"),
    ('{"profile_id":"X9","city":"Pa\\u0000ris"}', "city contains a NUL character"),
    ('{"profile_id":"X10","deep":{"k":["ok","\\u0000"]}}', "trait 'deep' contains a NUL"),
    ('{"profile_id":"X11","a\\u0000b":"v"}', "a column name contains a NUL character"),
    ('{"profile_id":"X12","\\ud800":"v"}', "a column name is not valid Unicode"),
    ('{"profile_id":"X13","score":NaN}', "trait 'score' holds a number that is not finite"),
    ('{"profile_id":"X14","score":1e999}', "trait 'score' holds a number that is not finite"),
    ('{"profile_id":"X15","phone":"\\u0000"}', "phone contains a NUL character"),
]


def run(factory: sessionmaker[Session], path: Path, **kwargs: object) -> ImportReport:
    return import_profiles(factory, path, tenant="default", **kwargs)  # type: ignore[arg-type]


def stored_ids(factory: sessionmaker[Session]) -> list[str]:
    with transaction(factory) as session:
        return sorted(session.scalars(select(Profile.profile_id)))


def good_row(number: int) -> str:
    return json.dumps(
        {"profile_id": f"G{number}", "email": f"g{number}@example.com", "plan": "gold", "n": 7}
    )


def jsonl_around_each_bad_row(path: Path) -> list[str]:
    """G0, bad, G1, bad, …, G<n>: every bad row between two good rows of one chunk."""
    lines = [good_row(0)]
    for number, (bad, _reason) in enumerate(BAD_JSONL, start=1):
        lines += [bad, good_row(number)]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return [f"G{n}" for n in range(len(BAD_JSONL) + 1)]


def test_each_bad_json_lines_row_is_rejected_alone_and_the_good_rows_are_imported(
    factory: sessionmaker[Session], tmp_path: Path
) -> None:
    path = tmp_path / "bad.jsonl"
    good = jsonl_around_each_bad_row(path)
    report = run(factory, path, segment="VIP")
    assert report.rejected == len(BAD_JSONL)
    assert [r.line for r in report.rejections] == [2 * n for n in range(1, len(BAD_JSONL) + 1)]
    for rejection, (_bad, reason) in zip(report.rejections, BAD_JSONL, strict=True):
        assert reason in rejection.reason
    assert (report.counts.created, report.counts.updated) == (len(good), 0)
    assert stored_ids(factory) == sorted(good)


def test_a_bad_row_in_a_chunk_of_two_thousand_costs_only_itself(
    factory: sessionmaker[Session], tmp_path: Path
) -> None:
    path = tmp_path / "chunk.jsonl"
    lines = [good_row(n) for n in range(1999)]
    lines.insert(1000, '{"profile_id":"BAD","plan":"\\ud800","city":"a\\u0000b"}')
    path.write_text("\n".join(lines) + "\n")
    report = run(factory, path)
    assert (report.rejected, report.counts.created) == (1, 1999)
    assert report.rejections[0].line == 1001
    assert len(stored_ids(factory)) == 1999


def test_each_bad_csv_row_is_rejected_alone_and_the_good_rows_are_imported(
    factory: sessionmaker[Session], tmp_path: Path
) -> None:
    path = tmp_path / "bad.csv"
    path.write_bytes(
        b"profile_id,email,city,plan\n"
        b"G1,g1@example.com,Paris,gold\n"
        b"X1,x1@example.com,Paris,go\x00ld\n"  # NUL in a trait
        b"G2,g2@example.com,Lyon,gold\n"
        b"X2,x2@example.com,Ly\x00on,gold\n"  # NUL in a field
        b"G3,g3@example.com,Nice,gold\n"
        b"X3,x3@exa\x00mple.com,Nice,gold\n"  # NUL in an identifier
        b"G4,g4@example.com,Metz,gold\n"
        b"X4,x4@example.com,Metz,g\xffold\n"  # not UTF-8
        b"G5,g5@example.com,Caen,gold\n"
    )
    report = run(factory, path)
    not_utf8 = "not valid UTF-8; if the file is in another encoding, pass --encoding, e.g. "
    assert [(r.line, r.reason) for r in report.rejections] == [
        (3, "contains a NUL byte"),
        (5, "contains a NUL byte"),
        (7, "contains a NUL byte"),
        (9, not_utf8 + "--encoding cp1252"),
    ]
    assert report.counts.created == 5
    assert stored_ids(factory) == ["G1", "G2", "G3", "G4", "G5"]


def test_a_csv_header_with_a_nul_is_refused_with_a_clear_message(
    factory: sessionmaker[Session], tmp_path: Path
) -> None:
    path = tmp_path / "header.csv"
    path.write_bytes(b"profile_id,pl\x00an\nG1,gold\n")
    with pytest.raises(ValidationError, match="CSV header is not valid text"):
        run(factory, path)


@pytest.mark.parametrize("bad", ["\ud800", "a\x00b"])
def test_a_row_the_database_refuses_is_rejected_alone_even_past_the_readers_checks(
    factory: sessionmaker[Session],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    bad: str,
) -> None:
    """The net under the reader: with its value checks off, the value reaches the database (a
    NUL: PostgreSQL refuses it; a surrogate: hashing and both drivers do); the chunk is then
    written row by row and only that row is lost."""
    monkeypatch.setattr(rows, "value_problem", lambda value: None)
    monkeypatch.setattr(rows, "BAD_TEXT", rows.re.compile("(?!)"))
    path = tmp_path / "net.jsonl"
    lines = [good_row(1), json.dumps({"profile_id": "X", "plan": bad}), good_row(2)]
    path.write_text("\n".join(lines) + "\n")
    report = run(factory, path, segment="VIP")
    if bad == "a\x00b" and factory.kw["bind"].dialect.name == "sqlite":
        assert (report.rejected, report.counts.created) == (0, 3)  # SQLite stores a NUL
        return
    assert [(r.line, r.reason) for r in report.rejections] == [(2, rows.REFUSED_REASON)]
    assert report.counts.created == 2
    assert stored_ids(factory) == ["G1", "G2"]


@pytest.mark.parametrize("segment", ["VIP\udcff", "V\x00IP"])
def test_a_segment_name_that_is_not_text_is_refused_with_a_clear_message(
    factory: sessionmaker[Session], tmp_path: Path, segment: str
) -> None:
    """`--segment` from argv bytes that were not UTF-8 arrives with a surrogate."""
    path = tmp_path / "good.jsonl"
    path.write_text(good_row(1) + "\n")
    with pytest.raises(ValidationError, match="segment name is not valid text"):
        run(factory, path, segment=segment)
