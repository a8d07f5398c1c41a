"""Alerts: rules per tenant, channels (webhook, e-mail), incidents and their deliveries.

What the API, the CLI, the dashboard and the scheduler call. Rules are evaluated after each job
ends (`after_job`, from the run boundary's hook) and on each scheduler tick for the time-based
ones (`upkeep`); an incident is raised once and resolved once (`incidents`); its deliveries wait
in an outbox and are sent with retries (`delivery`). docs/alerts.md.
"""

from __future__ import annotations

import logging
import re
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from audience_sync.exceptions import FieldError
from audience_sync.services.alerts import channels, delivery, incidents
from audience_sync.services.alerts.rules import DEFAULTS, UNITS, Rule
from audience_sync.store.alerts import AlertRepository, tenant_ids
from audience_sync.store.db import transaction
from audience_sync.store.tables import AlertChannel, AlertDelivery, AlertIncident
from audience_sync.sync import hooks
from audience_sync.sync.context import SyncService

__all__ = [
    "NewChannel",
    "Rule",
    "RuleChange",
    "after_job",
    "channel_view",
    "create_channel",
    "delete_channel",
    "events",
    "list_channels",
    "open_incidents",
    "put_rules",
    "rules_view",
    "send_test",
    "upkeep",
]

log = logging.getLogger(__name__)
# An address as a mail header may carry it: one @, no spaces, commas or angle brackets (a
# newline would let an address add headers of its own).
ADDRESS = re.compile(r"[^@\s,<>]+@[^@\s,<>]+")


@dataclass(frozen=True, slots=True)
class NewChannel:
    kind: str  # webhook | email
    url: str | None = None
    secret: str | None = None
    to: list[str] = field(default_factory=list)
    name: str = ""


@dataclass(frozen=True, slots=True)
class RuleChange:
    enabled: bool | None = None
    threshold: float | None = None


# Rules


def rules_view(service: SyncService, tenant_id: int) -> list[dict[str, Any]]:
    """Every rule: on or off, its threshold and unit, and its default."""
    with transaction(service.factory) as session:
        config = incidents.rule_config(AlertRepository(session, tenant_id))
    return [
        {
            "rule": rule.value,
            "enabled": config.on(rule),
            "threshold": config.thresholds.get(rule),
            "default_threshold": DEFAULTS[rule],
            "unit": UNITS.get(rule),
        }
        for rule in Rule
    ]


def put_rules(
    service: SyncService, tenant_id: int, changes: dict[str, RuleChange]
) -> list[dict[str, Any]]:
    """Turn rules on or off and set thresholds; unnamed rules stay as they are."""
    with transaction(service.factory) as session:
        repo = AlertRepository(session, tenant_id)
        config, stored = incidents.rule_config(repo), repo.rules()
        for name, change in changes.items():
            rule = _rule(name)
            _check_threshold(rule, change.threshold)
            enabled = config.on(rule) if change.enabled is None else change.enabled
            kept = stored[rule].threshold if rule in stored else None
            threshold = kept if change.threshold is None else change.threshold
            repo.put_rule(rule.value, enabled, threshold)
    return rules_view(service, tenant_id)


def _rule(name: str) -> Rule:
    try:
        return Rule(name)
    except ValueError:
        known = ", ".join(r.value for r in Rule)
        raise FieldError("rule", "unknown", f"unknown rule; one of: {known}") from None


def _check_threshold(rule: Rule, threshold: float | None) -> None:
    if threshold is None:
        return
    if DEFAULTS[rule] is None:
        raise FieldError("threshold", "none", f"the {rule.value} rule has no threshold")
    if threshold <= 0 or (UNITS[rule] in ("percent", "points") and threshold > 100):
        raise FieldError("threshold", "range", f"the {rule.value} threshold is out of range")


# Channels


def create_channel(service: SyncService, tenant_id: int, new: NewChannel) -> AlertChannel:
    """A webhook (URL, signing secret) or an e-mail channel; every rule goes to it at once.
    The target is stored encrypted; the channel shows only a hint of it."""
    target, hint = _target(new)
    channel = AlertChannel(
        kind=new.kind,
        name=new.name,
        target_encrypted=service.cipher.encrypt(target),
        hint=hint,
        enabled=True,
        created_at=service.clock(),
    )
    with transaction(service.factory) as session:
        return AlertRepository(session, tenant_id).add_channel(channel)


def _target(new: NewChannel) -> tuple[dict[str, Any], dict[str, Any]]:
    if new.kind == "email":
        if not new.to:
            raise FieldError("to", "missing", "an e-mail channel needs at least one address")
        if any(not ADDRESS.fullmatch(address) for address in new.to):
            raise FieldError("to", "address", "each address must read name@domain")
        return {"to": list(new.to)}, {"to": list(new.to)}
    if new.kind != "webhook":
        raise FieldError("kind", "unknown", "kind must be webhook or email")
    if not new.url:
        raise FieldError("url", "missing", "a webhook channel needs a url")
    channels.check_url(new.url)
    slack = channels.is_slack(new.url)
    if not new.secret and not slack:
        raise FieldError("secret", "missing", "a webhook channel needs a secret to sign with")
    hint = {"url": channels.url_hint(new.url), "slack": slack}
    if new.secret:
        hint["secret"] = "****" + (new.secret[-4:] if len(new.secret) >= 16 else "")
    return {"url": new.url, "secret": new.secret}, hint


