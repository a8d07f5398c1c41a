"""`profiles_removed` counts members, not records: a member who leaves with two identifiers is one
removed member on Snapchat (a record an identifier) and on Meta (a row an email) alike."""

from __future__ import annotations

import pytest

from audience_sync.domain.models import SyncOperation, SyncPlatform, SyncStatus
from audience_sync.store.db import transaction
from audience_sync.store.member_state import MemberStateRepository, reset_converged
from audience_sync.store.tables import AudienceSyncJob

from .world import World

PLATFORMS = [SyncPlatform.SNAPCHAT, SyncPlatform.META]
LEAVING = [f"P{i}" for i in range(5)]


def two_identifiers(platform: SyncPlatform, i: int, second: str = "") -> dict[str, str]:
    """A member with two records: an email and a phone on Snapchat, two emails on Meta."""
    member = {"profile_id": f"P{i}", "email": f"first.{i}@example.com", "phone": ""}
    if platform is SyncPlatform.SNAPCHAT:
        member["phone"] = f"(650) 555-{i:04d}"
    else:
        member["email"] += ";" + (second or f"second.{i}@example.com")
    return member


def loaded(world: World, platform: SyncPlatform, members: int = 30) -> None:
    world.load([two_identifiers(platform, i) for i in range(members)])


def figures(job: AudienceSyncJob) -> dict[str, int]:
    assert job.status is SyncStatus.COMPLETED, job.error_message
    found: dict[str, int] = job.details["figures"]
    return found


@pytest.mark.parametrize("converged", [True, False], ids=["from-state", "from-snapshot"])
@pytest.mark.parametrize("platform", PLATFORMS)
async def test_members_who_leave_with_two_records_count_once_each(
    world: World, platform: SyncPlatform, converged: bool
) -> None:
    loaded(world, platform)
    audience = world.audience(platform)
    figures(await world.sync(audience, SyncOperation.CREATE))
    if not converged:  # the update plans against the snapshot, not the member state
        with transaction(world.factory) as session:
            reset_converged(session, world.tenant_id, audience)
    world.leave(*LEAVING)
    world.load([{"profile_id": "P9", "email": "not-an-email", "phone": ""}])  # no identifier left
    updated = await world.sync(audience)
    assert figures(updated)["removes_sent"] == 2 * (len(LEAVING) + 1)  # two records each
    assert updated.profiles_removed == len(LEAVING) + 1
    against = updated.details["plan"]["against"]
    assert against == ("member state" if converged else "snapshot")
    assert figures(updated)["removed_records_without_owner"] == 0
    assert await world.held(platform, audience) == world.expected(platform)


@pytest.mark.parametrize("platform", PLATFORMS)
async def test_a_member_who_changes_one_of_two_identifiers_is_not_removed(
    world: World, platform: SyncPlatform
) -> None:
    loaded(world, platform)
    audience = world.audience(platform)
    figures(await world.sync(audience, SyncOperation.CREATE))
    changed = [two_identifiers(SyncPlatform.META, i, f"changed.{i}@example.com") for i in (7, 8)]
    if platform is SyncPlatform.SNAPCHAT:  # the phone stays, the email changes
        changed = [
            {**two_identifiers(platform, i), "email": f"new.{i}@example.com"} for i in (7, 8)
        ]
    world.load(changed)
    world.leave("P3")
    updated = await world.sync(audience)
    assert figures(updated)["removes_sent"] == 2 + 2  # one record of each changer, P3's two
    assert updated.profiles_removed == 1
    assert await world.held(platform, audience) == world.expected(platform)


@pytest.mark.parametrize("platform", PLATFORMS)
async def test_removed_records_with_no_known_member_count_as_records_and_say_so(
    world: World, platform: SyncPlatform
) -> None:
    loaded(world, platform)
    audience = world.audience(platform)
    figures(await world.sync(audience, SyncOperation.CREATE))
    with transaction(world.factory) as session:  # no member state: an upgrade, say
        MemberStateRepository(session, world.tenant_id).clear(audience)
    world.leave(*LEAVING)
    updated = await world.sync(audience)
    assert updated.profiles_removed == 2 * len(LEAVING)
    assert figures(updated)["removed_records_without_owner"] == 2 * len(LEAVING)
