"""The confirmation step: read, on the platform's schedule, how accepted requests were processed.

Google accepts an upload in seconds and processes it in 30 minutes to 24 hours. A sync ends at
acceptance: its job is `completed` with `confirmation = processing`, the request ids it must
confirm, and when to read their statuses first. The scheduler's tick calls `confirm_due`:

- due jobs are claimed with `FOR UPDATE SKIP LOCKED` and their next read moved a lease ahead,
  so two ticks (processes, machines) never read the same job's statuses at once, and a tick
  that dies leaves the job due again when the lease ends. The claim is renewed while its reads
  wait (`Retry-After`: `lease.lease_waits`), and a tick records its reads only while the claim
  is still its own (checked in the same UPDATE): a tick whose claim was taken over writes
  nothing;
- a tick reads at most `confirmation_reads_per_tick` statuses (Google's reads are a budget of
  their own: 300 a minute and 100,000 a day per project);
- a request still processing is read again after a doubling interval (first read
  `confirmation_first_check_seconds` after acceptance, capped at
  `confirmation_max_interval_seconds`); one still processing `confirmation_give_up_seconds`
  after the job ended fails the confirmation;
- a replace's second half (Google: remove what was last added before the replace began) is
  sent once every ingest request has finished, and confirmed the same way;
- when every request has finished, the job gets the members refused in processing, the
  warnings and the platform's match rate, and the audience its size, match rate and status.
  A request that `FAILED` fails the job (whatever its counts say).
"""

from __future__ import annotations

import asyncio
import functools
import logging
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, cast

from sqlalchemy import CursorResult, Select, select, update
from sqlalchemy.orm import Session

from audience_sync.connectors.base import BaseAudienceConnector
from audience_sync.connectors.processing import ProcessingConnector, RequestCheck
from audience_sync.domain.models import SyncStatus
from audience_sync.exceptions import AudienceSyncError
from audience_sync.store.db import transaction
from audience_sync.store.repositories import AudienceRepository, SyncJobRepository
from audience_sync.store.tables import AudienceSyncJob
from audience_sync.sync.fence import LeaseLostError
from audience_sync.sync.lease import lease_waits
from audience_sync.sync.progress import requests_read
from audience_sync.sync.runner import SyncService, load_target
from audience_sync.sync.tokens import open_connector

log = logging.getLogger(__name__)

PROCESSING = "processing"
CONFIRMED = "confirmed"
FAILED = "failed"


@dataclass
class ConfirmReport:
    """What one tick's confirmation step did."""

    jobs: int = 0
    reads: int = 0
    confirmed: int = 0
    failed: int = 0
    statuses: list[str] = field(default_factory=list)


@dataclass
class _Claimed:
    tenant_id: int
    job_id: uuid.UUID
    audience_id: uuid.UUID
    requests: list[str]
    # The claim's lease: the `confirmation_next_at` this tick set. It fences the tick's writes
    # (`_hold_claim`): another tick that claimed the job after it ran out changed it.
    until: datetime


def due_confirmations(now: datetime, limit: int) -> Select[Any]:
    """The due read: it matches the partial index `ix_audience_sync_jobs_confirmation_due`
    (its predicate, its order) and stops at `limit`, so it walks the index on PostgreSQL
    without statistics (autovacuum off: no ANALYZE)."""
    return (
        select(AudienceSyncJob)
        .where(
            AudienceSyncJob.confirmation == PROCESSING,
            AudienceSyncJob.confirmation_next_at <= now,
        )
        .order_by(AudienceSyncJob.confirmation_next_at)
        .limit(limit)
    )


def claim_due(service: SyncService, now: datetime, budget: int) -> list[_Claimed]:
    """Due confirmations, oldest first, as many as `budget` status reads cover (a job's
    requests beyond the budget wait for the next tick). Each claimed job's next read moves a
    lease ahead, so no other tick takes it meanwhile."""
    lease = timedelta(seconds=service.settings.job_lease_seconds)
    claimed: list[_Claimed] = []
    with transaction(service.factory) as session:
        due = session.scalars(
            due_confirmations(now, budget).with_for_update(skip_locked=True)
        ).all()
        for job in due:
            if budget <= 0:
                break
            requests = list(job.confirmation_requests or [])[:budget]
            budget -= max(1, len(requests))
            job.confirmation_next_at = now + lease
            claimed.append(
                _Claimed(job.tenant_id, job.id, job.platform_audience_id, requests, now + lease)
            )
    return claimed


