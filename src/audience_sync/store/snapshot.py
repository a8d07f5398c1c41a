"""The per-audience snapshot: records the platform confirmed, exactly as sent (no raw PII beyond
what a platform itself takes raw), kept as parts (`tables.SnapshotPart`).

Each confirmed chunk is one part: its records as LZ4 Arrow IPC, written in one sequential insert
(as rows under a random 64-digit key, a million-member create spent a third of its engine time
in SQLite's index; docs/sync.md, Performance). A removal is a part of keys. What the platform
holds is the fold of an audience's parts in order: a record's last part says whether it is held
(`_dead` folds only the removed keys, so reading never holds every record's key at once).
Re-confirming a record after a crash is harmless: it is held, in two parts. When an audience's
parts grow many (`compact`), the held records are written again, each once, as few parts.

A record's last confirmed upload (freshness, `sync.freshness`) is its newest added part's
`confirmed_at`; a compacted part keeps each record's own time in an `at` column, and is dated
by its oldest record, so the oldest part's date is never later than any record's time.
"""

from __future__ import annotations

import io
import uuid
from collections.abc import Iterator, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import polars as pl
from sqlalchemy import delete, func, select

from audience_sync.domain.records import KEYS, hash_keys, owned_text
from audience_sync.store.db import binary_rows
from audience_sync.store.ipc import insert_frame, insert_part, part_files
from audience_sync.store.member_state import reset_converged
from audience_sync.store.repositories import TenantScoped
from audience_sync.store.tables import SnapshotPart

RECORD_SCHEMA = {"record_hash": pl.String, "record": pl.String}
KEY_SCHEMA = {"k1": pl.UInt64, "k2": pl.UInt64}
PART_SCHEMA = {**KEY_SCHEMA, **RECORD_SCHEMA}  # an added part's columns
LIVE_SCHEMA = {**KEY_SCHEMA, "part": pl.Int64}
# Records per part written by `compact` and `merge_tail`. A read holds a part at a time (its
# bytes, then its columns), and on SQLite a part's insert expands its bytes once more (a
# `zeroblob` not in the row's last column is made whole): at 250,000 records (~67 MB of IPC)
# these were the 10M-member create's and update's peaks.
PART_ROWS = 100_000
COMPACT_AFTER = 64  # parts an audience may have, beyond 4 for each PART_ROWS records it holds
TIME = pl.Datetime("us", "UTC")
# A held record's keys and last confirmed upload (`confirmed_times`).
TIMES_SCHEMA: dict[str, pl.DataType] = {"k1": pl.UInt64(), "k2": pl.UInt64(), "at": TIME}


