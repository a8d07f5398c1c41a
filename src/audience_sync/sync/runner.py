"""Run one sync job end to end: docs/sync.md, steps 2 to 8 (step 1 is `jobs.trigger_job`).

validate → read members → normalize and hash (the connector's own records) → plan against the
snapshot → upload in chunks, each confirmed in one transaction with the job's counters →
refresh the audience's figures from the platform → finish. Any of our errors ends in `fail_job`,
which retries transient ones later (durably) and explains the rest; any other exception fails the
job with a generic message and is logged without member data (the run boundary, `_run_job`).

The steps are `run.Run` (prepare, replace, refresh, delete) and `update.Update` (plan, send);
their writes are `checkpoint.Checkpoints`, in the background (`writer.BackgroundWriter`); the
chunks are cut in `chunks`; the figures kept in `figures`.
"""

from __future__ import annotations

import logging
import uuid
from datetime import timedelta

from audience_sync.connectors.registry import sync_flags
from audience_sync.domain.data_use import with_connection_defaults
from audience_sync.domain.models import SyncStatus
from audience_sync.exceptions import AudienceSyncError, ValidationError
from audience_sync.store.db import transaction
from audience_sync.store.repositories import (
    AudienceRepository,
    ConnectionRepository,
    FeatureFlagRepository,
    SegmentRepository,
    TenantRepository,
)
from audience_sync.store.tables import AudienceSyncJob
from audience_sync.sync import hooks, unexpected
from audience_sync.sync.checkpoint import RunInterruptedError
from audience_sync.sync.collector import rarer_collections
from audience_sync.sync.context import ConnectorFactory, SyncService, Target
from audience_sync.sync.fence import Heartbeat, LeaseLostError
from audience_sync.sync.jobs import (
    JobMetrics,
    complete_job,
    fail_for_good,
    fail_job,
    release_job,
    start_job,
)
from audience_sync.sync.run import Run
from audience_sync.sync.tokens import open_connector
from audience_sync.sync.update import plan_against_snapshot

# The engine's entry points; `SyncService`, `Target` and `plan_against_snapshot` are defined
# beside the steps that use them, and offered here too (where callers have always found them).
__all__ = [
    "ConnectorFactory",
    "SyncService",
    "Target",
    "load_target",
    "plan_against_snapshot",
    "run_job",
    "run_job_in_background",
]

log = logging.getLogger(__name__)
ENDED = (SyncStatus.COMPLETED, SyncStatus.FAILED, SyncStatus.CANCELLED)


async def run_job(
    service: SyncService, tenant_id: int, job_id: uuid.UUID
) -> AudienceSyncJob | None:
    """Run a pending job to its end; None when another worker has it. A job that ended
    (completed, failed for good, cancelled) is handed to the job-end listeners (alerts)."""
    with rarer_collections():
        job = await _run_job(service, tenant_id, job_id)
    if job is not None and job.status in ENDED:
        await hooks.job_ended(service, tenant_id, job_id)
    return job


async def run_job_in_background(service: SyncService, tenant_id: int, job_id: uuid.UUID) -> None:
    """`run_job` for a launcher nobody awaits (the API's tasks, `serve`'s worker). The run
    boundary handles a run's own errors; what escapes it (the job could not be claimed or its
    failure not recorded: the database is away) is logged by its type only (a message could
    quote SQL parameters or platform payloads)."""
    try:
        await run_job(service, tenant_id, job_id)
    except Exception as exc:
        log.error("sync job %s stopped by %s", job_id, type(exc).__name__)


async def _run_job(
    service: SyncService, tenant_id: int, job_id: uuid.UUID
) -> AudienceSyncJob | None:
    """The run boundary: every exception of a started run ends its job (or leaves it to the
    reaper when the lease was lost)."""
    job = start_job(service.factory, tenant_id, job_id, service.clock())
    if job is None:
        return None
    try:
        return await _run_owned(service, tenant_id, job)
    except LeaseLostError:
        # Reaped (or started again) while it ran: another run owns the audience now, and this
        # one wrote nothing since it lost the job (every write is fenced).
        log.warning("sync job %s lost its lease and stopped", job_id)
        return None
    except Exception as error:
        return fail_on_internal_error(service, tenant_id, job, error)


