"""Parse imported phones to E.164 on every core.

libphonenumber (~15–45 µs a number) is the largest part of a first import, and it is pure
Python: threads would not help, so a large batch's distinct phones are split across worker
processes. Small batches (an API call, a small file) are parsed in place: a worker costs a
fraction of a second to start.
"""

from __future__ import annotations

import multiprocessing
import os
from concurrent.futures import Executor, ProcessPoolExecutor
from types import TracebackType

from audience_sync.identifiers import parse_international_phone, parse_phone_e164

# Below this many distinct phones a batch is parsed in place.
IN_PLACE = 5_000


def parse_phones(values: list[str], regions: list[str | None]) -> list[str | None]:
    """E.164 of each phone: national numbers dialled in the row's region; with no region (the
    row's country is unknown) only numbers that carry their own country code are parsed."""
    return [
        parse_phone_e164(value, region) if region else parse_international_phone(value)
        for value, region in zip(values, regions, strict=True)
    ]


class PhoneParsing:
    """A callable `(values, regions) → E.164 list` for `profile_writer.write_prepared`; a
    context manager that owns its worker processes (started on first need)."""

    def __init__(self, workers: int | None = None) -> None:
        self.workers = workers if workers is not None else (os.cpu_count() or 1)
        self._pool: Executor | None = None

    def __call__(self, values: list[str], regions: list[str | None]) -> list[str | None]:
        if self.workers <= 1 or len(values) < IN_PLACE:
            return parse_phones(values, regions)
        size = -(-len(values) // self.workers)
        parts = [(values[i : i + size], regions[i : i + size]) for i in range(0, len(values), size)]
        pool = self._ensure_pool()
        futures = [pool.submit(parse_phones, part_values, part_regions) for part_values, part_regions in parts]
        return [e164 for future in futures for e164 in future.result()]

    def _ensure_pool(self) -> Executor:
        if self._pool is None:
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
