"""Alert rules, channels, incidents and the delivery outbox: the tables' reads and writes.

Tenant-scoped by construction (`AlertRepository`), except the outbox's due read and its claim,
which serve every tenant (a system task, like `sync.jobs.due_jobs`). Never commits.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from audience_sync.domain.models import SyncStatus
from audience_sync.store.repositories import (
    TenantScoped,
    job_status_in,
    newest_jobs_of_audience,
    of_tenants_audience,
)
from audience_sync.store.tables import (
    AlertChannel,
    AlertDelivery,
    AlertIncident,
    AlertRule,
    AudienceSyncJob,
    PlatformAudience,
    PlatformConnection,
    Tenant,
)

OPEN, RESOLVED = "open", "resolved"
PENDING, SENT, FAILED = "pending", "sent", "failed"


class AlertRepository(TenantScoped):
    """One tenant's alert rules, channels, incidents and deliveries."""

    def rules(self) -> dict[str, AlertRule]:
        return {row.rule: row for row in self.session.scalars(self._select(AlertRule))}

    def put_rule(self, rule: str, enabled: bool, threshold: float | None) -> None:
        row = self.session.get(AlertRule, (self.tenant_id, rule))
        if row is None:
            row = AlertRule(tenant_id=self.tenant_id, rule=rule)
            self.session.add(row)
        row.enabled, row.threshold = enabled, threshold
        self.session.flush()

    def add_channel(self, channel: AlertChannel) -> AlertChannel:
        channel.tenant_id = self.tenant_id
        self.session.add(channel)
        self.session.flush()
        return channel

    def channels(self, enabled_only: bool = False) -> Sequence[AlertChannel]:
        query = self._select(AlertChannel).order_by(AlertChannel.id)
        if enabled_only:
            query = query.where(AlertChannel.enabled.is_(True))
        return self.session.scalars(query).all()

    def channel(self, channel_id: int) -> AlertChannel:
        return self._get(AlertChannel, channel_id, "Alert channel")

    def delete_channel(self, channel_id: int) -> None:
        self.session.delete(self.channel(channel_id))
        self.session.flush()

    def open_incident(self, incident: AlertIncident) -> AlertIncident | None:
        """Insert an open incident; None when one is open already for its rule and subject
        (the one-open index decides, even against an evaluation running at the same time)."""
        incident.tenant_id = self.tenant_id
        try:
            with self.session.begin_nested():
                self.session.add(incident)
        except IntegrityError:
            return None
        return incident

    def find_open(self, rule: str, subject: str) -> AlertIncident | None:
        return self.session.scalars(
            self._select(AlertIncident).where(
                AlertIncident.rule == rule,
                AlertIncident.subject == subject,
                AlertIncident.state == OPEN,
            )
        ).one_or_none()

    def open_incidents(self, rules: Sequence[str]) -> Sequence[AlertIncident]:
        return self.session.scalars(
            self._select(AlertIncident).where(
                AlertIncident.state == OPEN, AlertIncident.rule.in_(rules)
            )
        ).all()

    def resolve(self, incident: AlertIncident, now: datetime) -> bool:
        """Mark it resolved; False when someone else resolved it first (compare-and-swap)."""
        done = self.session.execute(
            update(AlertIncident)
            .where(AlertIncident.id == incident.id, AlertIncident.state == OPEN)
            .values(state=RESOLVED, resolved_at=now)
            .execution_options(synchronize_session=False)
        )
        return bool(done.rowcount == 1)  # type: ignore[attr-defined]

    def incidents(
        self, limit: int, audience_id: uuid.UUID | None = None, state: str | None = None
    ) -> Sequence[AlertIncident]:
        """Newest first."""
        query = self._select(AlertIncident).order_by(AlertIncident.opened_at.desc()).limit(limit)
        if audience_id is not None:
            query = query.where(AlertIncident.audience_id == audience_id)
        if state is not None:
            query = query.where(AlertIncident.state == state)
        return self.session.scalars(query).all()

    def incident(self, incident_id: uuid.UUID) -> AlertIncident:
        return self._get(AlertIncident, incident_id, "Alert event")

    def queue(
        self,
        incident_id: uuid.UUID | None,
        event: str,
        channels: Sequence[AlertChannel],
        now: datetime,
    ) -> list[AlertDelivery]:
        """One pending delivery per channel, due now, in the caller's transaction."""
        rows = [
            AlertDelivery(
                id=uuid.uuid4(),
                tenant_id=self.tenant_id,
                incident_id=incident_id,
                channel_id=channel.id,
                event=event,
                status=PENDING,
                attempts=0,
                next_attempt_at=now,
                created_at=now,
            )
            for channel in channels
        ]
        self.session.add_all(rows)
        self.session.flush()
        return rows

    def deliveries_of(self, incident_ids: Sequence[uuid.UUID]) -> Sequence[AlertDelivery]:
        if not incident_ids:
            return []
        return self.session.scalars(
            self._select(AlertDelivery)
            .where(AlertDelivery.incident_id.in_(incident_ids))
            .order_by(AlertDelivery.created_at)
        ).all()

    def delivery(self, delivery_id: uuid.UUID) -> AlertDelivery:
        return self._get(AlertDelivery, delivery_id, "Alert delivery")

    def job(self, job_id: uuid.UUID) -> AudienceSyncJob:
        return self._get(AudienceSyncJob, job_id, "Job")

    # The reads of an audience's last jobs below walk the audience's index backwards and stop
    # at their first row, the tenant checked on the audience's row (`newest_jobs_of_audience`,
    # `job_status_in`). Written with the jobs' own `tenant_id` and `status =`, they read every
    # job of the tenant: at 200,000 jobs `scheduled_audiences` took 0.9–1.3 s,
    # `latest_finished` 70–160 ms.

    def previous_completed(self, job: AudienceSyncJob) -> AudienceSyncJob | None:
        """The audience's last completed real (not dry-run) job before `job`."""
        return self.session.scalars(
            select(AudienceSyncJob)
            .join(PlatformAudience, PlatformAudience.id == AudienceSyncJob.platform_audience_id)
            .where(
                *of_tenants_audience(self.tenant_id, job.platform_audience_id),
                job_status_in(SyncStatus.COMPLETED),
                AudienceSyncJob.dry_run.is_(False),
                AudienceSyncJob.id != job.id,
                AudienceSyncJob.created_at <= job.created_at,
            )
            .order_by(AudienceSyncJob.created_at.desc())
            .limit(1)
        ).first()

    def latest_finished(self, since: datetime) -> list[AudienceSyncJob]:
        """Each audience's latest real job, when it completed or failed since `since`."""
        ended = job_status_in(SyncStatus.COMPLETED, SyncStatus.FAILED)
        latest = newest_jobs_of_audience().where(ended).limit(1)
        last_ids = latest.with_only_columns(AudienceSyncJob.id).scalar_subquery()
        ids = select(last_ids).where(PlatformAudience.tenant_id == self.tenant_id)
        return list(
            self.session.scalars(
                select(AudienceSyncJob).where(
                    AudienceSyncJob.id.in_(ids), AudienceSyncJob.completed_at >= since
                )
            )
        )

    def connections(self) -> Sequence[PlatformConnection]:
        return self.session.scalars(self._select(PlatformConnection)).all()

    def active_audiences(self) -> Sequence[PlatformAudience]:
        """The audiences not deleted (paused ones included)."""
        return self.session.scalars(
            self._select(PlatformAudience).where(PlatformAudience.is_active.is_(True))
        ).all()

    def scheduled_audiences(self) -> list[tuple[PlatformAudience, datetime | None]]:
        """Active audiences on a schedule, each with its last completed real sync (or None)."""
        completed = newest_jobs_of_audience().where(job_status_in(SyncStatus.COMPLETED)).limit(1)
        last = completed.with_only_columns(AudienceSyncJob.completed_at).scalar_subquery()
        rows = self.session.execute(
            select(PlatformAudience, last).where(
                PlatformAudience.tenant_id == self.tenant_id,
                PlatformAudience.is_active.is_(True),
                PlatformAudience.auto_sync.is_(True),
            )
        ).all()
        return [(audience, at) for audience, at in rows]


