"""The alert rules over plain facts: each fires on its condition and stays quiet otherwise."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from audience_sync.services.alerts.rules import (
    GUARD_RAIL_CODE,
    JobFacts,
    Rule,
    RuleConfig,
    connection_finding,
    job_findings,
    stale_finding,
)

NOW = datetime(2026, 12, 1, tzinfo=UTC)
HEALTHY = JobFacts(
    job_id="j2",
    audience="VIP",
    platform="meta",
    status="completed",
    members=1000,
    failed=100,  # 10%: under 20
    platform_size=800,
    match_rate=0.70,
    previous_size=900,  # -11%: under 30
    previous_match_rate=0.75,  # -5 points: under 15
)


def fired(facts: JobFacts, config: RuleConfig | None = None) -> set[Rule]:
    found = job_findings(facts, config or RuleConfig())
    return {rule for rule, finding in found.items() if finding is not None}


def _replace(**changes: object) -> JobFacts:
    from dataclasses import replace

    return replace(HEALTHY, **changes)  # type: ignore[arg-type]


def test_a_healthy_completed_job_fires_nothing_and_clears_every_job_rule() -> None:
    found = job_findings(HEALTHY, RuleConfig())
    assert set(found) == {
        Rule.SYNC_FAILED,
        Rule.GUARD_RAIL,
        Rule.DROPPED,
        Rule.SIZE_DROP,
        Rule.MATCH_DROP,
    }
    assert all(finding is None for finding in found.values())


def test_a_final_failure_fires_sync_failed_and_leaves_the_figure_rules_alone() -> None:
    found = job_findings(_replace(status="failed", error="Meta refused"), RuleConfig())
    assert found[Rule.SYNC_FAILED] is not None
    assert found[Rule.GUARD_RAIL] is None
    assert Rule.DROPPED not in found
    assert Rule.SIZE_DROP not in found


def test_a_guard_rail_refusal_is_its_own_rule_not_a_failure() -> None:
    refused = _replace(status="failed", error_code=GUARD_RAIL_CODE)
    assert fired(refused) == {Rule.GUARD_RAIL}


def test_dropped_members_fire_above_the_threshold_only() -> None:
    assert fired(_replace(failed=201)) == {Rule.DROPPED}
    assert fired(_replace(failed=200)) == set()  # exactly 20%: not more than 20%


def test_a_fall_in_platform_size_fires_above_the_threshold() -> None:
    assert fired(_replace(platform_size=600)) == {Rule.SIZE_DROP}  # -33%
    assert fired(_replace(previous_size=None)) == set()  # a first sync has nothing to compare


def test_a_fall_in_match_rate_is_counted_in_points() -> None:
    assert fired(_replace(match_rate=0.59)) == {Rule.MATCH_DROP}  # -16 points
    assert fired(_replace(match_rate=0.61)) == set()


def test_thresholds_and_switches_are_the_tenants() -> None:
    strict = RuleConfig(thresholds={Rule.DROPPED: 5.0})
    assert fired(HEALTHY, strict) == {Rule.DROPPED}
    off = RuleConfig(enabled={Rule.DROPPED: False})
    assert Rule.DROPPED not in job_findings(_replace(failed=900), off)


def test_an_audience_is_stale_past_twice_its_interval() -> None:
    last = NOW - timedelta(hours=47)
    assert stale_finding("VIP", "meta", 24, last, last, NOW, 2.0) is None
    late = stale_finding("VIP", "meta", 24, NOW - timedelta(hours=49), last, NOW, 2.0)
    assert late is not None
    assert late.rule is Rule.STALE


def test_a_connection_fires_when_it_needs_reconnecting_or_expires_soon() -> None:
    assert connection_finding("google", "connected", None, NOW, 7) is None
    assert connection_finding("google", "needs_reconnect", None, NOW, 7) is not None
    soon = NOW + timedelta(days=6)
    assert connection_finding("google", "connected", soon, NOW, 7) is not None
    assert connection_finding("google", "connected", NOW + timedelta(days=8), NOW, 7) is None
