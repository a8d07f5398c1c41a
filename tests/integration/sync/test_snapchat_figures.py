"""Snapchat's figures: profiles counted as members, the match rate from Snap's own count of the
users it found (people, not identifiers), never a made-up 100%."""

from __future__ import annotations

import hashlib

import httpx

from audience_sync.domain.models import SyncOperation, SyncPlatform, SyncStatus
from audience_sync.sandbox.settings import SANDBOX_TOKEN
from audience_sync.store.db import transaction
from audience_sync.store.repositories import AudienceRepository
from audience_sync.testing.support import PREFIXES, SANDBOX_URL

from .world import World, row


async def test_a_snapchat_match_rate_is_the_share_of_members_snap_found(world: World) -> None:
    # Every member sends an email, a third a phone, a quarter a mobile id: ~1.6 identifiers a
    # member. The sandbox matches 70% of identifiers (its default).
    world.load([row(i) for i in range(1_300)])
    audience = world.audience(SyncPlatform.SNAPCHAT)
    created = await world.sync(audience, SyncOperation.CREATE)
    assert created.status is SyncStatus.COMPLETED, created.error_message
    assert (created.profiles_sent, created.profiles_added) == (1_300, 1_300)
    assert created.match_rate is not None
    assert 0.6 < created.match_rate < 0.8
    with transaction(world.factory) as session:
        stored = AudienceRepository(session, world.tenant_id).get(audience)
        assert stored.platform_size is not None
        assert stored.platform_size <= 1_300
        assert stored.match_rate == created.match_rate


async def test_a_platform_count_above_the_members_sent_gives_no_match_rate(world: World) -> None:
    world.load([row(i) for i in range(1_300)])
    audience = world.audience(SyncPlatform.SNAPCHAT)
    created = await world.sync(audience, SyncOperation.CREATE)
    assert created.status is SyncStatus.COMPLETED, created.error_message
    # Someone adds 2,000 people to the segment on Snapchat, outside the sync.
    with transaction(world.factory) as session:
        platform_id = (
            AudienceRepository(session, world.tenant_id).get(audience).platform_audience_id
        )
    outside = [hashlib.sha256(f"other.{i}@example.com".encode()).hexdigest() for i in range(2_000)]
    body = {"users": [{"schema": ["EMAIL_SHA256"], "data": [[d] for d in outside]}]}
    transport = httpx.ASGITransport(app=world.sandbox)
    async with httpx.AsyncClient(transport=transport, base_url=SANDBOX_URL) as client:
        answer = await client.post(
            f"{PREFIXES['snapchat']}/segments/{platform_id}/users",
            json=body,
            headers={"Authorization": f"Bearer {SANDBOX_TOKEN}"},
        )
        assert answer.status_code == 200, answer.text
    again = await world.sync(audience)
    assert again.status is SyncStatus.COMPLETED, again.error_message
    assert again.match_rate is None, "Snap found more people than were sent: no share of them"
    with transaction(world.factory) as session:
        stored = AudienceRepository(session, world.tenant_id).get(audience)
        assert stored.platform_size is not None
        assert stored.platform_size > 1_300
        assert stored.match_rate is None