def tenant_ids(session: Session) -> list[int]:
    """Every tenant (the tick evaluates the time-based rules of each)."""
    return list(session.scalars(select(Tenant.id).order_by(Tenant.id)))


def due_deliveries(session: Session, now: datetime, limit: int) -> list[uuid.UUID]:
    """Pending deliveries due now and not held by a live claim, oldest due first."""
    return list(
        session.scalars(
            select(AlertDelivery.id)
            .where(
                AlertDelivery.status == PENDING,
                AlertDelivery.next_attempt_at <= now,
                or_(AlertDelivery.claimed_until.is_(None), AlertDelivery.claimed_until < now),
            )
            .order_by(AlertDelivery.next_attempt_at)
            .limit(limit)
        )
    )


def claim(session: Session, delivery_id: uuid.UUID, token: str, now: datetime, lease: int) -> bool:
    """Take the delivery for one sender (compare-and-swap: one statement, so of two senders at
    once only one sees its row change); counts the attempt. False when someone else has it."""
    done = session.execute(
        update(AlertDelivery)
        .where(
            AlertDelivery.id == delivery_id,
            AlertDelivery.status == PENDING,
            AlertDelivery.next_attempt_at <= now,
            or_(AlertDelivery.claimed_until.is_(None), AlertDelivery.claimed_until < now),
        )
        .values(
            claim_token=token,
            claimed_until=now + timedelta(seconds=lease),
            attempts=AlertDelivery.attempts + 1,
        )
        .execution_options(synchronize_session=False)
    )
    return bool(done.rowcount == 1)  # type: ignore[attr-defined]


def settle(session: Session, delivery_id: uuid.UUID, token: str, values: dict[str, Any]) -> bool:
    """Record how a claimed attempt ended, only while the claim is still ours."""
    done = session.execute(
        update(AlertDelivery)
        .where(AlertDelivery.id == delivery_id, AlertDelivery.claim_token == token)
        .values(claim_token=None, claimed_until=None, **values)
        .execution_options(synchronize_session=False)
    )
    return bool(done.rowcount == 1)  # type: ignore[attr-defined]


def delivery_by_id(session: Session, delivery_id: uuid.UUID) -> AlertDelivery | None:
    return session.get(AlertDelivery, delivery_id)
