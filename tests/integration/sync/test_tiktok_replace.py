"""A TikTok replace runs as a difference from the confirmed snapshot (TikTok's own replace is for
Customer File audiences only), and the sandbox then holds exactly the segment's members."""

from __future__ import annotations

import httpx

from audience_sync.domain.models import SyncOperation, SyncPlatform, SyncStatus
from audience_sync.testing.support import SANDBOX_URL

from .world import World, row


async def test_a_tiktok_replace_leaves_exactly_the_segment_through_segment_mapping(
    world: World,
) -> None:
    world.load([row(i) for i in range(300)])
    audience = world.audience(SyncPlatform.TIKTOK)
    created = await world.sync(audience, SyncOperation.CREATE)
    assert created.status is SyncStatus.COMPLETED, created.error_message

    # Two thirds leave (past the update's 50% guard rail), some change, some join.
    world.leave(*[f"P{i}" for i in range(200)])
    world.load(
        [row(i, email=f"changed.{i}@example.com") for i in range(250, 260)]
        + [row(i) for i in range(300, 350)]
    )
    replaced = await world.sync(audience, SyncOperation.REPLACE)

    assert replaced.status is SyncStatus.COMPLETED, replaced.error_message
    assert await world.held(SyncPlatform.TIKTOK, audience) == world.expected(SyncPlatform.TIKTOK)
    assert replaced.profiles_removed >= 200
    assert replaced.profiles_added == 60  # the 50 who joined and the 10 who changed
    transport = httpx.ASGITransport(app=world.sandbox)
    async with httpx.AsyncClient(transport=transport, base_url=SANDBOX_URL) as client:
        log = (await client.get("/_sandbox/requests", params={"platform": "tiktok"})).json()
    paths = {entry["path"].rsplit("/v1.3/", 1)[1] for entry in log}
    assert paths == {"segment/audience/", "segment/mapping/", "dmp/custom_audience/get/"}
