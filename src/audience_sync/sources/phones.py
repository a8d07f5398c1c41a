"""Parse imported phones to E.164 on every core.

libphonenumber (~15–45 µs a number) is the largest part of a first import, and it is pure
Python: threads would not help, so a large batch's distinct phones are split across worker
processes. Small batches (an API call, a small file) are parsed in place: a worker costs a
fraction of a second to start.
"""

from __future__ import annotations

import multiprocessing
import os
import threading
from collections.abc import Callable
from concurrent.futures import Executor, ProcessPoolExecutor
from types import TracebackType

import polars as pl

from audience_sync.identifiers import parse_international_phone, parse_phone_e164
from audience_sync.identifiers.bulk import is_stored_e164

# Below this many distinct phones a batch is parsed in place.
IN_PLACE = 5_000


# `+`, a digit, then only ASCII digits and the punctuation libphonenumber drops while parsing.
_PLUS_PUNCTUATED = r"^\+[0-9][0-9 ().-]*$"


def known_e164(values: pl.Expr) -> pl.Expr:
    """The E.164 form of the phones that need no parsing, null for the others (parsed).

    A number written `+` country code and digits, perhaps spaced or punctuated (`+34 91 060 49
    69`), is its digits after `+` when `E164Table.canonical` says libphonenumber would keep them
    exactly as written and call them possible: the region plays no part after a `+`. That is
    most numbers in real exports, at a fraction of libphonenumber's ~20 µs."""
    digits_only = values.str.replace_all(r"[ ().-]", "")
    known = values.str.contains(_PLUS_PUNCTUATED).fill_null(False) & is_stored_e164(digits_only)
    return pl.when(known).then(digits_only)


def parse_phones(values: list[str], regions: list[str | None]) -> list[str | None]:
    """E.164 of each phone: national numbers dialled in the row's region; with no region (the
    row's country is unknown) only numbers that carry their own country code are parsed."""
    return [
        parse_phone_e164(value, region) if region else parse_international_phone(value)
        for value, region in zip(values, regions, strict=True)
    ]


class PhoneParsing:
    """The phone parser of `profile_writer.write_prepared`; a context manager that owns its
    worker processes (started on first need)."""

    def __init__(self, workers: int | None = None) -> None:
        self.workers = workers if workers is not None else (os.cpu_count() or 1)
        self._pool: Executor | None = None
        self._starting = threading.Lock()  # the import's prefetch thread starts parsing too

    def start(self, values: list[str], regions: list[str | None]) -> Callable[[], list[str | None]]:
        """Begin parsing; the returned function waits for and gives the results in order."""
        if self.workers <= 1 or len(values) < IN_PLACE:
            done = parse_phones(values, regions)
            return lambda: done
        size = -(-len(values) // self.workers)
        pool = self._ensure_pool()
        futures = [
            pool.submit(parse_phones, values[i : i + size], regions[i : i + size])
            for i in range(0, len(values), size)
        ]
        return lambda: [e164 for future in futures for e164 in future.result()]

    def _ensure_pool(self) -> Executor:
        with self._starting:
            return self._pool or self._new_pool()

    def _new_pool(self) -> Executor:
        # forkserver: a fork of this process would copy its database connections and threads
        context = multiprocessing.get_context("forkserver")
        self._pool = ProcessPoolExecutor(self.workers, mp_context=context)
        return self._pool

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(cancel_futures=True)
            self._pool = None

    def __enter__(self) -> PhoneParsing:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()
