"""A run's progress is written at each phase change and at most once a second in between."""

from __future__ import annotations

import uuid
from contextlib import nullcontext
from datetime import UTC, datetime, timedelta

from audience_sync.domain.progress import Phase, Unit
from audience_sync.store.tables import AudienceSyncJob
from audience_sync.sync.progress import Mark, ProgressWriter, requests_read, start_confirming

T0 = datetime(2026, 12, 5, 12, tzinfo=UTC)


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        return self.now

    def tick(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


class Recording(ProgressWriter):
    """The writer with its database write recorded instead (the mark it would write)."""

    def __init__(self, clock: Clock) -> None:
        super().__init__(1, uuid.uuid4(), lambda: nullcontext(None), clock, busy=self.is_busy)  # type: ignore[arg-type,return-value]
        self.written: list[Mark] = []
        self.writing = False  # the run's background write runs

    def is_busy(self) -> bool:
        return self.writing

    def write(self, mark: Mark) -> None:
        self.written.append(mark)


async def test_a_phase_change_is_written_at_once() -> None:
    clock = Clock()
    writer = Recording(clock)
    await writer.begin(Phase.READING, Unit.MEMBERS, 100)
    await writer.begin(Phase.PLANNING)
    assert [(m.phase, m.unit, m.done, m.total) for m in writer.written] == [
        (Phase.READING, Unit.MEMBERS, 0, 100),
        (Phase.PLANNING, None, 0, None),
    ]


async def test_counts_are_written_at_most_once_a_second() -> None:
    clock = Clock()
    writer = Recording(clock)
    await writer.begin(Phase.READING, Unit.MEMBERS, 1000)
    for _ in range(10):  # ten batches in 0.9 s: none written
        clock.tick(0.09)
        await writer.advance(10)
    assert len(writer.written) == 1
    clock.tick(0.2)  # past a second since the phase's write
    await writer.advance(10)
    assert [m.done for m in writer.written] == [0, 110]
    assert writer.written[-1].at == clock.now
    assert writer.written[-1].started_at == T0


async def test_a_count_riding_on_a_checkpoint_is_no_write_of_its_own() -> None:
    clock = Clock()
    writer = Recording(clock)
    await writer.begin(Phase.UPLOADING, Unit.RECORDS, 50)
    marks = [writer.riding(10) for _ in range(5)]
    assert [m.done for m in marks if m is not None] == [10, 20, 30, 40, 50]
    assert writer.writes == 1  # the phase change only
    clock.tick(0.5)
    await writer.advance(0)  # the checkpoint just wrote: nothing due
    assert writer.writes == 1


def test_the_confirmation_counts_the_requests_processed() -> None:
    job = AudienceSyncJob(progress_done=0)
    start_confirming(job, 2, T0)
    requests_read(job, 0, 0, T0 + timedelta(minutes=1))
    assert (job.progress_phase, job.progress_unit, job.progress_done, job.progress_total) == (
        "confirming",
        "requests",
        0,
        2,
    )
    requests_read(job, 2, 1, T0 + timedelta(minutes=2))  # both ended; a second half was sent
    assert (job.progress_done, job.progress_total) == (2, 3)
    requests_read(job, 1, 0, T0 + timedelta(minutes=3))
    assert (job.progress_done, job.progress_total) == (3, 3)


def test_a_job_not_confirming_is_left_alone() -> None:
    job = AudienceSyncJob(progress_phase="finishing", progress_done=0)
    requests_read(job, 1, 0, T0)
    assert job.progress_done == 0


async def test_while_a_background_write_runs_the_phase_rides_on_the_next_checkpoint() -> None:
    clock = Clock()
    writer = Recording(clock)
    writer.writing = True  # the member state's save, say
    await writer.begin(Phase.UPLOADING, Unit.RECORDS, 50)
    assert writer.written == []
    riding = writer.riding(10)
    assert riding is not None
    assert (riding.phase, riding.done, riding.total) == (Phase.UPLOADING, 10, 50)
