"""Phones are parsed ahead, while the batch before is written (`phones.parse_ahead`): a guess
from what is stored at that moment, which the write checks and completes."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import polars as pl
import pytest
from sqlalchemy.orm import Session, sessionmaker

from audience_sync.sources import importer
from audience_sync.sources.importer import import_profiles
from audience_sync.sources.phones import PhoneParsing, Phones, parse_ahead
from audience_sync.sources.prepare import prepare_frame
from audience_sync.store import db
from audience_sync.store.db import transaction
from audience_sync.store.profile_writer import Destination, write_prepared
from audience_sync.store.repositories import ProfileRepository, TenantRepository


class CountingParser(PhoneParsing):
    """Parses in place and remembers what it was asked to parse."""

    def __init__(self) -> None:
        super().__init__(workers=1)
        self.asked: list[str] = []

    def start(self, values: list[str], regions: list[str | None]) -> Callable[[], list[str | None]]:
        self.asked.extend(values)
        return super().start(values, regions)


def batch(phone: str) -> pl.DataFrame:
    return pl.DataFrame({"profile_id": ["P1"], "phone": [phone], "_line": [2]})


def stored_phone(factory: sessionmaker[Session], tenant_id: int) -> tuple[str, str | None]:
    with transaction(factory) as session:
        repo = ProfileRepository(session, tenant_id)
        (phone,) = repo.identifiers(repo.by_profile_id("P1").id)
        return phone.value, phone.e164


def test_a_row_changed_by_an_earlier_batch_has_its_phone_parsed_when_written(
    factory: sessionmaker[Session],
) -> None:
    """The guess read P1 as stored with this very row's content, so it parsed nothing; by the
    time the row is written, the batch before has changed P1: the write parses the phone."""
    with transaction(factory) as session:
        tenant_id = TenantRepository(session).get("default").id
    where = Destination(tenant_id)
    first, second = (
        prepare_frame(batch("1 (415) 555-0123"), "US"),
        prepare_frame(batch("1 (650) 555-0100"), "US"),
    )
    parser = CountingParser()
    write_prepared(factory, where, first, parser.e164())
    ahead = parse_ahead(factory, where, first, parser)  # P1 again, as stored: nothing to parse
    assert parser.asked == ["1 (415) 555-0123"]
    write_prepared(factory, where, second, parser.e164())  # P1 changes meanwhile
    assert stored_phone(factory, tenant_id) == ("1 (650) 555-0100", "+16505550100")
    write_prepared(factory, where, first, parser.e164(ahead))
    assert parser.asked[-1] == "1 (415) 555-0123"  # parsed by the write
    assert stored_phone(factory, tenant_id) == ("1 (415) 555-0123", "+14155550123")


def test_an_in_memory_database_imports_without_a_second_connection(tmp_path: Path) -> None:
    """A thread's own connection to `sqlite://` would be another, empty database: the guess
    reads nothing there and parses every phone ahead."""
    engine = db.make_engine("sqlite://")
    db.upgrade(engine)
    factory = db.session_factory(engine)
    path = tmp_path / "p.csv"
    rows = "\n".join(f"P{i},1 (415) 555-{i:04d}" for i in range(300))
    path.write_text("profile_id,phone\n" + rows + "\n")
    report = import_profiles(factory, path, tenant="default", batch_rows=50, workers=1)
    assert (report.counts.created, report.rejected) == (300, 0)
    with transaction(factory) as session:
        tenant_id = TenantRepository(session).get("default").id
        repo = ProfileRepository(session, tenant_id)
        assert repo.identifiers(repo.by_profile_id("P7").id)[0].e164 == "+14155550007"
    engine.dispose()


def test_a_first_import_stops_reading_what_is_stored_ahead_a_re_import_keeps_reading(
    factory: sessionmaker[Session], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """While every profile written is new, reading what is stored ahead would find nothing:
    it stops after the first batches; a re-import, whose rows are all stored, reads every
    batch (and so parses none of its phones ahead)."""
    asked: list[bool] = []
    real = importer.parse_ahead

    def recorded(*args: object, read_stored: bool = True) -> Phones:
        asked.append(read_stored)
        return real(*args, read_stored=read_stored)  # type: ignore[arg-type]

    monkeypatch.setattr(importer, "parse_ahead", recorded)
    path = tmp_path / "p.csv"
    path.write_text("profile_id,phone\n" + "\n".join(f"P{i},1 415 555 {i:04d}" for i in range(80)))
    import_profiles(factory, path, tenant="default", batch_rows=10, workers=1)
    assert len(asked) >= 4  # batches of about 10 rows
    assert asked[0] is True
    assert asked[-1] is False
    asked.clear()
    report = import_profiles(factory, path, tenant="default", batch_rows=10, workers=1)
    assert report.counts.unchanged == 80
    assert len(asked) >= 4
    assert all(asked)
