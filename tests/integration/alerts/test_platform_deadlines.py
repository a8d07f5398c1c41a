"""On a controlled clock, the rules about what a platform does in time: an audience the
platform may delete for inactivity (Meta: unused for two years) raises one alert within the
rule's days of that deadline; an audience syncing less often than its refresh margin (Google's
membership duration) raises one; each resolves once when it no longer holds, and neither fires
on the healthy path."""

from __future__ import annotations

from datetime import timedelta

from audience_sync.domain.models import SyncPlatform
from audience_sync.services import alerts
from audience_sync.store.db import transaction
from audience_sync.store.repositories import AudienceRepository
from audience_sync.store.tables import PlatformAudience

from .conftest import START, Env, Receiver

TWO_YEARS = timedelta(days=730)  # Meta's rule (connectors.registry, docs/freshness.md)


def _tick(env: Env, times: int = 2) -> None:
    for _ in range(times):
        alerts.upkeep(env.service)


def _audience(env: Env) -> PlatformAudience:
    with transaction(env.service.factory) as session:
        return AudienceRepository(session, env.tenant_id).get(env.audience_id)


def _set(env: Env, **fields: object) -> None:
    with transaction(env.service.factory) as session:
        audience = AudienceRepository(session, env.tenant_id).get(env.audience_id)
        for name, value in fields.items():
            setattr(audience, name, value)


def test_a_meta_audience_near_its_deadline_fires_once_and_resolves_once(
    env: Env, receiver: Receiver
) -> None:
    env.webhook(receiver.url)
    _set(env, auto_sync=False)  # paused: the stale rule stays quiet; a platform deletes anyway
    env.clock.now = START + TWO_YEARS - timedelta(days=31)
    _tick(env)
    assert env.events() == []
    env.clock.advance(days=2)
    _tick(env)
    (incident,) = env.events()
    assert (incident["rule"], incident["state"]) == ("inactivity_deletion", "open")
    assert incident["audience_id"] == str(env.audience_id)
    assert incident["facts"]["days_left"] == 29.0
    assert incident["title"] == "'VIP buyers' (meta) may be deleted for inactivity in 29 days"
    env.clock.advance(days=40)  # past the deadline: still the same incident, not a new one
    _tick(env)
    assert len(env.events()) == 1
    _set(env, is_active=False)  # deleted: nothing left to lose
    _tick(env)
    (incident,) = env.events()
    assert incident["state"] == "resolved"
    assert [r.json["type"] for r in receiver.received] == ["alert.raised", "alert.resolved"]
    assert receiver.received[0].json["rule"] == "inactivity_deletion"


def test_a_lower_threshold_resolves_it(env: Env) -> None:
    _set(env, auto_sync=False)
    env.clock.now = START + TWO_YEARS - timedelta(days=20)
    _tick(env)
    assert [e["state"] for e in env.events()] == ["open"]
    alerts.put_rules(
        env.service, env.tenant_id, {"inactivity_deletion": alerts.RuleChange(threshold=10)}
    )
    _tick(env)
    assert [e["state"] for e in env.events()] == ["resolved"]


def test_the_healthy_path_raises_nothing(env: Env, receiver: Receiver) -> None:
    """A Meta audience far from its deadline, and a Google one (no such deletion documented)
    however old, raise nothing."""
    env.webhook(receiver.url)
    _set(env, auto_sync=False)
    with transaction(env.service.factory) as session:
        google = _audience(env)
        AudienceRepository(session, env.tenant_id).add(
            PlatformAudience(
                segment_id=google.segment_id,
                platform=SyncPlatform.GOOGLE,
                platform_audience_name="VIP on Google",
                platform_audience_id="7000000001",
                ad_account_id="1234567890",
                sync_interval_hours=24,
                auto_sync=False,
                created_at=START - timedelta(days=3000),
            )
        )
    for days in (1, 300, 600, 698):
        env.clock.now = START + timedelta(days=days)
        _tick(env)
    assert env.events() == []
    assert receiver.received == []


def test_the_rule_turned_off_raises_nothing(env: Env) -> None:
    _set(env, auto_sync=False)
    alerts.put_rules(
        env.service, env.tenant_id, {"inactivity_deletion": alerts.RuleChange(enabled=False)}
    )
    env.clock.now = START + TWO_YEARS
    _tick(env)
    assert env.events() == []


def _google(env: Env, name: str, interval_hours: int, **config: object) -> None:
    segment_id = _audience(env).segment_id
    with transaction(env.service.factory) as session:
        AudienceRepository(session, env.tenant_id).add(
            PlatformAudience(
                segment_id=segment_id,
                platform=SyncPlatform.GOOGLE,
                platform_audience_name=name,
                platform_audience_id=f"70000{interval_hours}",
                ad_account_id="1234567890",
                sync_interval_hours=interval_hours,
                config=config,
                created_at=env.clock.now,
            )
        )


def test_a_schedule_longer_than_the_refresh_margin_fires_once_and_resolves_once(
    env: Env, receiver: Receiver
) -> None:
    """A 10-day membership keeps a 5-day margin (at most half the lifetime): a weekly sync
    lets members expire. A daily one does not; neither does a weekly one on 540 days."""
    env.webhook(receiver.url)
    _google(env, "Short list", 168, membership_days=10)
    _google(env, "Long list", 168)  # the default 540 days: a 30-day margin
    _tick(env)
    _tick(env)
    (incident,) = env.events()
    assert (incident["rule"], incident["state"]) == ("members_expiring", "open")
    assert incident["facts"]["margin_days"] == 5.0
    assert "'Short list' (google) syncs every 168 hours" in incident["title"]
    with transaction(env.service.factory) as session:
        for found in AudienceRepository(session, env.tenant_id).list():
            if found.platform_audience_name == "Short list":
                found.sync_interval_hours = 24
    _tick(env)
    (incident,) = env.events()
    assert incident["state"] == "resolved"
    assert [r.json["type"] for r in receiver.received] == ["alert.raised", "alert.resolved"]