async def confirm_due(service: SyncService) -> ConfirmReport:
    """The tick's confirmation step (safe on many processes at once)."""
    report = ConfirmReport()
    for claim in claim_due(service, service.clock(), service.settings.confirmation_reads_per_tick):
        report.jobs += 1
        state = await _confirm(service, claim, report)
        report.statuses.append(state)
        report.confirmed += state == CONFIRMED
        report.failed += state == FAILED
    return report


async def _confirm(service: SyncService, claim: _Claimed, report: ConfirmReport) -> str:
    """Read the claimed requests' statuses and record what they say; the confirmation state."""
    checks: list[RequestCheck] = []
    follow_up: str | None = None
    try:
        target = load_target(service, claim.tenant_id, claim.audience_id)
        platform_id = target.platform_audience_id or ""
        async with open_connector(service, target) as connector:
            if not isinstance(connector, ProcessingConnector) or not isinstance(
                connector, BaseAudienceConnector
            ):
                return _record(service, claim, [], None, error="the platform reads no statuses")
            lease_waits(connector, functools.partial(_renew, service, claim), _lease(service))
            for request_id in claim.requests:
                report.reads += 1
                checks.append(await connector.check_request(request_id, platform_id))
            follow_up = await _follow_up(service, claim, checks, connector, platform_id)
            info = None
            if _finished(claim, checks, follow_up):
                info = await connector.get_audience_info(platform_id)
    except LeaseLostError:
        log.warning("confirmation of job %s: claim taken over by another tick", claim.job_id)
        return PROCESSING  # the other tick reads and records them
    except AudienceSyncError as error:
        # The type only: a message may quote the platform. Read again at the next interval.
        log.warning("confirmation of job %s: %s", claim.job_id, type(error).__name__)
        return _record(service, claim, checks, None, retry=True)
    return _record(service, claim, checks, info, follow_up=follow_up)


def _finished(claim: _Claimed, checks: list[RequestCheck], follow_up: str | None) -> bool:
    done = {c.request_id for c in checks if c.done}
    return (
        follow_up is None
        and all(r in done for r in claim.requests)
        and not any(c.failed for c in checks)
    )


async def _follow_up(
    service: SyncService,
    claim: _Claimed,
    checks: list[RequestCheck],
    connector: ProcessingConnector,
    platform_id: str,
) -> str | None:
    """A replace's second half, sent once every ingest request has finished (and none failed);
    the id of its request."""
    if any(c.failed for c in checks) or not all(c.done for c in checks):
        return None
    with transaction(service.factory) as session:
        if not _hold_claim(session, service, claim):  # sent only while the claim is ours
            raise LeaseLostError(f"confirmation of job {claim.job_id} claimed by another tick")
        job = SyncJobRepository(session, claim.tenant_id).get(claim.job_id)
        as_of = (job.details or {}).get("remove_all_as_of")
        sent = (job.details or {}).get("remove_all_request")
        pending = set(job.confirmation_requests or []) - {c.request_id for c in checks}
    if not as_of or sent or pending:
        return None
    return await connector.remove_all_as_of(platform_id, str(as_of))


def _record(
    service: SyncService,
    claim: _Claimed,
    checks: list[RequestCheck],
    info: dict[str, Any] | None,
    *,
    follow_up: str | None = None,
    retry: bool = False,
    error: str | None = None,
) -> str:
    """Add the reads to the job; move its confirmation on (next read, confirmed or failed)."""
    settings = service.settings
    now = service.clock()
    with transaction(service.factory) as session:
        held = _hold_claim(session, service, claim)
        job = SyncJobRepository(session, claim.tenant_id).get(claim.job_id)
        if not held:  # the claim outlived its lease: another tick took the job over
            return job.confirmation
        details = dict(job.details or {})
        seen = dict(details.get("confirmation") or {})
        ended = [c for c in checks if c.done]
        _add_up(seen, ended)
        seen["reads"] = int(seen.get("reads", 0)) + len(checks)
        done = {c.request_id for c in ended}
        pending = [r for r in job.confirmation_requests or [] if r not in done]
        if follow_up:
            details["remove_all_request"] = follow_up
            pending.append(follow_up)
        refused = sum(c.refused for c in ended)
        job.profiles_failed += refused
        job.profiles_added = max(0, job.profiles_added - refused)
        job.confirmation_requests = pending
        job.confirmation_checks += 1
        requests_read(job, len(ended), 1 if follow_up else 0, now)
        details["confirmation"] = seen
        job.details = details
        audience = AudienceRepository(session, claim.tenant_id).get(job.platform_audience_id)
        failed = [c for c in ended if c.failed]
        waited = now - (job.completed_at or now)
        if error or failed:
            return _fail(job, audience, now, error or _failure_message(failed))
        if pending and waited.total_seconds() >= settings.confirmation_give_up_seconds:
            hours = settings.confirmation_give_up_seconds / 3600
            return _fail(
                job, audience, now, f"Google had not processed the upload after {hours:g} h."
            )
        if pending or retry or info is None:
            job.confirmation_next_at = now + _interval(settings, job.confirmation_checks, follow_up)
            return PROCESSING
        job.confirmation = CONFIRMED
        job.confirmation_next_at = None
        rate = info.get("match_rate")
        if rate is not None:
            job.match_rate = rate
        size = info.get("size")
        if size is not None:
            audience.platform_size = audience.matched_size = int(size)
            # The sizes of the processed upload, for the audience's chart (see `run.refresh`).
            job.details = {
                **(job.details or {}),
                "platform_size": int(size),
                "matched_size": int(size),
            }
        audience.match_rate = job.match_rate if rate is not None else audience.match_rate
        return CONFIRMED


