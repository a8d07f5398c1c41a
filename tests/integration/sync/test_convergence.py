"""I1/I2 convergence: after every completed sync the sandbox holds exactly what the segment's
current members derive to under the platform's rules — through creates, churn, changed emails,
shared identifiers, injected faults and replaces, on every platform and both databases."""

from __future__ import annotations

import pytest

from audience_sync.domain.models import SyncOperation, SyncPlatform, SyncStatus

from .world import PLATFORMS, World, row


@pytest.mark.parametrize("platform", PLATFORMS, ids=lambda p: p.value)
async def test_the_platform_converges_through_churn_and_faults(
    world: World, platform: SyncPlatform
) -> None:
    world.load([row(i) for i in range(1_300)])  # TikTok's replace keeps at least 1,000
    audience = world.audience(platform)

    created = await world.sync(audience, SyncOperation.CREATE)
    assert created.status is SyncStatus.COMPLETED, created.error_message
    assert await world.held(platform, audience) == world.expected(platform)
    assert created.profiles_added == 1_300

    # Churn: 40 members leave, 30 change their email, 20 join; two share one email.
    world.leave(*[f"P{i}" for i in range(40)])
    world.load(
        [row(i, email=f"new.{i}@example.com") for i in range(100, 130)]
        + [row(i) for i in range(1_300, 1_320)]
        + [row(2_000, email="shared@example.com"), row(2_001, email="shared@example.com")]
    )
    await world.fault(platform, "server_error")
    await world.fault(platform, "rate_limit")
    await world.fault(platform, "drop_connection", process=True)  # the write lands, no answer
    await world.fault(platform, "timeout", delay_seconds=3.0)  # processed, answer too late
    updated = await world.sync(audience)
    assert updated.status is SyncStatus.COMPLETED, updated.error_message
    assert await world.faults_pending() == []  # each fault really hit a request
    assert await world.held(platform, audience) == world.expected(platform)
    assert updated.profiles_removed > 0

    # One of the two members sharing an email leaves: the email must stay.
    world.leave("P2000")
    again = await world.sync(audience)
    assert again.status is SyncStatus.COMPLETED, again.error_message
    assert await world.held(platform, audience) == world.expected(platform)

    replaced = await world.sync(audience, SyncOperation.REPLACE)
    assert replaced.status is SyncStatus.COMPLETED, replaced.error_message
    assert await world.held(platform, audience) == world.expected(platform)

    # A sync with nothing to do sends nothing.
    idle = await world.sync(audience)
    assert (idle.profiles_sent, idle.profiles_added, idle.profiles_removed) == (0, 0, 0)
