"""The alert rules, as pure functions over plain facts: what holds now for one subject.

Each rule looks at a subject (an audience, a connection) and says either "this holds" (a
`Finding`, which raises an incident if none is open) or "all clear" (None, which resolves the
open one). Evaluation is level-triggered: it can run any number of times and raises an incident
once, resolves it once (`services.alerts.incidents`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any


class Rule(StrEnum):
    SYNC_FAILED = "sync_failed"  # a sync failed for good (after its last retry)
    CONNECTION = "connection"  # needs reconnecting, or its token expires within N days
    DROPPED = "members_dropped"  # more than X% of a job's members dropped or refused
    SIZE_DROP = "platform_size_drop"  # the platform's size fell more than Y% since the last sync
    MATCH_DROP = "match_rate_drop"  # the match rate fell more than Z points
    STALE = "stale_audience"  # not synced for longer than N times its interval
    GUARD_RAIL = "guard_rail"  # a guard rail refused a run


# Each rule's threshold by default, and what it means (None: the rule has none).
DEFAULTS: dict[Rule, float | None] = {
    Rule.SYNC_FAILED: None,
    Rule.CONNECTION: 7.0,  # days before the token expires
    Rule.DROPPED: 20.0,  # percent of the job's members
    Rule.SIZE_DROP: 30.0,  # percent of the previous size
    Rule.MATCH_DROP: 15.0,  # percentage points
    Rule.STALE: 2.0,  # times the audience's interval
    Rule.GUARD_RAIL: None,
}
UNITS: dict[Rule, str] = {
    Rule.CONNECTION: "days",
    Rule.DROPPED: "percent",
    Rule.SIZE_DROP: "percent",
    Rule.MATCH_DROP: "points",
    Rule.STALE: "intervals",
}
JOB_RULES = (Rule.SYNC_FAILED, Rule.GUARD_RAIL, Rule.DROPPED, Rule.SIZE_DROP, Rule.MATCH_DROP)
# What `sync.jobs.fail_job` records in `details["error_code"]` for a guard rail's refusal.
GUARD_RAIL_CODE = "guard_rail"


@dataclass(frozen=True, slots=True)
class RuleConfig:
    """A tenant's rules: which are on, and each one's threshold."""

    enabled: dict[Rule, bool] = field(default_factory=lambda: dict.fromkeys(Rule, True))
    thresholds: dict[Rule, float | None] = field(default_factory=lambda: dict(DEFAULTS))

    def on(self, rule: Rule) -> bool:
        return self.enabled.get(rule, True)

    def threshold(self, rule: Rule) -> float:
        value = self.thresholds.get(rule)
        default = DEFAULTS[rule]
        return float(value if value is not None else default or 0.0)


@dataclass(frozen=True, slots=True)
class Finding:
    """A rule that holds: what the alert says (names, figures, job ids; no identifier)."""

    rule: Rule
    title: str
    facts: dict[str, Any]


@dataclass(frozen=True, slots=True)
class JobFacts:
    """What the job rules read of a finished job, and of the audience's sync before it."""

    job_id: str
    audience: str  # the audience's name
    platform: str
    status: str  # completed | failed
    error: str | None = None
    error_code: str | None = None
    members: int | None = None
    failed: int = 0  # members dropped (no usable identifier) or refused by the platform
    platform_size: int | None = None
    match_rate: float | None = None  # a share, 0 to 1
    previous_size: int | None = None
    previous_match_rate: float | None = None


def job_findings(facts: JobFacts, config: RuleConfig) -> dict[Rule, Finding | None]:
    """Each job rule's verdict after this job. A failed job says nothing of its figures, so
    the figure rules are left as they are (absent from the answer); a completed one clears
    the failure rules."""
    base = {"audience": facts.audience, "platform": facts.platform, "job_id": facts.job_id}
    verdicts: dict[Rule, Finding | None] = {}
    if facts.status == "failed":
        refused = facts.error_code == GUARD_RAIL_CODE
        verdicts[Rule.GUARD_RAIL] = _guard_rail(facts, base) if refused else None
        verdicts[Rule.SYNC_FAILED] = None if refused else _failed(facts, base)
    elif facts.status == "completed":
        verdicts[Rule.GUARD_RAIL] = verdicts[Rule.SYNC_FAILED] = None
        verdicts[Rule.DROPPED] = _dropped(facts, base, config.threshold(Rule.DROPPED))
        verdicts[Rule.SIZE_DROP] = _size_drop(facts, base, config.threshold(Rule.SIZE_DROP))
        verdicts[Rule.MATCH_DROP] = _match_drop(facts, base, config.threshold(Rule.MATCH_DROP))
    return {rule: found for rule, found in verdicts.items() if config.on(rule)}