def list_channels(service: SyncService, tenant_id: int) -> Sequence[AlertChannel]:
    with transaction(service.factory) as session:
        return AlertRepository(session, tenant_id).channels()


def delete_channel(service: SyncService, tenant_id: int, channel_id: int) -> None:
    """Remove the channel and its deliveries (those still pending are not sent)."""
    with transaction(service.factory) as session:
        AlertRepository(session, tenant_id).delete_channel(channel_id)


def channel_view(channel: AlertChannel) -> dict[str, Any]:
    """What may be shown of a channel: its kind and hint, never its secret or full URL."""
    return {
        "id": channel.id,
        "kind": channel.kind,
        "name": channel.name,
        "enabled": channel.enabled,
        **dict(channel.hint),
        "created_at": channel.created_at.isoformat(),
    }


def send_test(service: SyncService, tenant_id: int, channel_id: int) -> dict[str, Any]:
    """Send a test alert to the channel now (the dashboard's "send test alert" button); the
    delivery as recorded: `status` sent or failed, and `last_error`."""
    with transaction(service.factory) as session:
        repo = AlertRepository(session, tenant_id)
        channel = repo.channel(channel_id)
        (queued,) = repo.queue(None, "test", [channel], service.clock())
    delivery.deliver(service, queued.id)
    with transaction(service.factory) as session:
        return delivery_view(AlertRepository(session, tenant_id).delivery(queued.id))


# Events


def events(
    service: SyncService,
    tenant_id: int,
    audience_id: uuid.UUID | None = None,
    state: str | None = None,
    limit: int = 50,
) -> list[dict[str, Any]]:
    """Incidents, newest first, each with its deliveries' status."""
    if state not in (None, "open", "resolved"):
        raise FieldError("state", "unknown", "state must be open or resolved")
    with transaction(service.factory) as session:
        repo = AlertRepository(session, tenant_id)
        found = repo.incidents(limit, audience_id, state)
        sent = repo.deliveries_of([i.id for i in found])
        return [incident_view(i, [d for d in sent if d.incident_id == i.id]) for i in found]


def open_incidents(
    service: SyncService, tenant_id: int, audience_id: uuid.UUID
) -> list[dict[str, Any]]:
    """The audience's open incidents (the audience page's panel)."""
    return events(service, tenant_id, audience_id=audience_id, state="open")


def incident_view(incident: AlertIncident, deliveries: Sequence[AlertDelivery]) -> dict[str, Any]:
    return {
        "id": str(incident.id),
        "rule": incident.rule,
        "state": incident.state,
        "title": incident.title,
        "audience_id": str(incident.audience_id) if incident.audience_id else None,
        "facts": {k: v for k, v in incident.facts.items() if k != "link_path"},
        "opened_at": incident.opened_at.isoformat(),
        "resolved_at": incident.resolved_at.isoformat() if incident.resolved_at else None,
        "deliveries": [delivery_view(d) for d in deliveries],
    }


def delivery_view(found: AlertDelivery) -> dict[str, Any]:
    return {
        "id": str(found.id),
        "channel_id": found.channel_id,
        "event": found.event,
        "status": found.status,
        "attempts": found.attempts,
        "next_attempt_at": found.next_attempt_at.isoformat() if found.status == "pending" else None,
        "last_error": found.last_error,
        "sent_at": found.sent_at.isoformat() if found.sent_at else None,
    }


# Evaluation and delivery


def evaluate_job(service: SyncService, tenant_id: int, job_id: uuid.UUID) -> list[uuid.UUID]:
    """Apply the job rules after the job ended; the deliveries queued."""
    now = service.clock()
    with transaction(service.factory) as session:
        repo = AlertRepository(session, tenant_id)
        return incidents.apply(repo, incidents.job_verdicts(repo, repo.job(job_id)), now)


def evaluate_time_rules(service: SyncService) -> list[uuid.UUID]:
    """Apply the time-based rules (stale audiences, connections) for every tenant."""
    now = service.clock()
    with transaction(service.factory) as session:
        tenants = tenant_ids(session)
    queued: list[uuid.UUID] = []
    for tenant_id in tenants:
        with transaction(service.factory) as session:
            repo = AlertRepository(session, tenant_id)
            queued += incidents.apply(repo, incidents.time_verdicts(repo, now), now)
    return queued


def after_job(service: SyncService, tenant_id: int, job_id: uuid.UUID) -> None:
    """The run boundary's hook (`sync.hooks`): evaluate the job rules, then send what they
    queued. Never raises: an alert must not change how a sync ended."""
    try:
        for delivery_id in evaluate_job(service, tenant_id, job_id):
            delivery.deliver(service, delivery_id)
    except Exception as exc:  # the type only: a message could quote SQL parameters
        log.error("alerts after job %s failed: %s", job_id, type(exc).__name__)


def upkeep(service: SyncService) -> dict[str, int]:
    """The scheduler tick's part: the time-based rules, then every due delivery. Never
    raises: a broken alert must not stop the tick."""
    try:
        raised = len(evaluate_time_rules(service))
        return {"queued": raised, **delivery.deliver_due(service)}
    except Exception as exc:  # the type only, as above
        log.error("alert upkeep failed: %s", type(exc).__name__)
        return {}


hooks.on_job_end(after_job)
