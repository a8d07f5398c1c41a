"""A run's writes under its lease: each sent chunk checkpointed in the background, in order.

A checkpoint commits a chunk's accepted records to the snapshot with the job's counters, in the
transaction that renews the lease (I2), on a worker thread while the next chunk is sent
(`BackgroundWriter`). The heartbeat's answer after each (go on, cancel, lease lost, shutting
down) stops the run at that batch boundary (`RunInterruptedError`).
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Callable
from contextlib import AbstractContextManager
from datetime import datetime

import polars as pl
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session

from audience_sync.connectors import Operation
from audience_sync.store.db import is_busy, transaction
from audience_sync.store.member_state import MemberStateRepository
from audience_sync.store.repositories import SyncJobRepository
from audience_sync.store.snapshot import SnapshotRepository
from audience_sync.store.tables import AudienceSyncJob
from audience_sync.sync.context import SyncService, Target
from audience_sync.sync.fence import Heartbeat, Lease, LeaseLostError, fenced, heartbeat, hold_lease
from audience_sync.sync.figures import Tally
from audience_sync.sync.prepare import Preparer
from audience_sync.sync.progress import Mark, ProgressWriter
from audience_sync.sync.writer import BackgroundWriter

log = logging.getLogger(__name__)


class RunInterruptedError(Exception):
    """The run stops at a batch boundary: cancelled, or the job's lease was lost."""

    def __init__(self, beat: Heartbeat) -> None:
        super().__init__(beat.value)
        self.beat = beat