def fail_on_internal_error(
    service: SyncService, tenant_id: int, job: AudienceSyncJob, error: Exception
) -> AudienceSyncJob | None:
    """An error no step expected: logged for the operator without member data (type, scrubbed
    message, frames: `unexpected.report`), and the job failed for good with a message that
    points to the log. A bug or a broken database would fail a retry the same way; a database
    only briefly away gets its next sync from the schedule. None when the failure cannot be
    recorded (the lease was lost meanwhile, the database is away): the job is then left to the
    reaper, which resumes it a bounded number of times (`sync.reaper`)."""
    log.error(
        "sync job %s stopped on an internal error\n%s",
        job.id,  # the reference the marketer reads on the job
        unexpected.report(error),
        extra={"tenant_id": tenant_id},
    )
    try:
        return fail_for_good(
            service.factory,
            tenant_id,
            job.id,
            unexpected.internal_error(job.id),
            service.clock(),
            lease_token=job.lease_token,
        )
    except LeaseLostError:
        log.warning("sync job %s lost its lease and stopped", job.id)
    except Exception as again:  # the type only: see `run_job_in_background`
        log.error("could not record the failure of sync job %s: %s", job.id, type(again).__name__)
    return None


async def _run_owned(
    service: SyncService, tenant_id: int, job: AudienceSyncJob
) -> AudienceSyncJob | None:
    """Run a started job and record how it ended, every write under the run's lease."""
    job_id, token = job.id, job.lease_token
    metrics = JobMetrics()
    try:
        target = load_target(service, tenant_id, job.platform_audience_id)
        async with open_connector(service, target) as connector:
            await Run(service, target, job, connector, metrics).execute()
    except RunInterruptedError as stop:
        if stop.beat is Heartbeat.LOST:
            raise LeaseLostError(f"job {job_id} is no longer held by this run") from None
        if stop.beat is Heartbeat.SHUTDOWN:
            return release_job(
                service.factory, tenant_id, job_id, metrics, service.clock(), lease_token=token
            )
        return complete_job(
            service.factory,
            tenant_id,
            job_id,
            metrics,
            service.clock(),
            SyncStatus.CANCELLED,
            lease_token=token,
        )
    except AudienceSyncError as error:
        delays = service.settings.retry_delays_seconds
        return fail_job(
            service.factory,
            tenant_id,
            job_id,
            error,
            service.clock(),
            delays,
            metrics,
            lease_token=token,
        )
    now = service.clock()
    if metrics.pending_requests:  # read their statuses later, on the platform's schedule
        metrics.confirm_at = now + timedelta(
            seconds=service.settings.confirmation_first_check_seconds
        )
    return complete_job(service.factory, tenant_id, job_id, metrics, now, lease_token=token)


def load_target(service: SyncService, tenant_id: int, audience_id: uuid.UUID) -> Target:
    """Step 2: the segment is active, the connection exists, the flags are on."""
    with transaction(service.factory) as session:
        audience = AudienceRepository(session, tenant_id).get(audience_id)
        segment = SegmentRepository(session, tenant_id).get(audience.segment_id)
        if not segment.is_active:
            raise ValidationError(f"Segment {segment.name!r} is inactive; activate it to sync.")
        flags = FeatureFlagRepository(session, tenant_id).effective(service.settings.feature_flags)
        for flag in sync_flags(audience.platform):
            if not flags[flag]:
                raise ValidationError(f"Feature flag {flag.value!r} is off for this tenant.")
        connections = ConnectionRepository(session, tenant_id, service.cipher)
        connection = connections.get(audience.platform)
        return Target(
            tenant_id=tenant_id,
            audience_id=audience.id,
            segment_id=segment.id,
            platform=audience.platform,
            platform_audience_id=audience.platform_audience_id,
            name=audience.platform_audience_name,
            ad_account_id=audience.ad_account_id or connection.ad_account_id,
            description=audience.description,
            # The connection's consent and Limited Data Use defaults, beneath the audience's.
            config=with_connection_defaults(connection.settings, audience.config or {}),
            sealed_credentials=connection.credentials_encrypted,
            base_url=connection.base_url,
            region=TenantRepository(session).region_of(tenant_id),
            connection_settings=dict(connection.settings or {}),
            credentials_version=connection.credentials_version or 0,
            token_expires_at=connection.token_expires_at,
        )