class SnapshotRepository(TenantScoped):
    """Confirmed records per audience; the caller's transaction also holds the job's counters."""

    # --- reading ------------------------------------------------------------------------------

    def count(self, audience_id: uuid.UUID) -> int:
        keys = [frame.select(KEYS) for frame in self._held(audience_id, list(KEY_SCHEMA))]
        return pl.concat([pl.DataFrame(schema=KEY_SCHEMA), *keys]).n_unique()

    def records(self, audience_id: uuid.UUID) -> pl.DataFrame:
        """Every held record (`record_hash`, `record`), each once."""
        frames = [f.select(*RECORD_SCHEMA) for f in self._held(audience_id, list(PART_SCHEMA))]
        return pl.concat([pl.DataFrame(schema=RECORD_SCHEMA), *frames]).unique(maintain_order=True)

    def hash_batches(self, audience_id: uuid.UUID) -> Iterator[pl.DataFrame]:
        """Every held `record_hash` with its keys (`k1`, `k2`), a part at a time: what planning
        needs, without holding ten million records' text. A record confirmed in two parts (two
        members sharing it, a chunk sent again after a crash) comes twice: `plan_streamed`
        counts it once."""
        for frame in self._held(audience_id, [*KEY_SCHEMA, "record_hash"]):
            yield frame.select("record_hash", *KEYS)

    def records_of(self, audience_id: uuid.UUID, hashes: Sequence[str]) -> pl.DataFrame:
        """The held records (`record_hash`, `record`) with these hashes, in their order."""
        order = pl.DataFrame({"record_hash": list(hashes)}, schema={"record_hash": pl.String})
        found = self.records_of_keys(audience_id, order.select(hash_keys()))
        return order.join(found, on="record_hash", how="inner", maintain_order="left")

    def records_of_keys(self, audience_id: uuid.UUID, keys: pl.DataFrame) -> pl.DataFrame:
        """The held records (`record_hash`, `record`) whose first 128 bits are these `k1`, `k2`,
        each once: `hashes_of_keys` and `records_of` in one pass over the parts."""
        return self._with_keys(audience_id, keys, list(RECORD_SCHEMA))

    def hashes_of_keys(self, audience_id: uuid.UUID, keys: pl.DataFrame) -> list[str]:
        """The held hashes whose first 128 bits are these `k1`, `k2` (see `plan.hash_keys`)."""
        found: list[str] = self._with_keys(audience_id, keys, ["record_hash"])[
            "record_hash"
        ].to_list()
        return found

    def oldest_confirmed(self, audience_id: uuid.UUID) -> datetime | None:
        """No held record was last confirmed before this (None: nothing held). One indexed
        aggregate over the audience's parts: whether any record can be due for a refresh."""
        oldest: datetime | None = self.session.scalar(
            select(func.min(SnapshotPart.confirmed_at)).where(
                SnapshotPart.tenant_id == self.tenant_id,
                SnapshotPart.audience_id == audience_id,
                SnapshotPart.removes.is_(False),
            )
        )
        return oldest

    def confirmed_times(self, audience_id: uuid.UUID) -> pl.DataFrame:
        """Every held record's keys with its last confirmed upload (`k1`, `k2`, `at`), each
        once; read a part's keys at a time (16 bytes a record, never the records' text)."""
        parts = self._part_ids(audience_id)
        dated = self._part_dates(audience_id)
        dead = self._dead(parts)
        frames = [pl.DataFrame(schema=TIMES_SCHEMA)]
        for part, removes in parts:
            if removes:
                continue
            rows = self._keys_at(part, dated[part])
            frames.append(rows.join(dead, on=KEYS, how="anti") if len(dead) else rows)
        return pl.concat(frames).group_by(KEYS).agg(pl.col("at").max())

    # --- writing ------------------------------------------------------------------------------

    def confirm(
        self,
        audience_id: uuid.UUID,
        now: datetime,
        added: Sequence[tuple[str, str]] = (),
        removed: Sequence[str] = (),
    ) -> None:
        """Record one batch the platform accepted: `added` (hash, record) pairs and `removed`
        hashes. Re-confirming a record is harmless."""
        if added:
            frame = pl.DataFrame(list(added), schema=RECORD_SCHEMA, orient="row")
            self.confirm_records(audience_id, now, frame)
        if removed:
            hashes = pl.DataFrame({"record_hash": list(removed)}, schema={"record_hash": pl.String})
            self._write(audience_id, now, hashes.select(hash_keys()), removes=True)

    def confirm_records(self, audience_id: uuid.UUID, now: datetime, records: pl.DataFrame) -> None:
        """`confirm` of the records of a frame (`record_hash`, `record`): one part."""
        if records.is_empty():
            return
        frame = records.select(*hash_keys(), *RECORD_SCHEMA)
        self._write(audience_id, now, frame, removes=False)

    def clear(self, audience_id: uuid.UUID) -> None:
        """Forget every record (after a delete, or when a replace's records are confirmed)."""
        reset_converged(self.session, self.tenant_id, audience_id)
        self.session.execute(
            delete(SnapshotPart).where(
                SnapshotPart.tenant_id == self.tenant_id, SnapshotPart.audience_id == audience_id
            )
        )

    def compact(self, audience_id: uuid.UUID, now: datetime) -> None:
        """Write the held records again, each once, as parts of `PART_ROWS`, without the
        removal parts and what they removed, and drop the old parts. What is held stays, and
        each record keeps the time of its last confirmed upload (its newest part's)."""
        parts = self._part_ids(audience_id)
        dated = self._part_dates(audience_id)
        dead = self._dead(parts)
        located = [pl.DataFrame(schema={**LIVE_SCHEMA, "row": pl.UInt32, "at": TIME})]
        for part, removes in parts:
            if not removes:
                keys = self._keys_at(part, dated[part]).with_row_index("row")
                keys = keys.join(dead, on=KEYS, how="anti", maintain_order="left")
                located.append(keys.with_columns(part=pl.lit(part, pl.Int64)))
        # The newest part of each record: parts go in `id` order, which is confirmation order.
        last = pl.concat(located, how="diagonal").unique(KEYS, keep="last", maintain_order=True)
        waiting: list[pl.DataFrame] = []
        for (part,), rows in last.partition_by("part", as_dict=True, maintain_order=True).items():
            frame = self._read(int(part), list(PART_SCHEMA)).with_row_index("row")
            kept = frame.join(
                rows.select("row", "at"), on="row", how="inner", maintain_order="left"
            )
            waiting.append(kept.drop("row"))
            if sum(map(len, waiting)) >= PART_ROWS:
                self._insert(audience_id, now, pl.concat(waiting), removes=False)
                waiting = []
        if waiting:
            self._insert(audience_id, now, pl.concat(waiting), removes=False)
        old = [part for part, _ in parts]
        self.session.execute(delete(SnapshotPart).where(SnapshotPart.id.in_(old)))

    # --- parts --------------------------------------------------------------------------------

    def _part_ids(self, audience_id: uuid.UUID) -> list[tuple[int, bool]]:
        query = (
            select(SnapshotPart.id, SnapshotPart.removes)
            .where(
                SnapshotPart.tenant_id == self.tenant_id, SnapshotPart.audience_id == audience_id
            )
            .order_by(SnapshotPart.id)
        )
        return [(int(part), bool(removes)) for part, removes in self.session.execute(query)]

    def _part_dates(self, audience_id: uuid.UUID) -> dict[int, datetime]:
        query = select(SnapshotPart.id, SnapshotPart.confirmed_at).where(
            SnapshotPart.tenant_id == self.tenant_id, SnapshotPart.audience_id == audience_id
        )
        return {int(part): at for part, at in self.session.execute(query)}

    def _data(self, part: int) -> bytes:
        ((data,),) = binary_rows(
            self.session,
            select(SnapshotPart.data).where(
                SnapshotPart.tenant_id == self.tenant_id, SnapshotPart.id == part
            ),
        )
        return bytes(data)

    def _read(self, part: int, columns: list[str]) -> pl.DataFrame:
        """One part's columns (read one part at a time: an audience's parts may be gigabytes),
        `record_hash` as hex text whichever way the part stores it (`stored_hashes`)."""
        return hex_hashes(pl.read_ipc(io.BytesIO(self._data(part)), columns=columns))

    def _keys_at(self, part: int, confirmed_at: datetime) -> pl.DataFrame:
        """An added part's `k1`, `k2` and each record's last confirmed upload `at`."""
        return self._dated(part, confirmed_at, list(KEY_SCHEMA))

    def _dated(self, part: int, confirmed_at: datetime, columns: list[str]) -> pl.DataFrame:
        """An added part's `columns` as stored, with each record's last confirmed upload `at`:
        its own column in a compacted or merged part, else the part's `confirmed_at`."""
        data = self._data(part)
        stored = pl.read_ipc_schema(io.BytesIO(data))
        kept = [*columns, "at"] if "at" in stored else columns
        return _with_at(pl.read_ipc(io.BytesIO(data), columns=kept), stored, confirmed_at)

    def _held(self, audience_id: uuid.UUID, columns: list[str]) -> Iterator[pl.DataFrame]:
        """The held rows of each added part, a part at a time (`columns` include `k1`, `k2`):
        its rows but those of records removed since. A record added twice (in two parts, or
        twice in one) comes twice: the callers count it once."""
        added, dead = self._added(audience_id)
        for part in added:
            rows = self._read(part, columns)
            yield rows.join(dead, on=KEYS, how="anti", maintain_order="left") if len(dead) else rows

    def _added(self, audience_id: uuid.UUID) -> tuple[list[int], pl.DataFrame]:
        """The audience's added parts, oldest first, and the keys removed since (`_dead`)."""
        parts = self._part_ids(audience_id)
        return [part for part, removes in parts if not removes], self._dead(parts)

    def _with_keys(
        self, audience_id: uuid.UUID, keys: pl.DataFrame, columns: list[str]
    ) -> pl.DataFrame:
        """The `columns` (`record_hash` among them) of the held records whose `k1`, `k2` are
        among `keys`, each record once, read a part at a time: its keys first, then the
        `columns` of the rows found (hashes made hex for those rows only; read whole and
        joined, every part's text and hex hashes were made, ~100 MB a part of 250,000 records)."""
        wanted = keys.select(KEYS).unique()
        frames = [pl.DataFrame(schema={name: RECORD_SCHEMA[name] for name in columns})]
        added, dead = self._added(audience_id)
        for part in added:
            data = self._data(part)
            rows = _rows_of_keys(data, wanted, dead)
            if len(rows):
                found = pl.read_ipc(io.BytesIO(data), columns=columns)[rows]
                frames.append(owned_text(hex_hashes(found)))
        return pl.concat(frames).unique("record_hash", maintain_order=True)

    def _dead(self, parts: list[tuple[int, bool]]) -> pl.DataFrame:
        """The keys (`k1`, `k2`) whose last part is a removal: the fold of the parts, on the
        removed keys only (a churn's worth), never on every record."""
        removals = [
            self._read(part, list(KEY_SCHEMA)).with_columns(gone=pl.lit(part, pl.Int64))
            for part, removes in parts
            if removes
        ]
        if not removals:
            return pl.DataFrame(schema=KEY_SCHEMA)
        gone = pl.concat(removals).group_by(KEYS).agg(pl.col("gone").max())
        added = [pl.DataFrame(schema={**KEY_SCHEMA, "added": pl.Int64})]
        for part, removes in parts:
            if not removes:
                keys = self._read(part, list(KEY_SCHEMA)).join(gone, on=KEYS, how="semi")
                added.append(keys.with_columns(added=pl.lit(part, pl.Int64)))
        last = pl.concat(added).group_by(KEYS).agg(pl.col("added").max())
        folded = gone.join(last, on=KEYS, how="left")
        return folded.filter(pl.col("added").is_null() | (pl.col("gone") > pl.col("added")))[
            list(KEYS)
        ]

    def _write(
        self, audience_id: uuid.UUID, now: datetime, frame: pl.DataFrame, *, removes: bool
    ) -> None:
        reset_converged(self.session, self.tenant_id, audience_id)
        self._insert(audience_id, now, frame, removes=removes)
        if self._too_many_parts(audience_id):
            self.merge_tail(audience_id)
            if self._too_many_parts(audience_id):
                self.compact(audience_id, now)

    def _too_many_parts(self, audience_id: uuid.UUID) -> bool:
        parts, records = self._sizes(audience_id)
        return parts > COMPACT_AFTER + 4 * records // PART_ROWS

    def merge_tail(self, audience_id: uuid.UUID) -> None:
        """Merge the newest parts, while they are added parts smaller than `PART_ROWS`, into
        parts of `PART_ROWS`, each record keeping its time (`at`); the rest is left as it is.

        A run writes a part a chunk, and a chunk can be small (TikTok's: 25 batches of 1,000):
        a 10M-member create wrote 400 parts, and `compact` rewrote every part held each time
        they outnumbered the limit: at 2.7M and 6.7M records, every record's keys in memory at
        once (+700 MB at the second). Merging only the tail touches each record once, a part
        at a time. Only parts after the last removal part can be merged: the merged part comes
        after every part, and a removal between would otherwise be undone."""
        tail = self._small_tail(audience_id)
        if len(tail) < 2:
            return
        dated = self._part_dates(audience_id)
        for group in _groups(tail):
            self._merge(audience_id, group, dated)
        merged = [part for part, _ in tail]
        self.session.execute(delete(SnapshotPart).where(SnapshotPart.id.in_(merged)))

    def _merge(
        self, audience_id: uuid.UUID, group: list[tuple[int, int]], dated: dict[int, datetime]
    ) -> None:
        """The `group`'s parts (ids and records) as one, streamed: each part's bytes to a file,
        the files scanned and written as one by polars' streaming sink, that file into the new
        part's row (`insert_part`). Neither the parts nor the merged part are whole in memory:
        merged as frames, each merged part was held three times (its frames, its IPC bytes, the
        driver's copy): 40 parts of 25,000 records merged into parts of 250,000 took the peak RSS
        up 234 MB on SQLite (151–157 MB streamed) and 167–173 MB on PostgreSQL (81–95)."""
        with part_files() as folder:
            scans = [self._scan(part, dated[part], folder) for part, _ in group]
            merged = pl.concat(scans, how="vertical_relaxed")
            oldest = merged.select(pl.col("at").min()).collect().item()
            path = folder / "merged.arrow"
            merged.sink_ipc(path, compression="lz4")
            rows = sum(rows for _, rows in group)
            values = self._part_values(audience_id, oldest, rows, removes=False)
            insert_part(self.session, SnapshotPart, values, path)

    def _scan(self, part: int, confirmed_at: datetime, folder: Path) -> pl.LazyFrame:
        """An added part as stored, with each record's `at` (as `_dated`) and its hashes as
        bytes (`stored_hashes`), scanned from a file of its bytes in `folder`."""
        path = folder / f"{part}.arrow"
        path.write_bytes(self._data(part))
        stored = pl.read_ipc_schema(path)
        scan = _with_at(pl.scan_ipc(path), stored, confirmed_at)
        if stored["record_hash"] == pl.String:
            scan = scan.with_columns(pl.col("record_hash").str.decode("hex"))
        return scan.select(*PART_SCHEMA, "at")

    def _small_tail(self, audience_id: uuid.UUID) -> list[tuple[int, int]]:
        """The newest parts (ids and records), oldest first, while each adds fewer than
        `PART_ROWS` records."""
        query = (
            select(SnapshotPart.id, SnapshotPart.removes, SnapshotPart.rows)
            .where(
                SnapshotPart.tenant_id == self.tenant_id, SnapshotPart.audience_id == audience_id
            )
            .order_by(SnapshotPart.id.desc())
        )
        tail: list[tuple[int, int]] = []
        for part, removes, rows in self.session.execute(query):
            if removes or rows >= PART_ROWS:
                break
            tail.append((int(part), int(rows)))
        return tail[::-1]

    def _insert(
        self, audience_id: uuid.UUID, now: datetime, frame: pl.DataFrame, *, removes: bool
    ) -> None:
        """One part; a compacted part (with its records' `at`) is dated by its oldest record."""
        values = self._part_values(audience_id, _oldest(frame, now), len(frame), removes=removes)
        insert_frame(self.session, SnapshotPart, values, stored_hashes(frame))

    def _part_values(
        self, audience_id: uuid.UUID, dated: datetime, rows: int, *, removes: bool
    ) -> dict[str, object]:
        """A part's row but its data."""
        return {
            "tenant_id": self.tenant_id,
            "audience_id": audience_id,
            "removes": removes,
            "rows": rows,
            "confirmed_at": dated,
        }

    def _sizes(self, audience_id: uuid.UUID) -> tuple[int, int]:
        """How many parts the audience has, and how many records its added parts hold."""
        parts, records = self.session.execute(
            select(func.count(), func.coalesce(func.sum(SnapshotPart.rows), 0)).where(
                SnapshotPart.tenant_id == self.tenant_id, SnapshotPart.audience_id == audience_id
            )
        ).one()
        return int(parts), int(records)


