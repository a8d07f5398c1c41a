"""The outbox's sender: claim a due delivery, send it, record the outcome, back off on failure.

Guarantee (docs/alerts.md, "Delivery"): a delivery is claimed by one sender at a time (a
compare-and-swap on the row: `store.alerts.claim`), so two workers never send it at once, and it
is marked sent right after the receiver accepted it. The one window left is a crash between the
receiver's acceptance and that write: the claim then runs out (`CLAIM_SECONDS`) and the delivery
is sent again, with the same `X-Audience-Sync-Delivery` id for the receiver to drop it. So:
exactly once in the normal path, at least once across a crash, never lost while it is retried.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.orm import Session

from audience_sync.services.alerts.channels import (
    Message,
    SendError,
    send_email,
    send_webhook,
)
from audience_sync.store.alerts import (
    FAILED,
    SENT,
    AlertRepository,
    claim,
    delivery_by_id,
    due_deliveries,
    settle,
)
from audience_sync.store.db import transaction
from audience_sync.store.tables import AlertDelivery
from audience_sync.sync.context import SyncService

log = logging.getLogger(__name__)

CLAIM_SECONDS = 300  # far longer than one attempt (a 10 s timeout)
FIRST_RETRY_SECONDS = 60
BATCH = 100  # deliveries one call sends at most


def backoff(attempts: int, cap: int) -> timedelta:
    """The wait after the `attempts`-th failed attempt: 1, 2, 4 … minutes, at most `cap`."""
    return timedelta(seconds=min(cap, FIRST_RETRY_SECONDS * 2 ** max(0, attempts - 1)))


def deliver_due(service: SyncService, limit: int = BATCH) -> dict[str, int]:
    """Send every due delivery (any tenant), up to `limit`; how many were sent, failed for
    now, given up, or skipped (claimed by another sender)."""
    with transaction(service.factory) as session:
        due = due_deliveries(session, service.clock(), limit)
    counts = {"sent": 0, "retry": 0, "failed": 0, "skipped": 0}
    for delivery_id in due:
        counts[deliver(service, delivery_id)] += 1
    return counts


def deliver(service: SyncService, delivery_id: uuid.UUID) -> str:
    """One attempt at one delivery: `sent`, `retry`, `failed` (given up) or `skipped`."""
    token = uuid.uuid4().hex
    with transaction(service.factory) as session:  # committed before anything is sent
        if not claim(session, delivery_id, token, service.clock(), CLAIM_SECONDS):
            return "skipped"
    return _record(service, delivery_id, token, _attempt(service, delivery_id))


def _attempt(service: SyncService, delivery_id: uuid.UUID) -> str | None:
    """Send a claimed delivery; None when it was taken, else why not (safe to store)."""
    try:
        with transaction(service.factory) as session:
            delivery = delivery_by_id(session, delivery_id)
            assert delivery is not None, "a claimed delivery exists"
            send = _prepared(service, session, delivery)
        send()
    except SendError as exc:
        return str(exc)
    except Exception as exc:  # a bug (or a key that no longer decrypts): type only
        log.error("alert delivery %s failed: unexpected %s", delivery_id, type(exc).__name__)
        return f"unexpected {type(exc).__name__}"
    return None


def _prepared(
    service: SyncService, session: Session, delivery: AlertDelivery
) -> Callable[[], None]:
    """What sends this delivery: read now, inside the claim's transaction, sent after it."""
    repo = AlertRepository(session, delivery.tenant_id)
    channel = repo.channel(delivery.channel_id)
    target = service.cipher.decrypt(channel.target_encrypted)
    message = message_of(service, repo, delivery)
    timestamp = int(service.clock().timestamp())
    if channel.kind == "email":
        return lambda: send_email(service.settings, target, message)
    transport = service.webhook_transport
    return lambda: send_webhook(service.settings, target, message, timestamp, transport)


def message_of(service: SyncService, repo: AlertRepository, delivery: AlertDelivery) -> Message:
    """The alert a delivery sends: its incident's title and facts, or a test's."""
    public = service.settings.effective_public_url
    if delivery.incident_id is None:
        return Message(
            str(delivery.id), "test", "test", "this channel works", {}, None, None, None, None
        )
    incident = repo.incident(delivery.incident_id)
    facts = dict(incident.facts)
    path = facts.pop("link_path", None)
    if path is None and incident.audience_id is not None:
        path = f"/audiences/{incident.audience_id}"
    return Message(
        delivery_id=str(delivery.id),
        event=delivery.event,
        rule=incident.rule,
        title=incident.title,
        facts=facts,
        incident_id=str(incident.id),
        opened_at=incident.opened_at.isoformat(),
        resolved_at=incident.resolved_at.isoformat() if incident.resolved_at else None,
        link=public + path if path else None,
    )


def _record(service: SyncService, delivery_id: uuid.UUID, token: str, error: str | None) -> str:
    now = service.clock()
    settings = service.settings
    with transaction(service.factory) as session:
        delivery = delivery_by_id(session, delivery_id)
        assert delivery is not None
        values: dict[str, Any] = {"last_error": error}
        outcome = "sent" if error is None else _after_failure(delivery, now, settings, values)
        if error is None:
            values.update(status=SENT, sent_at=now)
        settle(session, delivery_id, token, values)
    return outcome


def _after_failure(
    delivery: AlertDelivery, now: datetime, settings: Any, values: dict[str, Any]
) -> str:
    """Retry later, or give up once the alert is older than `alert_give_up_seconds` (a test
    alert at once: whoever asked for it reads the outcome now)."""
    give_up = timedelta(seconds=settings.alert_give_up_seconds)
    if delivery.event == "test" or now - delivery.created_at >= give_up:
        values["status"] = FAILED
        return "failed"
    values["next_attempt_at"] = now + backoff(delivery.attempts, settings.alert_retry_cap_seconds)
    return "retry"
