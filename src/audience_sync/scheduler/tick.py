"""The scheduler's tick and the loop that repeats it.

One tick: fail jobs whose worker went silent (and queue their resumption), queue a job for every
due audience, read the due confirmations of requests Google processes after the job ended
(`sync.confirm`, within its own read budget), then launch every job whose time has come — due
retries included — through the process's `JobLauncher`, and return: the syncs run on while the
scheduler sleeps, under the launcher's one concurrency limit
(`AUDIENCE_SYNC_MAX_CONCURRENT_SYNCS`, shared with the API's launches in the same process).
Last, the time-based alert rules and the due alert deliveries (`services.alerts.upkeep`).
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from dataclasses import dataclass, field

from audience_sync.services import alerts
from audience_sync.services.audiences import enqueue_due
from audience_sync.services.launcher import InProcessLauncher, JobLauncher
from audience_sync.sync.confirm import confirm_due
from audience_sync.sync.context import SyncService
from audience_sync.sync.jobs import due_jobs
from audience_sync.sync.reaper import reap_stale_jobs
from audience_sync.sync.runner import run_job

log = logging.getLogger(__name__)


@dataclass
class TickReport:
    reaped: list[uuid.UUID] = field(default_factory=list)
    queued: int = 0
    launched: int = 0  # jobs this tick handed to the launcher (not already running there)
    ran: int = 0  # jobs that ran to an end (`process_audience_sync_queue` only: it waits)
    statuses: dict[str, int] = field(default_factory=dict)
    confirmations: int = 0  # jobs whose confirmation was read
    status_reads: int = 0
    alerts: dict[str, int] = field(default_factory=dict)  # `services.alerts.upkeep`


def upkeep(service: SyncService) -> tuple[TickReport, list[tuple[int, uuid.UUID]]]:
    """A tick's first half, wherever its jobs then run: fail silent jobs (queueing their
    resumption), queue a job per due audience; the report so far, and the jobs due now."""
    now = service.clock()
    factory = service.factory
    settings = service.settings
    reaped = reap_stale_jobs(factory, now, settings.job_lease_seconds, settings.max_resumes)
    report = TickReport(reaped=reaped)
    report.queued = len(enqueue_due(factory, now))
    return report, due_jobs(factory, now)


async def tick(service: SyncService, launcher: JobLauncher) -> TickReport:
    """One scheduler tick (safe to run on many processes at once); returns once the due jobs
    are launched, not when they end."""
    report, due = await asyncio.to_thread(upkeep, service)
    confirmed = await confirm_due(service)
    report.confirmations, report.status_reads = confirmed.jobs, confirmed.reads
    report.launched = sum(launcher.launch(tenant_id, job_id) for tenant_id, job_id in due)
    # Last: the time-based alert rules and the due alert deliveries (never raises).
    report.alerts = await asyncio.to_thread(alerts.upkeep, service)
    return report


async def process_audience_sync_queue(service: SyncService) -> TickReport:
    """One tick that also waits for the jobs it launched, and counts how they ended
    (`audience-sync scheduler --once`, tests)."""
    ended: dict[str, int] = {}

    async def run(service: SyncService, tenant_id: int, job_id: uuid.UUID) -> None:
        try:
            job = await run_job(service, tenant_id, job_id)
        except Exception as exc:  # the type only: see `runner.run_job_in_background`
            log.error("sync job %s stopped by %s", job_id, type(exc).__name__)
            return
        if job is not None:
            ended[job.status.value] = ended.get(job.status.value, 0) + 1

    launcher = InProcessLauncher(service, run=run)
    report = await tick(service, launcher)
    await launcher.drain()
    report.ran, report.statuses = sum(ended.values()), ended
    return report


async def run_scheduler(
    service: SyncService, stop: asyncio.Event, launcher: JobLauncher | None = None
) -> None:
    """Tick every `AUDIENCE_SYNC_SCHEDULER_TICK_SECONDS` until `stop` is set. The syncs a tick
    launches run on through the next sleeps and ticks; give the process's launcher to share
    its limit (an in-process one of the scheduler's own by default)."""
    own = launcher is None
    launcher = launcher or InProcessLauncher(service)
    while not stop.is_set():
        try:
            report = await tick(service, launcher)
            log.info(
                "scheduler tick: %d queued, %d launched, %d reaped, %d confirmations read",
                report.queued,
                report.launched,
                len(report.reaped),
                report.confirmations,
            )
        except Exception:  # a bad tick must not end the loop; the next one tries again
            log.exception("scheduler tick failed")
        try:
            await asyncio.wait_for(stop.wait(), timeout=service.settings.scheduler_tick_seconds)
        except TimeoutError:
            continue
    if own:  # stopped on purpose: the syncs started here end first
        await launcher.drain()
