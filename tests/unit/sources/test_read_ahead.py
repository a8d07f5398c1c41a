"""`read_ahead` hands over every batch in order, one read ahead, and cleans up after itself."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest

from audience_sync.sources.members import read_ahead


def test_every_item_in_order_read_on_another_thread() -> None:
    threads: set[str] = set()

    def source() -> Iterator[int]:
        for i in range(50):
            threads.add(threading.current_thread().name)
            yield i

    assert list(read_ahead(source())) == list(range(50))
    assert threads
    assert threading.current_thread().name not in threads
    assert list(read_ahead(iter([]))) == []


def test_never_more_than_one_ahead_and_closing_closes_the_source() -> None:
    read: list[int] = []
    closed = threading.Event()

    def source() -> Iterator[int]:
        try:
            for i in range(10):
                read.append(i)
                yield i
        finally:
            closed.set()

    items = read_ahead(source())
    assert next(items) == 0
    assert next(items) == 1
    items.close()  # cancels the read of item 2, or waits for it; then closes the source
    assert read in ([0, 1], [0, 1, 2])
    assert closed.is_set()


def test_an_error_of_the_source_reaches_the_caller_after_the_items_before_it() -> None:
    def source() -> Iterator[int]:
        yield 1
        raise RuntimeError("the database went away")

    items = read_ahead(source())
    assert next(items) == 1
    with pytest.raises(RuntimeError, match="went away"):
        next(items)