class Checkpoints:
    """The run's hold on its job and its writes: every one fenced by the lease."""

    def __init__(
        self, service: SyncService, target: Target, job: AudienceSyncJob, tally: Tally
    ) -> None:
        self.service = service
        self.target = target
        self.tally = tally
        self.hold = Lease(target.tenant_id, job.id, job.lease_token)
        self.writer: BackgroundWriter[Heartbeat | None] = BackgroundWriter()
        # The run's progress, written under the same lease; a chunk's count rides on its
        # checkpoint (`confirm`).
        self.progress = ProgressWriter(
            target.tenant_id,
            job.id,
            self.fenced,
            service.clock,
            busy=lambda: self.writer.writing_now,
        )

    def fenced(self) -> AbstractContextManager[Session]:
        """A transaction that commits only while this run holds its job (`fence.fenced`)."""
        return fenced(self.service.factory, self.hold, self.service.clock())

    def lease(self) -> Heartbeat:
        """Renew the job's lease; whether to go on, cancel, or stop (`fence.heartbeat`), or
        stop because this process is shutting down."""
        answer = heartbeat(
            self.service.factory,
            self.target.tenant_id,
            self.hold.job_id,
            self.service.clock(),
            self.hold.token,
        )
        return self.or_shutdown(answer)

    def or_shutdown(self, answer: Heartbeat) -> Heartbeat:
        """`SHUTDOWN` instead of `CONTINUE` once this process is stopping (`serve`'s worker)."""
        if answer is Heartbeat.CONTINUE and self.service.stopping():
            return Heartbeat.SHUTDOWN
        return answer

    async def renew_while_waiting(self) -> None:
        """Renew the lease from a wait, on a thread (the database call is synchronous); a
        cancel is left for the next checkpoint, as before.

        On SQLite the run's own background write (a checkpoint, the member state's save) can
        hold the write lock past the busy timeout; the renewal is then skipped, not fatal: the
        next wait or checkpoint renews the lease, and every write stays fenced, so a lease
        lost meanwhile is found there (a 10M-member create failed on this before)."""
        try:
            answer = await asyncio.to_thread(self.lease)
        except OperationalError as error:
            if not is_busy(error):
                raise
            log.warning("lease renewal of job %s skipped: the database is busy", self.hold.job_id)
            return
        if answer is Heartbeat.LOST:
            raise LeaseLostError(f"job {self.hold.job_id} is no longer held by this run")

    def save_state(self, preparer: Preparer) -> Heartbeat:
        """The member state `prepare` found, saved under the run's lease (`in_background`)."""
        try:
            preparer.save(self.service.clock(), begin=self.fenced)
        except LeaseLostError:
            return Heartbeat.LOST
        return Heartbeat.CONTINUE

    def in_background(self, work: Callable[[], Heartbeat | None]) -> None:
        """Start `work` (a database write) in a worker thread; the caller waits for the write
        in flight first (`written`), so writes run one at a time, in order."""
        self.writer.start(work)

    async def written(self) -> Heartbeat:
        """Wait for the write in flight; the heartbeat's answer after it (a checkpoint's)."""
        return await self.writer.wait() or Heartbeat.CONTINUE

    async def drain(self) -> None:
        """Wait for the write in flight; stop if its heartbeat says so."""
        answer = await self.written()
        if answer is not Heartbeat.CONTINUE:
            raise RunInterruptedError(answer)

    async def settle(self) -> None:
        """On the way out of a failed run: let the write in flight finish, never raising."""
        await self.writer.settle()

    async def confirm(
        self,
        op: Operation,
        chunk: pl.DataFrame,
        accepted: pl.DataFrame,
        failed: int,
        *,
        superseded: bool = False,
    ) -> None:
        """Checkpoint a sent chunk in a worker thread while the next one is prepared and sent.

        Checkpoints run one at a time, in order (`in_background`). Writing a chunk's part and
        committing it (compressing ~40 MB, then SQLite writing it twice, WAL and database) takes
        about as long as sending it; with a real platform the send is network time, so this
        hides the checkpoint entirely. A cancel or a lost lease, reported by the heartbeat after a
        checkpoint, stops the run once the chunk sent meanwhile is checkpointed too: the
        snapshot holds everything the platform accepted."""
        answer = await self.written()
        mark = self.progress.riding(len(chunk))
        work = functools.partial(self.checkpoint, op, chunk, accepted, failed, superseded, mark)
        self.in_background(work)
        if answer is not Heartbeat.CONTINUE:
            await self.written()
            raise RunInterruptedError(answer)

    def checkpoint(
        self,
        op: Operation,
        chunk: pl.DataFrame,
        accepted: pl.DataFrame,
        failed: int,
        superseded: bool = False,
        mark: Mark | None = None,
    ) -> Heartbeat:
        """I2: a chunk's records enter the snapshot in the same transaction as the counters,
        and as the lease's renewal, which checks the run still holds its job (else nothing
        commits and the answer is `LOST`; see `confirm`). `superseded` removals were replaced
        by a record of the same person (`update.send`): nobody left, so no member is counted
        removed."""
        now = self.service.clock()
        try:
            with transaction(self.service.factory) as session:
                self.write(session, now, op, chunk, accepted, failed, superseded, mark)
                # The lease last, in the same transaction: when it is lost, the chunk's part
                # and the counters roll back with it. Last, not first: on PostgreSQL its
                # UPDATE locks the job's row until commit, and the part's insert (seconds at a
                # million members) would hold every other write of the run (progress, a
                # renewal during a wait) behind it. The fence is the same: the transaction
                # commits only if the run held its job at its last statement, and the row
                # stays locked from then until the commit (docs/sync.md, Leases).
                answer = hold_lease(session, self.hold, now)
        except LeaseLostError:
            return Heartbeat.LOST
        return self.or_shutdown(answer)

    def write(
        self,
        session: Session,
        now: datetime,
        op: Operation,
        chunk: pl.DataFrame,
        accepted: pl.DataFrame,
        failed: int,
        superseded: bool,
        mark: Mark | None = None,
    ) -> None:
        """The checkpoint's writes, in the caller's fenced transaction (with the run's
        progress as counted when the chunk was sent, `mark`)."""
        snapshot = SnapshotRepository(session, self.target.tenant_id)
        if op is Operation.ADD:
            snapshot.confirm_records(self.target.audience_id, now, accepted)
            self.tally.adds_confirmed(chunk, accepted)
        else:
            removed = accepted["record_hash"].to_list()
            snapshot.confirm(self.target.audience_id, now, removed=removed)
            self.tally.removes_confirmed(chunk, accepted, failed, superseded)
        metrics = self.tally.metrics
        job = SyncJobRepository(session, self.target.tenant_id).get(self.hold.job_id)
        job.profiles_sent = metrics.profiles_sent
        job.profiles_added = metrics.profiles_added
        job.profiles_removed = metrics.profiles_removed
        job.profiles_failed = metrics.profiles_failed
        if mark is not None:
            mark.apply(job)

    def converged(self) -> None:
        """Every planned record was confirmed: the snapshot now holds exactly the member state's
        records, so the next update can plan from the state. Under the job's lease, so a run
        that lost its job never vouches for a snapshot another run changes; a cancel
        requested meanwhile stops the run here, as at a checkpoint."""
        with transaction(self.service.factory) as session:
            answer = hold_lease(session, self.hold, self.service.clock())
            if answer is not Heartbeat.CONTINUE:
                raise RunInterruptedError(answer)
            MemberStateRepository(session, self.target.tenant_id).mark_converged(
                self.target.audience_id
            )
