"""The embedded mode's sync worker: a process of its own, beside the API of `audience-sync serve`.

Preparing a sync is CPU work (Polars, hashing) that holds the event loop for seconds; run in the
API's process it froze every request. So `serve` (with no broker) starts this worker as a child
process (`audience-sync embedded-worker`, hidden) and restarts it if it dies. The API only
queues jobs in the database (`jobs.trigger_job` makes them due now); the worker looks for due
jobs every `POLL_SECONDS`, so an on-demand sync starts within about a second, and runs the
scheduler's upkeep (reap silent jobs, queue due audiences, read due confirmations) every
`AUDIENCE_SYNC_SCHEDULER_TICK_SECONDS`.

Stopping (SIGTERM or SIGINT to the worker; `serve` sends SIGTERM when it stops): no new job
starts, running syncs stop at their next checkpoint and hand their job back as pending, due now
(`jobs.release_job`); a sync still running after `AUDIENCE_SYNC_SHUTDOWN_GRACE_SECONDS` is left
to the lease reaper. The worker also stops when its parent is gone.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import subprocess
import threading
import time
from collections.abc import Sequence
from dataclasses import replace

from audience_sync.scheduler.tick import upkeep
from audience_sync.services.launcher import InProcessLauncher
from audience_sync.sync.confirm import confirm_due
from audience_sync.sync.context import SyncService
from audience_sync.sync.jobs import due_jobs

log = logging.getLogger(__name__)

POLL_SECONDS = 0.5  # how often the worker looks for due jobs (API-triggered syncs start then)
KILL_MARGIN_SECONDS = 10  # after the grace time, how long `serve` waits before killing
# Seconds before restarting a dead worker: at once, then longer while it keeps dying quickly.
RESTART_DELAYS = (0, 1, 2, 5, 10, 30)


class SyncWorker:
    """Runs due jobs through the process's one launcher (at most
    `AUDIENCE_SYNC_MAX_CONCURRENT_SYNCS` at once) and the upkeep."""

    def __init__(self, service: SyncService, stopping: threading.Event) -> None:
        self.service = service
        self.stopping = stopping
        self.launcher = InProcessLauncher(service)
        self.upkeeping: asyncio.Task[None] | None = None
        self.parent = os.getppid()

    async def run(self) -> None:
        """Until `stopping` is set (or the parent is gone), then stop gracefully."""
        loop = asyncio.get_running_loop()
        next_upkeep = loop.time()
        while not self.stopping.is_set():
            if os.getppid() != self.parent:  # `serve` died without stopping us
                log.warning("the serving process is gone: the sync worker stops")
                self.stopping.set()
                break
            if loop.time() >= next_upkeep and (self.upkeeping is None or self.upkeeping.done()):
                self.upkeeping = asyncio.create_task(self.upkeep())
                next_upkeep = loop.time() + self.service.settings.scheduler_tick_seconds
            self.launch_due()
            await asyncio.sleep(POLL_SECONDS)
        await self.finish()

    async def upkeep(self) -> None:
        """The scheduler tick's upkeep: reap, queue due audiences, read due confirmations."""
        try:
            report, _ = await asyncio.to_thread(upkeep, self.service)
            confirmed = await confirm_due(self.service)
            log.info(
                "scheduler tick: %d queued, %d reaped, %d confirmations read",
                report.queued,
                len(report.reaped),
                confirmed.jobs,
            )
        except Exception:  # a bad tick must not end the worker; the next one tries again
            log.exception("scheduler tick failed")

    def launch_due(self) -> None:
        """Start due jobs while there is room; a job another process claims first is skipped
        by `run_job` (`start_job` claims once)."""
        room = self.launcher.free_slots()
        if room <= 0:
            return
        try:
            due = due_jobs(self.service.factory, self.service.clock())
        except Exception:  # the database is away: try again at the next poll
            log.exception("could not read the due jobs")
            return
        for tenant_id, job_id in due:
            if room <= 0:
                break
            room -= self.launcher.launch(tenant_id, job_id)

    async def finish(self) -> None:
        """Let running syncs reach a checkpoint and hand their jobs back, within the grace
        time; whatever still runs then is abandoned to the lease reaper."""
        if self.upkeeping is not None:
            self.upkeeping.cancel()
        running = len(self.launcher.tasks)
        if not running:
            return
        log.info("stopping: %d running sync(s) stop at their next checkpoint", running)
        grace = self.service.settings.shutdown_grace_seconds
        late = await self.launcher.stop(grace)
        if late:
            log.warning(
                "%d sync(s) did not reach a checkpoint within %d s: the lease reaper resumes them",
                late,
                grace,
            )


def run_worker(service: SyncService) -> None:
    """The worker process's main: runs until SIGTERM or SIGINT (or the parent's death)."""
    stopping = threading.Event()
    worker = SyncWorker(_stoppable(service, stopping), stopping)

    def stop(signum: int, _frame: object) -> None:
        log.info("sync worker: %s received, stopping", signal.Signals(signum).name)
        stopping.set()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    asyncio.run(worker.run())


def _stoppable(service: SyncService, stopping: threading.Event) -> SyncService:
    return replace(service, stopping=stopping.is_set)


class WorkerProcess:
    """`serve`'s side: starts the worker process, restarts it when it dies, stops it."""

    def __init__(self, command: Sequence[str], grace_seconds: int) -> None:
        self.command = list(command)
        self.grace_seconds = grace_seconds
        self.process: subprocess.Popen[bytes] | None = None
        self.stopped = False
        self.started_at = 0.0
        self.quick_deaths = 0

    def start(self) -> None:
        self.process = subprocess.Popen(self.command)  # noqa: S603 (our own command line)
        self.started_at = time.monotonic()

    async def watch(self) -> None:
        """Restart the worker whenever it dies (until `stop`); deaths within a minute of the
        start back off (a worker that cannot start must not spin)."""
        while not self.stopped:
            await asyncio.sleep(1)
            if self.stopped or self.process is None or self.process.poll() is None:
                continue
            quick = time.monotonic() - self.started_at < 60
            self.quick_deaths = self.quick_deaths + 1 if quick else 0
            delay = RESTART_DELAYS[min(self.quick_deaths, len(RESTART_DELAYS) - 1)]
            log.warning(
                "the sync worker exited (code %s); restarting it in %d s",
                self.process.returncode,
                delay,
            )
            await asyncio.sleep(delay)
            if not self.stopped:
                self.start()

    def stop(self) -> None:
        """SIGTERM, then wait the grace time (and a margin) before killing. A second Ctrl-C
        while waiting kills at once."""
        self.stopped = True
        process = self.process
        if process is None or process.poll() is not None:
            return
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(self.grace_seconds + KILL_MARGIN_SECONDS)
        except (subprocess.TimeoutExpired, KeyboardInterrupt):
            log.warning("the sync worker did not stop in time: killed; the lease reaper resumes")
            process.kill()
            process.wait()
