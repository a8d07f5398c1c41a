"""A run's progress on its job row: phase, done of total, written under the run's lease.

The API reads the job from another process (a worker or Celery runs the sync), so progress is
persisted. It must cost the sync nothing measurable: a phase change is written at once (six a
run at most); counts in between at most once every `EVERY` seconds, and a chunk's count rides
on its checkpoint, which writes the job's row anyway (`Checkpoints.checkpoint`). Every write is
fenced (`fence.fenced`): a worker that lost its job writes no progress either. The rate and ETA
are read from these columns in one place, `services.jobs.progress_of`.
"""

from __future__ import annotations

import asyncio
import dataclasses
import uuid
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy.orm import Session

from audience_sync.domain.progress import Phase, Unit
from audience_sync.store.repositories import SyncJobRepository
from audience_sync.store.tables import AudienceSyncJob

EVERY = timedelta(seconds=1)
"""At most one progress write a job in this time, besides the phase changes."""


@dataclass(frozen=True, slots=True)
class Mark:
    """The progress as last counted: what the job's `progress_*` columns hold once written."""

    phase: Phase
    unit: Unit | None
    done: int
    total: int | None
    started_at: datetime
    at: datetime

    def apply(self, job: AudienceSyncJob) -> None:
        """Set the job's progress columns (in the caller's transaction)."""
        job.progress_phase = self.phase.value
        job.progress_unit = self.unit.value if self.unit else None
        job.progress_done = self.done
        job.progress_total = self.total
        job.progress_started_at = self.started_at
        job.progress_at = self.at


class ProgressWriter:
    """Counts a run's progress and writes it to the job, throttled, under the run's lease."""

    def __init__(
        self,
        tenant_id: int,
        job_id: uuid.UUID,
        fenced: Callable[[], AbstractContextManager[Session]],
        clock: Callable[[], datetime],
        every: timedelta = EVERY,
        busy: Callable[[], bool] = lambda: False,
    ) -> None:
        self.tenant_id = tenant_id
        self.job_id = job_id
        self.fenced = fenced  # a transaction that commits only while the run holds its job
        self.clock = clock
        self.every = every
        # True while the run's background write (a checkpoint, the member state) is running:
        # a write now would wait for its locks, holding the run up.
        self.busy = busy
        self.mark: Mark | None = None
        self.written_at: datetime | None = None
        self.writes = 0  # progress writes of its own (not those riding on a checkpoint)

    async def begin(self, phase: Phase, unit: Unit | None = None, total: int | None = None) -> None:
        """Enter `phase`, counting from 0 of `total`; written now."""
        now = self.clock()
        self.mark = Mark(phase, unit, 0, total, now, now)
        await self.flush()

    def count(self, done: int) -> Mark | None:
        """Set the phase's count; the mark to write, only when one is due (throttled)."""
        if self.mark is None:
            return None
        now = self.clock()
        self.mark = dataclasses.replace(self.mark, done=done, at=now)
        if self.written_at is not None and now - self.written_at < self.every:
            return None
        return self.taken(now)

    def add(self, count: int) -> Mark | None:
        """`count` more done (see `count`)."""
        return self.count((self.mark.done if self.mark else 0) + count)

    def riding(self, count: int) -> Mark | None:
        """`count` more done, the mark returned to be written by a write the run makes anyway
        (a checkpoint, which updates the job's row): no write of its own, so no throttle."""
        self.add(count)
        return self.taken(self.clock())

    def taken(self, now: datetime) -> Mark | None:
        """The mark, as about to be written now."""
        self.written_at = now
        return self.mark

    async def advance(self, count: int) -> None:
        """`count` more done; written when a write is due."""
        if self.add(count) is not None:
            await self.write_now()

    async def flush(self) -> None:
        """Write the mark now (a phase change)."""
        if self.taken(self.clock()) is not None:
            await self.write_now()

    async def write_now(self) -> None:
        """Write the mark in a fenced transaction, on a thread (the database call is
        synchronous). `LeaseLostError` when the run lost its job: nothing is written. While
        the run's background write runs, nothing either: the mark rides on the next checkpoint
        (`riding`), so progress never holds the run up (the member state's save, seconds at a
        million members, runs beside the plan and the first chunk)."""
        mark = self.mark
        if mark is None or self.busy():
            return
        self.writes += 1
        await asyncio.to_thread(self.write, mark)

    def write(self, mark: Mark) -> None:
        with self.fenced() as session:
            mark.apply(SyncJobRepository(session, self.tenant_id).get(self.job_id))


def start_confirming(job: AudienceSyncJob, requests: int, now: datetime) -> None:
    """A completed job whose requests the platform processes later (Google): its progress is
    then the requests processed, counted by the confirmation step (`requests_read`)."""
    Mark(Phase.CONFIRMING, Unit.REQUESTS, 0, requests, now, now).apply(job)


def requests_read(job: AudienceSyncJob, finished: int, sent: int, now: datetime) -> None:
    """The confirmation step read the requests: `finished` of them ended (processed or
    failed), and `sent` more were sent (a replace's second half, Google)."""
    if job.progress_phase != Phase.CONFIRMING.value:
        return
    job.progress_total = (job.progress_total or 0) + sent
    job.progress_done = job.progress_done + finished
    job.progress_at = now
