"""What every request needs (settings, database, the sync engine) and how a queued job starts."""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from audience_sync.api.metrics import registry_for
from audience_sync.config import Settings
from audience_sync.sync.runner import SyncService, run_job_in_background


class QueuedLauncher:
    """`serve`'s launcher: nothing runs here. The job is already queued in the database, due
    now; the embedded worker process (`scheduler.embedded`) starts it within about a second.
    Syncs are CPU work that would hold the API's event loop for seconds."""

    def launch(self, tenant_id: int, job_id: uuid.UUID) -> None:
        del tenant_id, job_id  # the worker finds the job in the database

    async def drain(self) -> None:
        """Nothing to wait for: the jobs run in the worker process."""

    async def close(self) -> None:
        """The worker process is `serve`'s to stop."""


class JobLauncher:
    """Runs sync jobs as asyncio tasks in this process, at most `max_concurrent_syncs` at once.

    For tests and embedding `create_app` in a process of one's own; `serve` does not use it: a
    sync run here holds the API's event loop while it prepares (`QueuedLauncher`).

    A job is queued in the database before it is launched, so nothing is lost if this process
    stops: the scheduler's tick starts a pending job when due and reaps a running one whose
    heartbeat stopped.
    """

    def __init__(self, service: SyncService) -> None:
        self.service = service
        self._gate = asyncio.Semaphore(service.settings.max_concurrent_syncs)
        self._tasks: set[asyncio.Task[None]] = set()

    def launch(self, tenant_id: int, job_id: uuid.UUID) -> None:
        task = asyncio.get_running_loop().create_task(self._run(tenant_id, job_id))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _run(self, tenant_id: int, job_id: uuid.UUID) -> None:
        async with self._gate:
            await run_job_in_background(self.service, tenant_id, job_id)

    async def drain(self) -> None:
        """Wait until every launched job has ended (tests, graceful shutdown)."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    async def close(self) -> None:
        """Stop running jobs at once; each stays `running` until the scheduler reaps it."""
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*list(self._tasks), return_exceptions=True)


class CeleryLauncher:
    """The distributed mode's launcher: a launched job is sent to the Celery workers.

    The job is queued in the database first; a send the broker refuses is logged and the
    beat's next tick sends the job again (see `scheduler.distributed`)."""

    def __init__(self, settings: Settings) -> None:
        from audience_sync.scheduler.distributed import make_celery  # Celery: distributed only

        self.celery = make_celery(settings)
        self._sends: set[asyncio.Task[bool]] = set()

    def launch(self, tenant_id: int, job_id: uuid.UUID) -> None:
        # Publishing blocks (and retries a moment on a dead broker): not on the event loop.
        from audience_sync.scheduler.distributed import send_job

        send = asyncio.to_thread(send_job, self.celery, tenant_id, job_id)
        task = asyncio.get_running_loop().create_task(send)
        self._sends.add(task)
        task.add_done_callback(self._sends.discard)

    async def drain(self) -> None:
        """Wait until every launched job was handed to the broker (or given up on)."""
        while self._sends:
            await asyncio.gather(*list(self._sends), return_exceptions=True)

    async def close(self) -> None:
        await self.drain()


@dataclass
class ApiContext:
    settings: Settings
    engine: Engine
    factory: sessionmaker[Session]
    service: SyncService
    # `serve` swaps in a `QueuedLauncher` (its syncs run in the embedded worker process).
    launcher: JobLauncher | CeleryLauncher | QueuedLauncher = field(init=False)
    registry: CollectorRegistry = field(init=False)

    def __post_init__(self) -> None:
        distributed = bool(self.settings.broker_url)
        self.launcher = CeleryLauncher(self.settings) if distributed else JobLauncher(self.service)
        self.registry = registry_for(self.factory)
