"""What members allow, from the import to the platform: Google consent and Meta Limited Data Use
imported per profile, defaulted by the connection, and kept in step by updates."""

from __future__ import annotations

import csv
import hashlib
from typing import Any

from audience_sync.domain.models import SyncOperation, SyncPlatform, SyncStatus
from audience_sync.sources.importer import import_profiles
from audience_sync.store.db import transaction
from audience_sync.store.repositories import ConnectionRepository

from .world import World

DATA_USE = ["consent_ad_user_data", "consent_ad_personalization", "limited_data_use"]


def load(world: World, rows: list[dict[str, str]]) -> None:
    """Import rows of `profile_id`, `email` and the data-use columns."""
    world.files += 1
    path = world.tmp / f"data-use{world.files}.csv"
    with path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=["profile_id", "email", *DATA_USE])
        writer.writeheader()
        writer.writerows(rows)
    import_profiles(world.factory, path, tenant="default", segment="VIP")


def person(i: int, **allows: str) -> dict[str, str]:
    return {"profile_id": f"P{i}", "email": f"person.{i}@example.com", **allows}


def sha(i: int) -> str:
    return hashlib.sha256(f"person.{i}@example.com".encode()).hexdigest()


async def data_use(world: World, platform: SyncPlatform) -> dict[str, Any]:
    [audience] = await world.sandbox_audiences(platform)
    found: dict[str, Any] = audience["data_use"]
    return found


async def test_a_member_who_denies_consent_is_removed_by_the_next_update(world: World) -> None:
    load(world, [person(i) for i in range(6)])
    audience = world.audience(SyncPlatform.GOOGLE, config={"consent": "granted"})
    created = await world.sync(audience, SyncOperation.CREATE)
    assert created.status is SyncStatus.COMPLETED
    load(
        world,
        [person(1, consent_ad_user_data="DENIED"), person(2, consent_ad_personalization="Denied")],
    )
    updated = await world.sync(audience)
    assert updated.status is SyncStatus.COMPLETED
    assert updated.details["dropped"] == {"consent_denied": 2}
    held = await world.held(SyncPlatform.GOOGLE, audience)
    assert held == {"emailAddress": sorted(sha(i) for i in (0, 3, 4, 5))}


async def test_the_connection_default_applies_to_members_without_their_own(world: World) -> None:
    load(world, [person(0), person(1, consent_ad_personalization="granted")])
    audience = world.audience(SyncPlatform.GOOGLE)
    with transaction(world.factory) as session:
        connections = ConnectionRepository(session, world.tenant_id, world.cipher)
        connection = connections.get(SyncPlatform.GOOGLE)
        connection.settings = {
            **(connection.settings or {}),  # the Customer Match terms the world accepted
            "consent_ad_user_data": "granted",
            "consent_ad_personalization": "denied",
        }
    created = await world.sync(audience, SyncOperation.CREATE)
    assert created.details["dropped"] == {"consent_denied": 1}  # P0: personalization denied
    granted = {"adUserData": "CONSENT_GRANTED", "adPersonalization": "CONSENT_GRANTED"}
    assert await data_use(world, SyncPlatform.GOOGLE) == {f"emailAddress:{sha(1)}": granted}


async def test_a_member_whose_limited_data_use_changes_is_sent_again(world: World) -> None:
    load(world, [person(0), person(1, limited_data_use="California")])
    audience = world.audience(SyncPlatform.META)
    await world.sync(audience, SyncOperation.CREATE)
    used = await data_use(world, SyncPlatform.META)
    assert used[f"EMAIL:{sha(1)}"]["DATA_PROCESSING_OPTIONS_STATE"] == 1000
    assert used[f"EMAIL:{sha(0)}"]["DATA_PROCESSING_OPTIONS"] == []  # in a batch with LDU rows
    load(world, [person(0, limited_data_use="geolocate"), person(1, limited_data_use="california")])
    updated = await world.sync(audience)
    assert updated.details["prepared_members"] == 1
    assert updated.details["plan"]["adds"] == 1
    used = await data_use(world, SyncPlatform.META)
    assert used[f"EMAIL:{sha(0)}"]["DATA_PROCESSING_OPTIONS"] == ["LDU"]
    assert used[f"EMAIL:{sha(1)}"]["DATA_PROCESSING_OPTIONS_COUNTRY"] == 1
    assert await world.held(SyncPlatform.META, audience) == {"EMAIL": sorted([sha(0), sha(1)])}