def _groups(tail: list[tuple[int, int]]) -> Iterator[list[tuple[int, int]]]:
    """The tail's parts (ids and records) in order, as groups of at least `PART_ROWS` records
    (the last group: what is left)."""
    group: list[tuple[int, int]] = []
    for part in tail:
        group.append(part)
        if sum(rows for _, rows in group) >= PART_ROWS:
            yield group
            group = []
    if group:
        yield group


def _oldest(frame: pl.DataFrame, now: datetime) -> datetime:
    """A part's date: its records' oldest `at` where it has them (a compacted or merged part),
    else `now`."""
    oldest = frame["at"].min() if "at" in frame.columns and len(frame) else None
    return oldest if isinstance(oldest, datetime) else now


Rows = TypeVar("Rows", pl.DataFrame, pl.LazyFrame)


def _with_at(rows: Rows, stored: Mapping[str, Any], confirmed_at: datetime) -> Rows:
    """A part's rows with each record's last confirmed upload `at`: the part's own column in a
    compacted or merged part (`stored`: the part's schema), else its `confirmed_at`."""
    if "at" in stored:
        return rows
    return rows.with_columns(at=pl.lit(_utc(confirmed_at), dtype=TIME))


def _utc(at: datetime) -> datetime:
    """A stored date as UTC (SQLite hands dates back without their zone)."""
    return at if at.tzinfo else at.replace(tzinfo=UTC)


