"""A run's lease kept through long waits: the connectors' sleep, in slices, renewing between them.

A platform call may wait out `Retry-After` (up to `RetryPolicy.max_retry_after` per attempt), a
backoff, our own rate limiter or a processing poll: longer, added up, than the job's lease
(`AUDIENCE_SYNC_JOB_LEASE_SECONDS`). The lease is otherwise renewed only at checkpoints, so the
scheduler would reap a live run and queue a second one. `LeasedSleep` sleeps at most a third of
the lease at a time and renews the lease after each slice; the renewal checks the run still holds
its job, so a run that lost it stops (`LeaseLostError`) before its next platform call.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from audience_sync.connectors.base import BaseAudienceConnector
from audience_sync.connectors.http import Clock, Sleep

RENEW_AFTER = 1.0
"""Seconds since the last renewal after which a wait renews the lease: a rate limiter's waits of
a few milliseconds between calls do not each cost a database write."""


class LeasedSleep:
    """`sleep(seconds)` in slices of at most `slice_seconds`, renewing the lease after each.

    Time is read on the HTTP client's `clock`, so a call that hung until its timeout counts
    too: five 60 s timeouts separated by backoffs of a few milliseconds renew the lease at each
    backoff."""

    def __init__(
        self,
        sleep: Sleep,
        renew: Callable[[], Awaitable[None]],
        slice_seconds: float,
        clock: Clock,
    ) -> None:
        self.sleep = sleep
        self.renew = renew  # raises `LeaseLostError` when the job is no longer the run's
        self.slice = max(0.001, slice_seconds)
        self.clock = clock
        self.renewed_at = clock()

    async def __call__(self, seconds: float) -> None:
        left = max(0.0, seconds)
        while True:
            step = min(left, self.slice)
            await self.sleep(step)
            left -= step
            # Renewed after the last slice too: the call that follows the wait is made only
            # while the run still holds its job.
            if self.clock() - self.renewed_at >= RENEW_AFTER:
                await self.renew()
                self.renewed_at = self.clock()
            if left <= 0:
                return


def lease_waits(
    connector: BaseAudienceConnector, renew: Callable[[], Awaitable[None]], lease_seconds: float
) -> None:
    """Make the connector's waits (its HTTP client's: `Retry-After`, backoff, rate limit; its
    own processing polls) renew a lease of `lease_seconds`, in slices of a third of it."""
    http, third = connector.http, lease_seconds / 3
    leased = LeasedSleep(http.sleep, renew, third, http.clock)
    if connector.sleep is http.sleep:
        connector.sleep = leased
    else:
        connector.sleep = LeasedSleep(connector.sleep, renew, third, http.clock)
    http.sleep = leased
