"""A date of birth the platform cannot use is counted as `invalid_date_of_birth`, with a masked
entry, on Meta (the one platform with date-of-birth keys); elsewhere it is not counted."""

from __future__ import annotations

import csv

import pytest
from sqlalchemy import select

from audience_sync.domain.models import SyncOperation, SyncPlatform
from audience_sync.sources.importer import import_profiles
from audience_sync.store.db import transaction
from audience_sync.store.diagnostics import DiagnosticsRepository, Entry
from audience_sync.store.tables import SyncJobDiagnostic

from .world import PLATFORMS, World

BIRTHS = {
    "P0": "1990-07-04",  # usable
    "P1": "19900704",  # usable
    "P2": "04/07/1990",  # not YYYYMMDD / YYYY-MM-DD
    "P3": "1975-02-30",  # no such day
    "P4": "",  # none
}


def load_births(world: World) -> None:
    path = world.tmp / "births.csv"
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["profile_id", "email", "date_of_birth"])
        for i, (profile_id, birth) in enumerate(BIRTHS.items()):
            writer.writerow([profile_id, f"person.{i}@example.com", birth])
    import_profiles(world.factory, path, tenant="default", segment="VIP")


def entries(world: World, job_id: object) -> list[Entry]:
    with transaction(world.factory) as session:
        return DiagnosticsRepository(session, world.tenant_id).page(job_id)  # type: ignore[arg-type]


async def test_meta_counts_each_unusable_date_of_birth_and_lists_it_masked(world: World) -> None:
    load_births(world)
    audience = world.audience(SyncPlatform.META)
    job = await world.sync(audience, SyncOperation.CREATE)
    assert job.details["dropped"] == {"invalid_date_of_birth": 2}
    assert job.details["diagnostics"]["counts"] == [
        {"field": "date_of_birth", "reason": "invalid_date_of_birth", "count": 2}
    ]
    assert sorted(entries(world, job.id), key=lambda e: e.profile_id or "") == [
        Entry("P2", "date_of_birth", "invalid_date_of_birth", "0***0"),
        Entry("P3", "date_of_birth", "invalid_date_of_birth", "1***0"),
    ]
    assert job.profiles_sent == 5  # every member has an email: none is unusable
    with transaction(world.factory) as session:
        stored = [r.masked_value for r in session.scalars(select(SyncJobDiagnostic))]
    assert not {BIRTHS["P2"], BIRTHS["P3"]} & set(stored)


async def test_an_update_counts_the_unchanged_members_unusable_dates_too(world: World) -> None:
    load_births(world)
    audience = world.audience(SyncPlatform.META)
    await world.sync(audience, SyncOperation.CREATE)
    updated = await world.sync(audience)
    assert updated.details["prepared_members"] == 0
    assert updated.details["dropped"] == {"invalid_date_of_birth": 2}
    assert {e.profile_id for e in entries(world, updated.id)} == {"P2", "P3"}


@pytest.mark.parametrize(
    "platform", [p for p in PLATFORMS if p is not SyncPlatform.META], ids=lambda p: p.value
)
async def test_a_platform_without_date_of_birth_keys_does_not_count_them(
    world: World, platform: SyncPlatform
) -> None:
    load_births(world)
    audience = world.audience(platform)
    job = await world.sync(audience, SyncOperation.CREATE)
    assert job.details["dropped"] == {}
    assert job.details["diagnostics"]["counts"] == []
    assert entries(world, job.id) == []
