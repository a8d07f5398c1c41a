"""Incidents: rule verdicts turned into incidents raised once and resolved once, each change
queueing its deliveries in the same transaction (the outbox: nothing is lost)."""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

from audience_sync.connectors.registry import platform_spec
from audience_sync.domain.models import SyncStatus
from audience_sync.services import connections
from audience_sync.services.alerts.rules import (
    DEFAULTS,
    JOB_RULES,
    Finding,
    JobFacts,
    Rule,
    RuleConfig,
    connection_finding,
    expiry_finding,
    inactivity_finding,
    job_findings,
    stale_finding,
)
from audience_sync.store.alerts import AlertRepository
from audience_sync.store.repositories import AudienceRepository
from audience_sync.store.tables import AlertIncident, AudienceSyncJob, PlatformConnection
from audience_sync.sync.audiences import inactivity_deadline
from audience_sync.sync.freshness import refresh_window

CONNECTION_SUBJECT = "connection:"
# The tick evaluates again the job rules of the jobs that ended this recently: a job whose
# hook did not run (failed by the lease reaper, a process that died after the job ended) still
# raises its alert. Evaluation is level-triggered, so doing it twice changes nothing.
CATCH_UP = timedelta(hours=48)
# The rules evaluated on the tick (an open incident of one whose subject is gone is resolved).
TIME_RULES = (Rule.STALE, Rule.CONNECTION, Rule.INACTIVITY, Rule.EXPIRY)


@dataclass(frozen=True, slots=True)
class Verdict:
    """A rule on one subject: a finding (raise) or None (clear)."""

    rule: Rule
    subject: str
    audience_id: uuid.UUID | None
    finding: Finding | None


def rule_config(repo: AlertRepository) -> RuleConfig:
    """The tenant's rules: the defaults, with the tenant's changes over them."""
    rows = repo.rules()
    enabled = {rule: rows[rule].enabled if rule in rows else True for rule in Rule}
    thresholds: dict[Rule, float | None] = dict(DEFAULTS)
    for rule in Rule:
        if rule in rows and rows[rule].threshold is not None:
            thresholds[rule] = rows[rule].threshold
    return RuleConfig(enabled, thresholds)


def apply(repo: AlertRepository, verdicts: Iterable[Verdict], now: datetime) -> list[uuid.UUID]:
    """Raise what holds and is not open yet, resolve what is open and clear; the ids of the
    deliveries queued for it."""
    channels = repo.channels(enabled_only=True)
    verdicts = list(verdicts)
    # The open incidents of these rules, read once: a query per verdict (eight rules an
    # audience) made the tick's evaluation ~2,200 queries for 200 audiences, seconds of a
    # worker's time every tick. Kept up to date below, as the query per verdict was.
    rules = sorted({verdict.rule.value for verdict in verdicts})
    open_now = {(i.rule, i.subject): i for i in repo.open_incidents(rules)} if rules else {}
    queued: list[uuid.UUID] = []
    for verdict in verdicts:
        key = (verdict.rule.value, verdict.subject)
        open_one = open_now.get(key)
        if verdict.finding is not None and open_one is None:
            raised = repo.open_incident(_incident(verdict, verdict.finding, now))
            if raised is not None:
                open_now[key] = raised
                queued += [d.id for d in repo.queue(raised.id, "raised", channels, now)]
        elif verdict.finding is None and open_one is not None and repo.resolve(open_one, now):
            del open_now[key]
            queued += [d.id for d in repo.queue(open_one.id, "resolved", channels, now)]
    return queued


def _incident(verdict: Verdict, finding: Finding, now: datetime) -> AlertIncident:
    return AlertIncident(
        id=uuid.uuid4(),
        rule=verdict.rule.value,
        subject=verdict.subject,
        audience_id=verdict.audience_id,
        state="open",
        title=finding.title,
        facts=finding.facts,
        opened_at=now,
    )


def job_verdicts(repo: AlertRepository, job: AudienceSyncJob) -> list[Verdict]:
    """The job rules' verdicts after `job` ended (none for a dry run, a cancelled job or a
    job still waiting for a retry)."""
    final = job.status in (SyncStatus.COMPLETED, SyncStatus.FAILED)
    if job.dry_run or not final:
        return []
    audience = AudienceRepository(repo.session, repo.tenant_id).get(job.platform_audience_id)
    previous = repo.previous_completed(job)
    facts = JobFacts(
        job_id=str(job.id),
        audience=audience.platform_audience_name,
        platform=audience.platform.value,
        status=job.status.value,
        error=job.error_message,
        error_code=job.details.get("error_code"),
        members=job.details.get("members"),
        failed=job.profiles_failed,
        platform_size=job.details.get("platform_size"),
        match_rate=job.match_rate,
        previous_size=previous.details.get("platform_size") if previous else None,
        previous_match_rate=previous.match_rate if previous else None,
    )
    found = job_findings(facts, rule_config(repo))
    subject = str(audience.id)
    return [Verdict(rule, subject, audience.id, found[rule]) for rule in JOB_RULES if rule in found]


