"""Run an iterator one step ahead in a thread of its own.

The import reads and prepares the next batch (Polars, which releases the GIL) while the main
thread writes the current one. Exceptions reach the consumer in order; leaving the `with` block
early stops the producer (it never blocks on a full queue forever).
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import TypeVar

T = TypeVar("T")
_DONE = object()


@contextmanager
def prefetch(items: Iterable[T], depth: int = 1) -> Iterator[Iterator[T]]:
    """Yield an iterator over `items`, produced up to `depth` items ahead in a thread."""
    ready: queue.Queue[object] = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def put(item: object) -> bool:
        while not stop.is_set():
            try:
                ready.put(item, timeout=0.1)
            except queue.Full:
                continue
            return True
        return False

    def produce() -> None:
        try:
            for item in items:
                if not put(item):
                    return
        except BaseException as error:  # handed to the consumer, raised there
            put(_Failed(error))
            return
        put(_DONE)

    thread = threading.Thread(target=produce, name="prefetch", daemon=True)
    thread.start()
    try:
        yield _consume(ready)
    finally:
        stop.set()
        thread.join()


class _Failed:
    __slots__ = ("error",)

    def __init__(self, error: BaseException) -> None:
        self.error = error


def _consume(ready: queue.Queue[object]) -> Iterator[T]:
    while True:
        item = ready.get()
        if item is _DONE:
            return
        if isinstance(item, _Failed):
            raise item.error
        yield item  # type: ignore[misc]
