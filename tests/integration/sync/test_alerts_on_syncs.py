"""Alerts from real syncs against the sandbox: the run boundary's hook raises them, a guard
rail's refusal is told apart from a failure, and no body names a member or a token."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from audience_sync.config import Settings
from audience_sync.domain.models import SyncOperation, SyncPlatform, SyncStatus
from audience_sync.services import alerts
from audience_sync.testing.receiver import Receiver, receiving

from .world import World, row

SNAP = SyncPlatform.SNAPCHAT
SECRET = "whsec-0123456789abcdef"


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with receiving() as found:
        yield found


def webhook(world: World, receiver: Receiver) -> None:
    world.service.settings = Settings(alert_allow_private_webhooks=True)
    channel = alerts.NewChannel(kind="webhook", url=receiver.url, secret=SECRET)
    alerts.create_channel(world.service, world.tenant_id, channel)


def leaks(receiver: Receiver) -> list[str]:
    """Anything in the bodies that names a member or opens an account."""
    found = []
    for arrived in receiver.received:
        text = arrived.body.decode().lower()
        # The members' phones, raw and normalized: not "650" alone, which a random id in the
        # body (a delivery id, a timestamp) holds now and then.
        for needle in (
            "@example.com",
            "person.",
            "sandbox-token",
            "(650)",
            "6505550",
            SECRET.lower(),
        ):
            if needle in text:
                found.append(needle)
    return found


async def test_a_guard_rail_refusal_alerts_as_such_and_resolves_when_forced(
    world: World, receiver: Receiver
) -> None:
    world.load([row(i) for i in range(20)])
    audience = world.audience(SNAP)
    webhook(world, receiver)
    await world.sync(audience, SyncOperation.CREATE)
    world.leave(*[f"P{i}" for i in range(15)])
    refused = await world.sync(audience)
    assert refused.status is SyncStatus.FAILED
    assert refused.details["error_code"] == "guard_rail"
    found = alerts.events(world.service, world.tenant_id)
    assert [(e["rule"], e["state"]) for e in found] == [("guard_rail", "open")], found
    await world.sync(audience, force=True)
    # The forced removal of 15 of 20 members also shrinks the platform's audience: that is
    # its own alert (platform_size_drop), which the guard rail's resolution does not hide.
    found = {e["rule"]: e["state"] for e in alerts.events(world.service, world.tenant_id)}
    assert found["guard_rail"] == "resolved"
    assert "sync_failed" not in found
    sent = [r.json["type"] for r in receiver.received if r.json["rule"] == "guard_rail"]
    assert sent == ["alert.raised", "alert.resolved"]
    assert "guard rail" in receiver.received[0].json["facts"]["error"]
    assert leaks(receiver) == []


async def test_an_expired_token_alerts_the_failure_and_the_connection(
    world: World, receiver: Receiver
) -> None:
    world.load([row(i) for i in range(5)])
    audience = world.audience(SyncPlatform.TIKTOK)
    webhook(world, receiver)
    await world.fault(SyncPlatform.TIKTOK, "expired_token", count=10)
    failed = await world.sync(audience, SyncOperation.CREATE)
    assert failed.status is SyncStatus.FAILED
    alerts.upkeep(world.service)
    rules = sorted(e["rule"] for e in alerts.events(world.service, world.tenant_id))
    assert rules == ["connection", "sync_failed"]
    assert len(receiver.received) == 2
    assert leaks(receiver) == []
