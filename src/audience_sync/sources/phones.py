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
from enum import Enum
from functools import partial
from types import TracebackType

import polars as pl
from sqlalchemy.orm import Session, sessionmaker

from audience_sync.domain.profiles import ROW
from audience_sync.identifiers import parse_international_phone, parse_phone_e164
from audience_sync.identifiers.bulk import is_stored_e164
from audience_sync.identifiers.national import PUNCTUATION, with_national_e164
from audience_sync.sources.prepare import Prepared
from audience_sync.store.profile_writer import AddE164, Destination, stored_hashes

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
    digits_only = values.str.replace_all(PUNCTUATION, "")
    known = values.str.contains(_PLUS_PUNCTUATED).fill_null(False) & is_stored_e164(digits_only)
    return pl.when(known).then(digits_only)


def parse_phones(values: list[str], regions: list[str | None]) -> list[str | None]:
    """E.164 of each phone: national numbers dialled in the row's region; with no region (the
    row's country is unknown) only numbers that carry their own country code are parsed."""
    return [
        parse_phone_e164(value, region) if region else parse_international_phone(value)
        for value, region in zip(values, regions, strict=True)
    ]


# The phones parsed for a batch — (`value`, `region`, `e164`), `e164` null where libphonenumber
# found no possible number — as a function that waits for them.
Phones = Callable[[], pl.DataFrame]
KEY = ["value", "region"]
PHONES_SCHEMA = {"value": pl.String, "region": pl.String, "e164": pl.String}


class PhoneParsing:
    """Parses the phones of the rows `profile_writer` writes (`e164`); a context manager that
    owns its worker processes (started on first need)."""

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

    def e164(self, ahead: Phones | None = None) -> AddE164:
        """The writer's `AddE164`: phones parsed `ahead` (`parse_ahead`) are looked up, the
        others parsed now."""
        return partial(_add_e164, self, ahead)

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


class Expect(Enum):
    """What a batch's rows are expected to be, from the batch written before it."""

    READ = "read"  # unknown: read what is stored, parse the phones of the rows not stored so
    NEW = "new"  # all new profiles (a first import): parse every phone, read nothing
    UNCHANGED = "unchanged"  # all stored as they are (a re-import): parse none, read nothing


def parse_ahead(
    factory: sessionmaker[Session],
    destination: Destination,
    prepared: Prepared,
    parse: PhoneParsing,
    expect: Expect = Expect.READ,
) -> Phones:
    """Start parsing the phones the write of `prepared` will need, on the parser's workers,
    while the batch before is written, so the parsing overlaps that write instead of holding up
    this one. Which phones: those of the rows not stored as they are, as read now
    (`stored_hashes`) — or, `expect`ed from the batch before, all of them or none, which saves
    a probe a row. A row the guess missed (new or changed where none was expected, or changed
    meanwhile by an earlier batch of the same file) has its phones parsed when written."""
    todo = prepared.profiles
    if expect is Expect.UNCHANGED:
        return lambda: pl.DataFrame(schema=PHONES_SCHEMA)
    if expect is Expect.READ:
        profile_ids = todo["profile_id"].unique().to_list()
        stored = stored_hashes(factory, destination, profile_ids)
        todo = todo.join(stored, on="profile_id", how="left").filter(
            pl.col("_stored_hash").ne_missing(pl.col("content_hash"))
        )
    rows = prepared.identifiers.join(todo.select(ROW, "region"), on=ROW)
    return _start_parsing(_with_known(_phone_keys(rows)), parse)


def _add_e164(parse: PhoneParsing, ahead: Phones | None, identifiers: pl.DataFrame) -> pl.DataFrame:
    """`identifiers` with the `e164` of each phone (null for other types)."""
    keys = _phone_keys(identifiers)
    if ahead is None:
        parsed = _start_parsing(_with_known(keys), parse)()
    else:
        found = ahead()
        missing = keys.join(found, on=KEY, how="anti", nulls_equal=True)
        parsed = pl.concat([found, _start_parsing(_with_known(missing), parse)()])
    joined = identifiers.join(parsed, on=KEY, how="left", nulls_equal=True, maintain_order="left")
    return joined.with_columns(pl.when(pl.col("type") == "phone").then(pl.col("e164")))


def _phone_keys(identifiers: pl.DataFrame) -> pl.DataFrame:
    """Each distinct (value, region) of the phones."""
    return identifiers.filter(pl.col("type") == "phone").select(KEY).unique()


def _with_known(phones: pl.DataFrame) -> pl.DataFrame:
    """The phones with `e164` where it needs no parsing: `+` numbers libphonenumber would keep
    as written (`known_e164`), national numbers read as it reads them
    (`identifiers.national`)."""
    return with_national_e164(phones.with_columns(known_e164(pl.col("value")).alias("e164")))


def _start_parsing(phones: pl.DataFrame, parse: PhoneParsing) -> Phones:
    """Start parsing the phones without `e164`; the function returned (which may be called
    again) waits for them and gives every phone with its `e164`."""
    known = phones.filter(pl.col("e164").is_not_null()).cast(PHONES_SCHEMA)  # type: ignore[arg-type]
    todo = phones.filter(pl.col("e164").is_null())
    if todo.is_empty():
        return lambda: known
    pending = parse.start(todo["value"].to_list(), todo["region"].to_list())
    done: list[pl.DataFrame] = []

    def finish() -> pl.DataFrame:
        if not done:
            parsed = todo.with_columns(pl.Series("e164", pending(), dtype=pl.String))
            done.append(pl.concat([known, parsed.cast(PHONES_SCHEMA)]))  # type: ignore[arg-type]
        return done[0]

    return finish
