"""The background writer runs one write at a time, in order, beside the event loop."""

from __future__ import annotations

import asyncio
import contextvars
import logging
import threading
import time

import pytest

from audience_sync.sync.writer import BackgroundWriter

REQUEST = contextvars.ContextVar("request", default="none")


async def test_a_write_starts_at_once_on_another_thread() -> None:
    writer: BackgroundWriter[str] = BackgroundWriter()
    started = threading.Event()

    def work() -> str:
        started.set()
        return threading.current_thread().name

    writer.start(work)
    # The loop never turns (a send to an in-process app may not yield): the write runs anyway.
    assert started.wait(timeout=5)
    assert writer.busy
    assert await writer.wait() != threading.current_thread().name
    assert not writer.busy


async def test_writes_run_one_at_a_time_in_order() -> None:
    writer: BackgroundWriter[int] = BackgroundWriter()
    done: list[int] = []

    def work(i: int) -> int:
        time.sleep(0.01 * (3 - i))  # the first is the slowest
        done.append(i)
        return i

    answers = []
    for i in range(3):
        answers.append(await writer.wait())
        writer.start(lambda i=i: work(i))  # type: ignore[misc]
    answers.append(await writer.wait())
    assert done == [0, 1, 2]
    assert answers == [None, 0, 1, 2]


async def test_a_second_write_before_waiting_for_the_first_is_refused() -> None:
    writer: BackgroundWriter[None] = BackgroundWriter()
    writer.start(lambda: None)
    with pytest.raises(AssertionError, match="one write in flight"):
        writer.start(lambda: None)
    await writer.wait()


async def test_nothing_in_flight_waits_for_nothing() -> None:
    assert await BackgroundWriter[int]().wait() is None


async def test_a_write_sees_the_context_it_was_started_in() -> None:
    writer: BackgroundWriter[str] = BackgroundWriter()
    REQUEST.set("job 7")
    writer.start(REQUEST.get)
    assert await writer.wait() == "job 7"


async def test_a_failed_write_is_raised_where_it_is_waited_for() -> None:
    writer: BackgroundWriter[None] = BackgroundWriter()

    def work() -> None:
        raise OSError("disk full")

    writer.start(work)
    with pytest.raises(OSError, match="disk full"):
        await writer.wait()
    assert not writer.busy


async def test_settling_logs_a_failed_write_without_its_values(
    caplog: pytest.LogCaptureFixture,
) -> None:
    writer: BackgroundWriter[None] = BackgroundWriter()

    row = ("jane@example.com", "+16505550003")

    def work() -> None:
        raise ValueError(f"bad row {row}")

    writer.start(work)
    with caplog.at_level(logging.WARNING):
        await writer.settle()
    assert "did not commit" in caplog.text
    assert "ValueError" in caplog.text
    assert "jane@example.com" not in caplog.text
    assert "16505550003" not in caplog.text
    assert not writer.busy
    await writer.settle()  # nothing in flight: nothing to do


async def test_the_loop_goes_on_while_a_write_runs() -> None:
    writer: BackgroundWriter[bool] = BackgroundWriter()
    release = threading.Event()
    writer.start(lambda: release.wait(timeout=5))  # False if it blocked the loop for 5 s
    assert await asyncio.create_task(asyncio.sleep(0, result="sent")) == "sent"
    assert writer.busy
    release.set()
    assert await writer.wait() is True
