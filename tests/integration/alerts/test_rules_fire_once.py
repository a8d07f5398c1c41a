"""On a controlled clock, each rule raises one incident, resolves it once, and stays quiet on
the healthy path; each change is delivered once to a real webhook receiver."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import event

from audience_sync.domain.models import SyncPlatform, SyncStatus
from audience_sync.services import alerts
from audience_sync.store.db import transaction
from audience_sync.store.repositories import AudienceRepository, ConnectionRepository
from audience_sync.store.tables import PlatformAudience

from .conftest import Env, Receiver

DONE, FAILED = SyncStatus.COMPLETED, SyncStatus.FAILED
HEALTHY: dict[str, Any] = {"members": 1000, "failed": 10, "platform_size": 1000, "match_rate": 0.7}
REFUSED = "Update refused: it would remove 900 of 1,000 records (90%, above the 50% guard rail)."


def step(**changes: Any) -> tuple[SyncStatus, dict[str, Any]]:
    return DONE, {**HEALTHY, **changes}


CASES = {
    # rule: (setup, first bad job, second bad job, good job)
    "sync_failed": ([], (FAILED, {"error": "Meta refused"}), (FAILED, {"error": "again"}), step()),
    "guard_rail": (
        [],
        (FAILED, {"error": REFUSED, "error_code": "guard_rail"}),
        (FAILED, {"error": REFUSED, "error_code": "guard_rail"}),
        step(),
    ),
    "members_dropped": ([], step(failed=300), step(failed=250), step()),
    "platform_size_drop": ([step()], step(platform_size=500), step(platform_size=240),
                           step(platform_size=240)),
    "match_rate_drop": ([step()], step(match_rate=0.5), step(match_rate=0.3),
                        step(match_rate=0.3)),
}  # fmt: skip


def of_rule(env: Env, rule: str) -> list[dict[str, Any]]:
    return [event for event in env.events() if event["rule"] == rule]


@pytest.mark.parametrize("rule", list(CASES))
def test_each_job_rule_fires_once_and_resolves_once(
    env: Env, receiver: Receiver, rule: str
) -> None:
    env.webhook(receiver.url)
    setup, bad, worse, good = CASES[rule]
    for status, fields in setup:
        env.ended(status, **fields)
    assert of_rule(env, rule) == []
    env.ended(bad[0], **bad[1])
    env.ended(worse[0], **worse[1])  # still the same incident
    (incident,) = of_rule(env, rule)
    assert incident["state"] == "open"
    assert [(d["event"], d["status"]) for d in incident["deliveries"]] == [("raised", "sent")]
    env.ended(*good[:1], **good[1])
    env.ended(*good[:1], **good[1])  # stays resolved, says nothing more
    (incident,) = of_rule(env, rule)
    assert incident["state"] == "resolved"
    events = [(d["event"], d["status"]) for d in incident["deliveries"]]
    assert events == [("raised", "sent"), ("resolved", "sent")]
    sent = [r.json for r in receiver.received if r.json["rule"] == rule]
    assert [r["type"] for r in sent] == ["alert.raised", "alert.resolved"]
    assert {e["rule"] for e in env.events()} == {rule}  # no other rule fired on the way


def test_the_healthy_path_raises_nothing(env: Env, receiver: Receiver) -> None:
    env.webhook(receiver.url)
    for _ in range(4):
        env.ended(DONE, **HEALTHY)
        env.clock.advance(hours=24)
        alerts.upkeep(env.service)
    assert env.events() == []
    assert receiver.received == []


def test_a_job_waiting_for_a_retry_raises_nothing(env: Env, receiver: Receiver) -> None:
    env.webhook(receiver.url)
    env.ended(SyncStatus.PENDING, error="Meta had a server error (retry 1 of 4)")
    assert env.events() == []


def test_a_stale_audience_fires_once_past_twice_its_interval(env: Env, receiver: Receiver) -> None:
    env.webhook(receiver.url)
    env.ended(DONE, **HEALTHY)
    env.clock.advance(hours=47)
    alerts.upkeep(env.service)
    assert env.events() == []
    env.clock.advance(hours=2)
    alerts.upkeep(env.service)
    alerts.upkeep(env.service)
    (incident,) = env.events()
    assert (incident["rule"], incident["state"]) == ("stale_audience", "open")
    env.ended(DONE, **HEALTHY)
    alerts.upkeep(env.service)
    alerts.upkeep(env.service)
    (incident,) = env.events()
    assert incident["state"] == "resolved"
    assert [r.json["type"] for r in receiver.received] == ["alert.raised", "alert.resolved"]


def test_a_connection_to_reconnect_fires_once_and_resolves_on_reconnect(
    env: Env, receiver: Receiver
) -> None:
    env.webhook(receiver.url)
    env.ended(DONE, **HEALTHY)
    _set_status(env, "needs_reconnect")
    alerts.upkeep(env.service)
    alerts.upkeep(env.service)
    (incident,) = env.events()
    assert (incident["rule"], incident["state"]) == ("connection", "open")
    _set_status(env, "connected")
    alerts.upkeep(env.service)
    (incident,) = env.events()
    assert incident["state"] == "resolved"
    assert [r.json["type"] for r in receiver.received] == ["alert.raised", "alert.resolved"]


def _set_status(env: Env, status: str) -> None:
    from audience_sync.domain.models import SyncPlatform

    with transaction(env.service.factory) as session:
        connection = ConnectionRepository(session, env.tenant_id, env.service.cipher).get(
            SyncPlatform.META
        )
        connection.status = status


def test_a_rule_turned_off_raises_nothing(env: Env, receiver: Receiver) -> None:
    env.webhook(receiver.url)
    alerts.put_rules(env.service, env.tenant_id, {"sync_failed": alerts.RuleChange(enabled=False)})
    env.ended(FAILED, error="Meta refused")
    assert env.events() == []


def test_a_threshold_is_the_tenants(env: Env) -> None:
    change = {"members_dropped": alerts.RuleChange(threshold=50)}
    alerts.put_rules(env.service, env.tenant_id, change)
    env.ended(DONE, **{**HEALTHY, "failed": 300})  # 30%: under the tenant's 50
    assert env.events() == []
    env.ended(DONE, **{**HEALTHY, "failed": 600})
    assert [e["rule"] for e in env.events()] == ["members_dropped"]


def test_a_job_whose_hook_never_ran_is_caught_up_by_the_tick(env: Env, receiver: Receiver) -> None:
    env.webhook(receiver.url)
    env.job(FAILED, error="the worker went silent, so it was not resumed again")  # no hook
    assert env.events() == []
    alerts.upkeep(env.service)
    alerts.upkeep(env.service)
    (incident,) = env.events()
    assert (incident["rule"], incident["state"]) == ("sync_failed", "open")
    assert [r.json["type"] for r in receiver.received] == ["alert.raised"]


def _set_token(env: Env, expires_in: timedelta, *, renewable: bool) -> None:
    from audience_sync.domain.models import SyncPlatform

    with transaction(env.service.factory) as session:
        connection = ConnectionRepository(session, env.tenant_id, env.service.cipher).get(
            SyncPlatform.META
        )
        connection.token_expires_at = env.clock.now + expires_in
        hint = dict(connection.credentials_hint or {})
        hint.pop("refresh_token", None)
        if renewable:
            hint["refresh_token"] = "****oken"
        connection.credentials_hint = hint


def test_a_token_nothing_renews_alerts_a_week_before_it_expires(
    env: Env, receiver: Receiver
) -> None:
    env.webhook(receiver.url)
    _set_token(env, timedelta(days=10), renewable=False)
    alerts.upkeep(env.service)
    assert env.events() == []
    _set_token(env, timedelta(days=5), renewable=False)
    alerts.upkeep(env.service)
    alerts.upkeep(env.service)
    (incident,) = env.events()
    assert (incident["rule"], incident["state"]) == ("connection", "open")


def test_a_token_the_service_refreshes_never_reads_expiring() -> None:
    """Google's one-hour token is renewed by the sync itself: no expiry for the alert rule;
    the same expiry on a token with no refresh token is one."""
    from datetime import UTC, datetime

    from audience_sync.domain.models import SyncPlatform
    from audience_sync.services.alerts.incidents import _token
    from audience_sync.store.tables import PlatformConnection

    now = datetime(2026, 12, 5, tzinfo=UTC)
    soon = now + timedelta(minutes=30)
    renewed = PlatformConnection(
        platform=SyncPlatform.GOOGLE,
        status="connected",
        token_expires_at=soon,
        credentials_hint={"access_token": "****", "refresh_token": "****oken"},
    )
    assert _token(renewed, now) == ("connected", None)
    pasted = PlatformConnection(
        platform=SyncPlatform.GOOGLE,
        status="connected",
        token_expires_at=soon,
        credentials_hint={"access_token": "****"},
    )
    assert _token(pasted, now) == ("connected", soon)


def test_the_tick_reads_the_open_incidents_once_not_per_audience(
    env: Env, receiver: Receiver
) -> None:
    """Regression: `incidents.apply` read each verdict's open incident with a query of its own
    (eight rules an audience): ~2,200 queries a tick for 200 audiences, seconds of a worker's
    time every tick (docs/performance.md, "Many audiences, many workers")."""
    env.webhook(receiver.url)
    with transaction(env.service.factory) as session:
        audience = AudienceRepository(session, env.tenant_id).get(env.audience_id)
        segment_id = audience.segment_id
        for number in range(20):
            AudienceRepository(session, env.tenant_id).add(
                PlatformAudience(
                    segment_id=segment_id,
                    platform=SyncPlatform.META,
                    platform_audience_name=f"More {number}",
                    ad_account_id="1234567890",
                    created_at=env.service.clock(),
                )
            )
    env.ended(FAILED, error="Meta refused")  # one incident open, to be found again
    statements: list[str] = []

    def seen(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        statements.append(statement)

    event.listen(env.service.engine, "before_cursor_execute", seen)
    try:
        alerts.upkeep(env.service)
    finally:
        event.remove(env.service.engine, "before_cursor_execute", seen)
    reads = [s for s in statements if s.lstrip().upper().startswith("SELECT")]
    incident_reads = [s for s in reads if "FROM alert_incidents" in s]
    # The open incidents of the time rules (those to clear), then of the verdicts' rules: 67
    # reads for these 21 audiences before.
    assert len(incident_reads) <= 2, incident_reads
    (incident,) = of_rule(env, "sync_failed")
    assert incident["state"] == "open"  # still the one incident, not raised again
