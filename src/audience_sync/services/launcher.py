"""Starting queued jobs: the one seam every caller uses, with one concurrency limit.

A job is queued in the database before it is launched, so a launch lost with its process costs
nothing: the scheduler's tick starts a pending job when due and reaps a running one whose
heartbeat stopped. Launchers:

- `InProcessLauncher`: asyncio tasks in this process, at most `AUDIENCE_SYNC_MAX_CONCURRENT_SYNCS`
  running at once whoever launched them (the API's routes, the scheduler's ticks, the CLI, the
  embedded worker): one instance per process is shared by all of them;
- `CeleryLauncher`: each launch is a message to the Celery workers (their processes are the
  limit there);
- `QueuedLauncher`: nothing runs here; `serve`'s worker process finds the job due now.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Awaitable, Callable
from typing import Protocol

from audience_sync.sync.context import SyncService
from audience_sync.sync.runner import run_job_in_background

log = logging.getLogger(__name__)

RunJob = Callable[[SyncService, int, uuid.UUID], Awaitable[None]]
SendJob = Callable[[int, uuid.UUID], bool]


class JobLauncher(Protocol):
    def launch(self, tenant_id: int, job_id: uuid.UUID) -> bool:
        """Start the job (or have it started); False when this launcher has it already."""

    def free_slots(self) -> int | None:
        """How many more jobs may start here now; None when the limit is elsewhere."""

    async def drain(self) -> None:
        """Wait until every launched job has ended (or was handed over)."""

    async def close(self) -> None:
        """Stop: running jobs are abandoned to the lease reaper, or handed over."""


class InProcessLauncher:
    """Runs jobs as asyncio tasks of this process's event loop, at most `limit` at once.

    Every task waits for a slot before `run_job` claims its job, so a job waiting here can still
    be claimed by another process; a job already launched here is not launched twice."""

    def __init__(
        self, service: SyncService, limit: int | None = None, run: RunJob | None = None
    ) -> None:
        self.service = service
        self.limit = limit or service.settings.max_concurrent_syncs
        self.run = run or run_job_in_background
        self.tasks: dict[uuid.UUID, asyncio.Task[None]] = {}
        self._gate: asyncio.Semaphore | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self.running = 0  # jobs past the gate now

    def launch(self, tenant_id: int, job_id: uuid.UUID) -> bool:
        if job_id in self.tasks:
            return False
        task = asyncio.get_running_loop().create_task(self._run(tenant_id, job_id))
        self.tasks[job_id] = task
        task.add_done_callback(lambda _: self.tasks.pop(job_id, None))
        return True

    def free_slots(self) -> int:
        return max(0, self.limit - len(self.tasks))

    async def _run(self, tenant_id: int, job_id: uuid.UUID) -> None:
        loop = asyncio.get_running_loop()
        if self._gate is None or self._loop is not loop:  # a gate belongs to one event loop
            self._gate, self._loop = asyncio.Semaphore(self.limit), loop
        async with self._gate:
            self.running += 1
            try:
                await self.run(self.service, tenant_id, job_id)
            finally:
                self.running -= 1

    async def drain(self) -> None:
        while self.tasks:
            await asyncio.gather(*list(self.tasks.values()), return_exceptions=True)

    async def close(self) -> None:
        """Stop running jobs at once; each stays `running` until the scheduler reaps it."""
        tasks = list(self.tasks.values())
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def stop(self, grace_seconds: float) -> int:
        """Wait up to `grace_seconds` for running jobs (a stopping service makes them hand
        their jobs back at their next checkpoint), then cancel the rest; how many were late."""
        tasks = list(self.tasks.values())
        if not tasks:
            return 0
        _, late = await asyncio.wait(tasks, timeout=grace_seconds)
        for task in late:
            task.cancel()
        await asyncio.gather(*late, return_exceptions=True)
        return len(late)


class CeleryLauncher:
    """The distributed mode's launcher: a launched job is sent to the Celery workers.

    `send` publishes (`scheduler.distributed.send_job`); it blocks, and retries a moment on a
    dead broker, so it runs off the event loop. A send the broker refuses is logged there and the
    beat's next tick sends the job again."""

    def __init__(self, send: SendJob) -> None:
        self.send = send
        self._sends: set[asyncio.Task[bool]] = set()

    def launch(self, tenant_id: int, job_id: uuid.UUID) -> bool:
        sending = asyncio.to_thread(self.send, tenant_id, job_id)
        task = asyncio.get_running_loop().create_task(sending)
        self._sends.add(task)
        task.add_done_callback(self._sends.discard)
        return True

    def free_slots(self) -> None:
        return None

    async def drain(self) -> None:
        """Wait until every launched job was handed to the broker (or given up on)."""
        while self._sends:
            await asyncio.gather(*list(self._sends), return_exceptions=True)

    async def close(self) -> None:
        await self.drain()


class QueuedLauncher:
    """`serve`'s launcher: nothing runs here. The job is already queued in the database, due
    now; the embedded worker process (`scheduler.embedded`) starts it within about a second.
    Syncs are CPU work that would hold the API's event loop for seconds."""

    def launch(self, tenant_id: int, job_id: uuid.UUID) -> bool:
        del tenant_id, job_id  # the worker finds the job in the database
        return True

    def free_slots(self) -> None:
        return None

    async def drain(self) -> None:
        """Nothing to wait for: the jobs run in the worker process."""

    async def close(self) -> None:
        """The worker process is `serve`'s to stop."""