def _failed(facts: JobFacts, base: dict[str, Any]) -> Finding:
    return Finding(
        Rule.SYNC_FAILED,
        f"Sync of {facts.audience!r} ({facts.platform}) failed after its last retry",
        {**base, "error": facts.error},
    )


def _guard_rail(facts: JobFacts, base: dict[str, Any]) -> Finding:
    return Finding(
        Rule.GUARD_RAIL,
        f"A guard rail stopped the sync of {facts.audience!r} ({facts.platform})",
        {**base, "error": facts.error},
    )


def _dropped(facts: JobFacts, base: dict[str, Any], limit: float) -> Finding | None:
    if not facts.members:
        return None
    share = 100.0 * facts.failed / facts.members
    if share <= limit:
        return None
    return Finding(
        Rule.DROPPED,
        f"{share:.0f}% of the members of {facts.audience!r} were dropped or refused",
        {**base, "members": facts.members, "dropped_or_refused": facts.failed,
         "percent": round(share, 1), "threshold_percent": limit},
    )  # fmt: skip


def _size_drop(facts: JobFacts, base: dict[str, Any], limit: float) -> Finding | None:
    before, now = facts.previous_size, facts.platform_size
    if before is None or now is None or before <= 0:
        return None
    fall = 100.0 * (before - now) / before
    if fall <= limit:
        return None
    return Finding(
        Rule.SIZE_DROP,
        f"{facts.audience!r} on {facts.platform} fell {fall:.0f}% since the previous sync",
        {**base, "previous_size": before, "platform_size": now, "percent": round(fall, 1),
         "threshold_percent": limit},
    )  # fmt: skip


def _match_drop(facts: JobFacts, base: dict[str, Any], limit: float) -> Finding | None:
    before, now = facts.previous_match_rate, facts.match_rate
    if before is None or now is None:
        return None
    points = 100.0 * (before - now)
    if points <= limit:
        return None
    return Finding(
        Rule.MATCH_DROP,
        f"The match rate of {facts.audience!r} fell {points:.0f} points since the previous sync",
        {**base, "previous_match_rate": round(before, 4), "match_rate": round(now, 4),
         "points": round(points, 1), "threshold_points": limit},
    )  # fmt: skip


def stale_finding(
    audience: str,
    platform: str,
    interval_hours: int,
    last_synced: datetime | None,
    since: datetime,
    now: datetime,
    times: float,
) -> Finding | None:
    """An audience on a schedule whose last completed sync (or, never synced, its creation:
    `since`) is older than `times` its interval."""
    base = last_synced or since
    limit = timedelta(hours=interval_hours * times)
    if now - base <= limit:
        return None
    hours = (now - base).total_seconds() / 3600
    return Finding(
        Rule.STALE,
        f"{audience!r} ({platform}) has not synced for {hours:.0f} hours",
        {"audience": audience, "platform": platform, "interval_hours": interval_hours,
         "last_synced_at": last_synced.isoformat() if last_synced else None,
         "hours_since": round(hours, 1)},
    )  # fmt: skip


def connection_finding(
    platform: str, status: str, expires_at: datetime | None, now: datetime, days: float
) -> Finding | None:
    """A connection to reconnect now, or whose token expires within `days`. `expires_at` is
    None until connections record their token's expiry (then it is read here as it is)."""
    if status == "needs_reconnect":
        return Finding(
            Rule.CONNECTION,
            f"The {platform} connection needs reconnecting",
            {"platform": platform, "status": status},
        )
    if expires_at is not None and expires_at - now <= timedelta(days=days):
        left = max(0.0, (expires_at - now).total_seconds() / 86400)
        return Finding(
            Rule.CONNECTION,
            f"The {platform} connection's token expires in {left:.0f} days",
            {
                "platform": platform,
                "expires_at": expires_at.isoformat(),
                "days_left": round(left, 1),
            },
        )
    return None
