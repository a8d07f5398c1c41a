"""The scheduler's tick (`process_audience_sync_queue`) and the loop that repeats it.

One tick: fail jobs whose worker went silent (and queue their resumption), queue a job for every
due audience, read the due confirmations of requests Google processes after the job ended
(`sync.confirm`, within its own read budget), then run every job whose time has come — due
retries included — at most `AUDIENCE_SYNC_MAX_CONCURRENT_SYNCS` at once in this process.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from dataclasses import dataclass, field

from audience_sync.scheduler.queue import enqueue_due_audiences
from audience_sync.sync.confirm import confirm_due
from audience_sync.sync.jobs import due_jobs
from audience_sync.sync.reaper import reap_stale_jobs
from audience_sync.sync.runner import SyncService, run_job

log = logging.getLogger(__name__)


@dataclass
class TickReport:
    reaped: list[uuid.UUID] = field(default_factory=list)
    queued: int = 0
    ran: int = 0
    statuses: dict[str, int] = field(default_factory=dict)
    confirmations: int = 0  # jobs whose confirmation was read
    status_reads: int = 0


def upkeep(service: SyncService) -> tuple[TickReport, list[tuple[int, uuid.UUID]]]:
    """A tick's first half, wherever its jobs then run: fail silent jobs (queueing their
    resumption), queue a job per due audience; the report so far, and the jobs due now."""
    now = service.clock()
    factory = service.factory
    settings = service.settings
    reaped = reap_stale_jobs(factory, now, settings.job_lease_seconds, settings.max_resumes)
    report = TickReport(reaped=reaped)
    report.queued = len(enqueue_due_audiences(factory, now))
    return report, due_jobs(factory, now)


async def process_audience_sync_queue(service: SyncService) -> TickReport:
    """Run one scheduler tick (safe to run on many processes at once)."""
    report, due = upkeep(service)
    confirmed = await confirm_due(service)
    report.confirmations, report.status_reads = confirmed.jobs, confirmed.reads
    gate = asyncio.Semaphore(service.settings.max_concurrent_syncs)

    async def one(tenant_id: int, job_id: uuid.UUID) -> None:
        async with gate:
            job = await run_job(service, tenant_id, job_id)
        if job is not None:
            report.ran += 1
            report.statuses[job.status.value] = report.statuses.get(job.status.value, 0) + 1

    await asyncio.gather(*(one(tenant_id, job_id) for tenant_id, job_id in due))
    return report


async def run_scheduler(service: SyncService, stop: asyncio.Event) -> None:
    """Tick every `AUDIENCE_SYNC_SCHEDULER_TICK_SECONDS` until `stop` is set."""
    while not stop.is_set():
        try:
            report = await process_audience_sync_queue(service)
            log.info(
                "scheduler tick: %d queued, %d ran %s, %d reaped, %d confirmations read",
                report.queued,
                report.ran,
                report.statuses,
                len(report.reaped),
                report.confirmations,
            )
        except Exception:  # a bad tick must not end the loop; the next one tries again
            log.exception("scheduler tick failed")
        try:
            await asyncio.wait_for(stop.wait(), timeout=service.settings.scheduler_tick_seconds)
        except TimeoutError:
            continue
