"""Pre-hashed identifiers (`email_sha256`, `phone_sha256` at import) reach every platform as the
digest given, lowercased, never hashed twice, and are counted as sent."""

from __future__ import annotations

import csv
import hashlib

import pytest

from audience_sync.domain.models import SyncOperation, SyncPlatform
from audience_sync.sources.importer import import_profiles

from .world import PLATFORMS, World


def digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


EMAILS = [digest(f"person.{i}@example.com") for i in range(4)]
PHONES = [digest(f"1650555{i:04d}") for i in range(4)]
# Where the platform puts each field (the sandbox's keys).
KEYS = {
    SyncPlatform.META: ("EMAIL", "PHONE"),
    SyncPlatform.GOOGLE: ("emailAddress", "phoneNumber"),
    SyncPlatform.TIKTOK: ("EMAIL_SHA256", "PHONE_SHA256"),
    SyncPlatform.SNAPCHAT: ("EMAIL_SHA256", "PHONE_SHA256"),
}


def load_prehashed(world: World) -> None:
    """P0-P3: an email digest each, in capitals for P0 and P2; P0 a phone digest, P1 two in
    one cell (`;`-separated, as docs/normalization.md suggests for both phone forms)."""
    path = world.tmp / "prehashed.csv"
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["profile_id", "email_sha256", "phone_sha256"])
        for i, email in enumerate(EMAILS):
            phone = {0: PHONES[0], 1: f"{PHONES[1]};{PHONES[2]}"}.get(i, "")
            writer.writerow([f"P{i}", email.upper() if i % 2 == 0 else email, phone.upper()])
    import_profiles(world.factory, path, tenant="default", segment="VIP")


@pytest.mark.parametrize("platform", PLATFORMS, ids=lambda p: p.value)
async def test_a_prehashed_email_and_phone_are_sent_as_the_digest_lowercased(
    world: World, platform: SyncPlatform
) -> None:
    load_prehashed(world)
    audience = world.audience(platform)
    job = await world.sync(audience, SyncOperation.CREATE)
    held = await world.held(platform, audience)
    email_key, phone_key = KEYS[platform]
    assert sorted(held[email_key]) == sorted(EMAILS)
    assert sorted(held[phone_key]) == sorted(PHONES[:3])
    assert job.profiles_sent == 4
    assert job.profiles_failed == 0
    assert job.details["dropped"] == {}
    assert job.details["diagnostics"]["counts"] == []


@pytest.mark.parametrize("platform", PLATFORMS, ids=lambda p: p.value)
async def test_a_replace_and_an_update_keep_the_same_digests(
    world: World, platform: SyncPlatform
) -> None:
    """A replace prepares every member again (Meta's through its own `prepare`); an update
    after it finds nothing to send."""
    load_prehashed(world)
    audience = world.audience(platform)
    await world.sync(audience, SyncOperation.CREATE)
    replaced = await world.sync(audience, SyncOperation.REPLACE)
    held = await world.held(platform, audience)
    email_key, phone_key = KEYS[platform]
    assert (sorted(held[email_key]), sorted(held[phone_key])) == (
        sorted(EMAILS),
        sorted(PHONES[:3]),
    )
    assert replaced.details["dropped"] == {}
    updated = await world.sync(audience)
    assert updated.details["dropped"] == {}
    assert updated.details["plan"]["adds"] == updated.details["plan"]["removes"] == 0