def time_verdicts(
    repo: AlertRepository, now: datetime, margin: timedelta = timedelta(0)
) -> list[Verdict]:
    """The time-based rules (stale audiences, connections, inactivity, members expiring: with
    the operator's refresh `margin`) for every subject they concern,
    and "clear" for open incidents whose subject is gone (an audience paused or deleted); and
    the job rules again for the jobs that ended lately (`CATCH_UP`)."""
    config = rule_config(repo)
    verdicts: list[Verdict] = []
    if config.on(Rule.STALE):
        verdicts += _stale(repo, now, config.threshold(Rule.STALE))
    if config.on(Rule.CONNECTION):
        verdicts += _connections(repo, now, config.threshold(Rule.CONNECTION))
    if config.on(Rule.INACTIVITY):
        verdicts += _inactivity(repo, now, config.threshold(Rule.INACTIVITY))
    if config.on(Rule.EXPIRY):
        verdicts += _expiry(repo, margin)
    for job in repo.latest_finished(now - CATCH_UP):
        verdicts += job_verdicts(repo, job)
    seen = {(v.rule, v.subject) for v in verdicts}
    rules = [r for r in TIME_RULES if config.on(r)]
    for incident in repo.open_incidents([r.value for r in rules]):
        if (incident.rule, incident.subject) not in seen:
            rule = Rule(incident.rule)
            verdicts.append(Verdict(rule, incident.subject, incident.audience_id, None))
    return verdicts


def _stale(repo: AlertRepository, now: datetime, times: float) -> list[Verdict]:
    verdicts = []
    for audience, last in repo.scheduled_audiences():
        found = stale_finding(
            audience.platform_audience_name,
            audience.platform.value,
            audience.sync_interval_hours,
            last,
            audience.created_at,
            now,
            times,
        )
        if found is not None:
            found.facts["link_path"] = f"/audiences/{audience.id}"
        verdicts.append(Verdict(Rule.STALE, str(audience.id), audience.id, found))
    return verdicts


def _inactivity(repo: AlertRepository, now: datetime, days: float) -> list[Verdict]:
    """Every audience still on its platform, paused ones too: a platform deletes an unused
    audience whether or not we sync it."""
    verdicts = []
    for audience in repo.active_audiences():
        found = inactivity_finding(
            audience.platform_audience_name,
            audience.platform.value,
            inactivity_deadline(audience),
            now,
            days,
        )
        if found is not None:
            found.facts["link_path"] = f"/audiences/{audience.id}"
        verdicts.append(Verdict(Rule.INACTIVITY, str(audience.id), audience.id, found))
    return verdicts


def _expiry(repo: AlertRepository, margin: timedelta) -> list[Verdict]:
    verdicts = []
    for audience, _ in repo.scheduled_audiences():
        lifetime = platform_spec(audience.platform).membership_lifetime(audience.config)
        window = refresh_window(lifetime, margin)
        # The margin the refresh really keeps (at most half the lifetime: sync.freshness).
        kept = None if lifetime is None or window is None else lifetime - window
        found = expiry_finding(
            audience.platform_audience_name,
            audience.platform.value,
            audience.sync_interval_hours,
            kept,
        )
        if found is not None:
            found.facts["link_path"] = f"/audiences/{audience.id}"
        verdicts.append(Verdict(Rule.EXPIRY, str(audience.id), audience.id, found))
    return verdicts


def _connections(repo: AlertRepository, now: datetime, days: float) -> list[Verdict]:
    return [
        Verdict(
            Rule.CONNECTION,
            CONNECTION_SUBJECT + c.platform.value,
            None,
            connection_finding(c.platform.value, *_token(c, now), now, days),
        )
        for c in repo.connections()
    ]


def _token(connection: PlatformConnection, now: datetime) -> tuple[str, datetime | None]:
    """The connection's status (an expired token nothing renews reads `needs_reconnect`) and
    when its token expires — only for a token nothing renews: Google's and Snapchat's
    one-hour tokens are refreshed by the service itself and must not read "expiring"."""
    state = connections.token_state(connection, now)
    expires = state.token_expires_at if state.expires_in_days is not None else None
    return state.status, expires
