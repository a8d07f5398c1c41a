"""Import into the built-in CDP: upsert by profile_id, exact rejections, idempotent re-import."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from audience_sync.domain.models import IdentifierType
from audience_sync.sources.importer import ImportReport, import_profiles
from audience_sync.store.db import transaction
from audience_sync.store.repositories import (
    ProfileRepository,
    SegmentRepository,
    TenantRepository,
)
from audience_sync.store.tables import Profile

DATA = Path(__file__).parents[1] / "data" / "import"


def run(factory: sessionmaker[Session], path: Path, **kwargs: object) -> ImportReport:
    kwargs.setdefault("tenant", "default")
    return import_profiles(factory, path, **kwargs)  # type: ignore[arg-type]


def identifiers(factory: sessionmaker[Session], profile_id: str, tenant: str = "default") -> list:
    with transaction(factory) as session:
        tenant_id = TenantRepository(session).get(tenant).id
        repo = ProfileRepository(session, tenant_id)
        return [
            (i.type, i.value, i.e164) for i in repo.identifiers(repo.by_profile_id(profile_id).id)
        ]


def snapshot(factory: sessionmaker[Session]) -> tuple[list, list]:
    with factory() as session:
        profiles = session.execute(
            select(Profile.profile_id, Profile.updated_at, Profile.content_hash).order_by(
                Profile.profile_id
            )
        ).all()
        idents = session.execute(
            select(Profile.profile_id, Profile.identifiers).order_by(Profile.profile_id)
        ).all()
    return [tuple(p) for p in profiles], [tuple(i) for i in idents]


def test_a_good_file_creates_every_profile(factory: sessionmaker[Session]) -> None:
    report = run(factory, DATA / "good.csv")
    assert report.ok
    assert (report.counts.created, report.counts.updated, report.counts.unchanged) == (4, 0, 0)
    with transaction(factory) as session:
        tenant_id = TenantRepository(session).get("default").id
        profile = ProfileRepository(session, tenant_id).by_profile_id("P2")
        assert (profile.first_name, profile.country, profile.traits) == (
            "Zoë",
            "France",
            {"plan": "free"},
        )


def test_phones_are_stored_raw_with_e164_from_the_profiles_country(
    factory: sessionmaker[Session],
) -> None:
    run(factory, DATA / "good.csv")
    phone = IdentifierType.PHONE
    assert (phone, "(415) 555-0123", "+14155550123") in identifiers(factory, "P1")
    assert (phone, "01 23 45 67 89", "+33123456789") in identifiers(factory, "P2")
    assert (phone, "020 7946 0958", "+442079460958") in identifiers(factory, "P3")


def test_a_national_phone_without_country_uses_the_tenants_region(
    factory: sessionmaker[Session], tmp_path: Path
) -> None:
    with transaction(factory) as session:
        TenantRepository(session).create("uk", default_region="GB")
    path = tmp_path / "p.csv"
    path.write_text("profile_id,phone\nX,020 7946 0958\nY,not a phone\n")
    run(factory, path, tenant="uk")
    assert identifiers(factory, "X", "uk") == [
        (IdentifierType.PHONE, "020 7946 0958", "+442079460958")
    ]
    assert identifiers(factory, "Y", "uk") == [(IdentifierType.PHONE, "not a phone", None)]


def test_reimporting_the_same_file_changes_nothing(factory: sessionmaker[Session]) -> None:
    run(factory, DATA / "good.csv", segment="VIP")
    before = snapshot(factory)
    report = run(factory, DATA / "good.csv", segment="VIP")
    assert (report.counts.created, report.counts.updated, report.counts.unchanged) == (0, 0, 4)
    assert snapshot(factory) == before
    with transaction(factory) as session:
        tenant_id = TenantRepository(session).get("default").id
        (summary,) = SegmentRepository(session, tenant_id).summaries()
        assert summary.member_count == 4


def test_a_changed_row_replaces_the_profiles_fields_and_identifiers(
    factory: sessionmaker[Session], tmp_path: Path
) -> None:
    run(factory, DATA / "good.csv")
    changed = tmp_path / "changed.csv"
    changed.write_text("profile_id,email,city\nP1,new@example.com,Oakland\n")
    report = run(factory, changed)
    assert (report.counts.created, report.counts.updated) == (0, 1)
    assert identifiers(factory, "P1") == [(IdentifierType.EMAIL, "new@example.com", None)]
    with transaction(factory) as session:
        tenant_id = TenantRepository(session).get("default").id
        profile = ProfileRepository(session, tenant_id).by_profile_id("P1")
        assert (profile.city, profile.first_name, profile.traits) == ("Oakland", None, {})


def test_a_profile_repeated_in_a_file_is_applied_in_file_order(
    factory: sessionmaker[Session],
) -> None:
    report = run(factory, DATA / "duplicates.csv")
    # D1 new (line 2), D2 new, D1 changed (line 4), D1 identical again (line 5).
    assert (report.counts.created, report.counts.updated, report.counts.unchanged) == (2, 1, 1)
    assert identifiers(factory, "D1") == [(IdentifierType.EMAIL, "second@example.com", None)]


def test_chunk_boundaries_do_not_change_the_outcome(
    factory: sessionmaker[Session],
) -> None:
    report = run(factory, DATA / "duplicates.csv", batch_rows=1)
    assert (report.counts.created, report.counts.updated, report.counts.unchanged) == (2, 1, 1)
    assert identifiers(factory, "D1") == [(IdentifierType.EMAIL, "second@example.com", None)]


def test_broken_csv_rows_are_reported_and_good_rows_still_imported(
    factory: sessionmaker[Session],
) -> None:
    rejected: list[int] = []
    report = run(factory, DATA / "broken.csv", on_reject=lambda r: rejected.append(r.line))
    assert not report.ok
    assert [r.line for r in report.rejections] == rejected == [3, 4, 5, 6]
    assert report.rejected == 4
    assert report.counts.created == 2
    with transaction(factory) as session:
        tenant_id = TenantRepository(session).get("default").id
        assert ProfileRepository(session, tenant_id).count() == 2


def test_broken_json_lines_are_reported_and_good_rows_still_imported(
    factory: sessionmaker[Session],
) -> None:
    report = run(factory, DATA / "broken.jsonl", segment="From JSON")
    assert [r.line for r in report.rejections] == [2, 3, 5, 6]
    assert report.counts.created == 2
    with transaction(factory) as session:
        tenant_id = TenantRepository(session).get("default").id
        (summary,) = SegmentRepository(session, tenant_id).summaries()
        assert (summary.name, summary.member_count) == ("From JSON", 2)


def test_the_same_profile_id_in_two_tenants_is_two_profiles(
    factory: sessionmaker[Session],
) -> None:
    with transaction(factory) as session:
        TenantRepository(session).create("other")
    run(factory, DATA / "good.csv")
    report = run(factory, DATA / "good.csv", tenant="other")
    assert report.counts.created == 4
    with transaction(factory) as session:
        assert session.query(Profile).count() == 8
