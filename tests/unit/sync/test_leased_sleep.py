"""The connectors' sleep during a run (`sync.lease.LeasedSleep`): a long wait is slept in slices,
the lease renewed after each; a lost job stops the wait before the next platform call."""

from __future__ import annotations

import pytest

from audience_sync.sync.fence import LeaseLostError
from audience_sync.sync.lease import LeasedSleep


class Clock:
    def __init__(self) -> None:
        self.now = 0.0
        self.slept: list[float] = []
        self.renewed: list[float] = []

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds

    async def renew(self) -> None:
        self.renewed.append(self.now)


async def test_a_long_wait_is_slept_in_slices_renewing_the_lease_after_each() -> None:
    clock = Clock()
    await LeasedSleep(clock.sleep, clock.renew, 20, clock)(110)
    assert clock.slept == [20, 20, 20, 20, 20, 10]
    assert clock.renewed == [20, 40, 60, 80, 100, 110]  # the last one before the next call


async def test_short_waits_renew_once_a_second_of_them_has_passed() -> None:
    clock = Clock()
    leased = LeasedSleep(clock.sleep, clock.renew, 20, clock)
    for _ in range(10):
        await leased(0.25)
    assert clock.renewed == [1.0, 2.0]


async def test_time_spent_in_a_hung_call_counts_so_a_tiny_backoff_renews() -> None:
    """Five 60 s timeouts separated by backoffs of milliseconds: each backoff renews."""
    clock = Clock()
    leased = LeasedSleep(clock.sleep, clock.renew, 20, clock)
    for _ in range(4):
        clock.now += 60  # the call hung until its timeout
        await leased(0.001)
    assert len(clock.renewed) == 4


async def test_a_lost_job_ends_the_wait_at_the_next_slice() -> None:
    clock = Clock()

    async def lost() -> None:
        raise LeaseLostError("reaped")

    with pytest.raises(LeaseLostError):
        await LeasedSleep(clock.sleep, lost, 20, clock)(110)
    assert clock.slept == [20]