def _lease(service: SyncService) -> int:
    return service.settings.job_lease_seconds


def _hold_claim(session: Session, service: SyncService, claim: _Claimed) -> bool:
    """Renew the claim, in this transaction, if it is still this tick's: checked in the same
    UPDATE (its job still processing, its next read still the one this claim set)."""
    until = service.clock() + timedelta(seconds=_lease(service))
    held = session.execute(
        update(AudienceSyncJob)
        .where(
            AudienceSyncJob.tenant_id == claim.tenant_id,
            AudienceSyncJob.id == claim.job_id,
            AudienceSyncJob.confirmation == PROCESSING,
            AudienceSyncJob.confirmation_next_at == claim.until,
        )
        .values(confirmation_next_at=until)
        .execution_options(synchronize_session=False)
    )
    if cast(CursorResult[Any], held).rowcount != 1:
        return False
    claim.until = until
    return True


async def _renew(service: SyncService, claim: _Claimed) -> None:
    """Renew the claim from a wait of the reads, on a thread (the call is synchronous)."""
    if not await asyncio.to_thread(_renew_now, service, claim):
        raise LeaseLostError(f"confirmation of job {claim.job_id} claimed by another tick")


def _renew_now(service: SyncService, claim: _Claimed) -> bool:
    with transaction(service.factory) as session:
        return _hold_claim(session, service, claim)


def _interval(settings: Any, checks: int, follow_up: str | None) -> timedelta:
    """Google's schedule: wait, then back off exponentially. A replace's second half is a new
    request: its first read waits as long as an upload's."""
    first = settings.confirmation_first_check_seconds
    if follow_up:
        return timedelta(seconds=first)
    seconds = min(
        max(first, 60) * 2 ** max(0, checks - 1), settings.confirmation_max_interval_seconds
    )
    return timedelta(seconds=seconds)


def _add_up(seen: dict[str, Any], ended: list[RequestCheck]) -> None:
    """Processing figures over the job's requests: refused members, reasons, match ranges."""
    for key, attr in (("errors", "errors"), ("warnings", "warnings")):
        counts = dict(seen.get(key) or {})
        for check in ended:
            for reason, n in getattr(check, attr).items():
                counts[reason] = counts.get(reason, 0) + n
        if counts:
            seen[key] = counts
    ranges = dict(seen.get("match_ranges") or {})
    for check in ended:
        if check.match_range:
            ranges[check.match_range] = ranges.get(check.match_range, 0) + 1
    if ranges:
        seen["match_ranges"] = ranges
    seen["refused"] = int(seen.get("refused", 0)) + sum(c.refused for c in ended)
    seen["failed_requests"] = int(seen.get("failed_requests", 0)) + sum(c.failed for c in ended)


def _failure_message(failed: list[RequestCheck]) -> str:
    reasons = sorted({r for c in failed for r in c.errors})
    why = f" ({', '.join(reasons)})" if reasons else " (no reason given)"
    return (
        f"Google failed {len(failed)} of the sync's requests while processing them{why}; "
        "sync with replace to send the members again."
    )


def _fail(job: AudienceSyncJob, audience: Any, now: datetime, message: str) -> str:
    """The upload did not land: the job is failed, and so is the audience's last sync."""
    job.confirmation = FAILED
    job.confirmation_next_at = None
    job.status = SyncStatus.FAILED
    job.error_message = message
    if not job.dry_run:
        audience.last_sync_status = SyncStatus.FAILED
        audience.last_sync_error = message
        audience.last_sync_at = now
    return FAILED
