"""One database write at a time, in order, on a worker thread, while the event loop sends."""

from __future__ import annotations

import asyncio
import contextvars
import logging
from collections.abc import Callable
from typing import Generic, TypeVar

from audience_sync.sync import unexpected

log = logging.getLogger(__name__)
T = TypeVar("T")


class BackgroundWriter(Generic[T]):
    """Runs a write (a checkpoint, the member state) in the event loop's default executor while
    the caller goes on sending. The caller waits for the write in flight (`wait`) before it
    starts the next one, so writes run one at a time, in the order they were started, and a
    failed write is raised where it is waited for."""

    def __init__(self) -> None:
        self.writing: asyncio.Future[T] | None = None

    @property
    def busy(self) -> bool:
        """A write is in flight (started and not yet waited for)."""
        return self.writing is not None

    @property
    def writing_now(self) -> bool:
        """A write is running (started, not finished): another write would wait for its
        locks."""
        return self.writing is not None and not self.writing.done()

    def start(self, work: Callable[[], T]) -> None:
        """Start `work` on a worker thread now; wait for the write in flight first (`wait`)."""
        assert self.writing is None, "one write in flight at a time"
        # Submitted now, not as a task: a task would start at the loop's next turn, and a send
        # to an in-process app (the sandbox) may never yield to the loop.
        context = contextvars.copy_context()  # the log context, as `asyncio.to_thread` does
        self.writing = asyncio.get_running_loop().run_in_executor(None, context.run, work)

    async def wait(self) -> T | None:
        """The result of the write in flight (its error raised here); None when none is."""
        if self.writing is None:
            return None
        writing, self.writing = self.writing, None
        return await writing

    async def settle(self) -> None:
        """On the way out of a failed run: let the write in flight finish (a checkpoint's chunk
        was accepted), logging rather than raising its own failure over the run's. Logged as
        `unexpected.report` tells it: a database error's message can quote the rows."""
        try:
            await self.wait()
        except Exception as error:
            log.warning(
                "a write in flight when the run failed did not commit\n%s",
                unexpected.report(error),
            )