def _rows_of_keys(data: bytes, wanted: pl.DataFrame, dead: pl.DataFrame) -> pl.Series:
    """The numbers of an added part's rows (its IPC `data`) whose keys are `wanted` and not
    `dead` (removed since), read from its key columns only."""
    keyed = pl.read_ipc(io.BytesIO(data), columns=list(KEY_SCHEMA)).with_row_index("_row")
    if len(dead):
        keyed = keyed.join(dead, on=KEYS, how="anti")
    return keyed.join(wanted, on=KEYS, how="semi")["_row"]


def stored_hashes(frame: pl.DataFrame) -> pl.DataFrame:
    """The frame as a part stores it: `record_hash` as its 32 bytes, not 64 hex digits. The
    parts are a million-member create's largest write (on PostgreSQL, TOAST and WAL), and the
    digits were 64 of ~160 bytes a record after LZ4 (which does not shrink hex: ~130 as bytes,
    docs/performance.md). Parts written before (hex text) still read (`hex_hashes`)."""
    if frame.schema.get("record_hash") == pl.String:
        return frame.with_columns(pl.col("record_hash").str.decode("hex"))
    return frame


def hex_hashes(frame: pl.DataFrame) -> pl.DataFrame:
    """A part's `record_hash` as hex text (how every reader compares it), whichever way the part
    stores it: bytes (`stored_hashes`) or, written before, hex text."""
    if frame.schema.get("record_hash") == pl.Binary:
        return frame.with_columns(pl.col("record_hash").bin.encode("hex"))
    return frame
