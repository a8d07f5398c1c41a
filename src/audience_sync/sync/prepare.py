"""Step 3 of a sync: the records the segment's members produce now, prepared incrementally.

Preparing a member (reading it, normalizing and hashing its identifiers, shaping its records) is
the expensive part of a sync. An update prepares only the members it has to: those whose
profile's `content_hash` changed since the audience's member state was saved, and those who
joined. Every other member's records are taken from the state (`store.member_state`). A member
who left is simply absent. The snapshot, not the state, still decides what is sent: a record of
an unchanged member that the platform never confirmed (a failed batch, a crash) shows up as an
add, and its member is prepared again to send it. When the last run confirmed exactly the state's
records (`converged`), the snapshot is not even read: see `delta` and `plan.plan_from_delta`.

The state is ignored, and every member prepared, when it was made for other settings (platform,
audience, fields sent, region, this package's version: see `fingerprint`) and on a replace.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import uuid
from collections.abc import Awaitable, Callable, Iterable, Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import polars as pl
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from audience_sync import __version__
from audience_sync.connectors import BaseAudienceConnector
from audience_sync.connectors.columnar import member_fields
from audience_sync.domain.models import AudienceUser
from audience_sync.sources.members import (
    MemberFields,
    member_batches,
    member_batches_of,
    member_content_pages,
)
from audience_sync.store.db import transaction
from audience_sync.store.member_state import (
    STATE_SCHEMA,
    MemberStateRepository,
    StoredParts,
)
from audience_sync.sync.keys import RecordKeys, crossing, in_owner_order, owner_span
from audience_sync.sync.members import (
    SUMMARY_SCHEMA,
    Current,
    allowed_fields,
    collect_drops,
    current_records,
)
from audience_sync.sync.plan import KEYS, Delta

STATE_VERSION = 4  # bump when what a member produces changes without a package version change
# Members whose state rows are made at a time (`_state_later`): a group's rows and their joins'
# tables are in memory at once (a million at a time was the 10M-member create's peak).
STATE_GROUP = 250_000


@dataclass(frozen=True, slots=True)
class Scope:
    """Where the members come from and what they are prepared for."""

    engine: Engine
    factory: sessionmaker[Session]
    tenant_id: int
    audience_id: uuid.UUID
    segment_id: uuid.UUID
    platform: str
    region: str
    config: dict[str, Any]


# `member_content_pages`' columns, for a segment with no member.
_NO_CONTENTS = pl.DataFrame(schema={"owner": pl.Int64, "content": STATE_SCHEMA["content"]})


def fingerprint(scope: Scope, platform_audience_id: str) -> str:
    """Everything besides a profile's content that its records depend on."""
    settings = [
        STATE_VERSION,
        __version__,
        scope.platform,
        platform_audience_id,
        sorted(allowed_fields(scope.config)),
        scope.region,
        scope.config,
    ]
    text = json.dumps(settings, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()


class Preparer:
    """Prepares the members of one run, writing records to `spill` (see `members.Current`)."""

    def __init__(
        self,
        scope: Scope,
        connector: BaseAudienceConnector,
        platform_audience_id: str,
        spill: Path,
    ) -> None:
        self.scope = scope
        self.connector = connector
        self.platform_audience_id = platform_audience_id
        self.spill = spill
        self.fingerprint = fingerprint(scope, platform_audience_id)
        self.rounds = 0
        # Set when the stored state was converged (the snapshot held exactly its records): the
        # update then plans from it, without reading the snapshot (`plan.plan_from_delta`).
        self.delta: Delta | None = None
        # The state `prepare` found, when it is to be saved, made when it is: `save` stores it
        # (the runner calls it in a worker thread while the first chunk is sent).
        self.unsaved: Callable[[], Iterable[pl.DataFrame]] | None = None
        # The rows of the stored state `prepare` found whose member changed or left (`owner`,
        # `k1`, `k2`): who owned each record this run may remove, for the members a removal
        # takes off (`figures.RemovedMembers`). A kept member's records are all current, so
        # never removed: the rest of the state is not needed (nor kept: ~40 bytes a record).
        self.previous: pl.DataFrame | None = None
        # Told how many members were prepared (or taken from the state) as `prepare` goes:
        # the run's progress while it reads.
        self.on_members: Callable[[int], Awaitable[None]] = _nothing

    async def prepare(self, *, full: bool, save: bool) -> tuple[Current, list[AudienceUser]]:
        """The current records; every member's (`full`), or the changed members' plus the
        state's. With `save`, what this run found is kept for `save` (when it differs from the
        stored state)."""
        scope = self.scope
        users: list[AudienceUser] = []
        stored = None if full else self._load()
        if stored is None:
            fields = await self._fields()
            # Every member's content comes with its profile, by the same query, to a file as
            # it is read: the state is made of them after (`_state_from`). The members read are
            # kept only for a replace (`Current.member_pks`).
            read = SpilledContents(self._round("contents"))
            batches = member_batches(
                scope.engine, scope.tenant_id, scope.segment_id, fields=fields, contents=read
            )
            current, users = await self._records(
                batches, keep_users=full, keep_owners=full, counted=True
            )
            state: Callable[[], Iterable[pl.DataFrame]]
            state = self._spilled_later(_state_from(read, current))
            same = False
        else:
            # Every member's content, a page at a time to a file: `_kept` reads the stretch of
            # each stored part (held whole, 16 bytes a member: 160 MB at ten million).
            read = SpilledContents(self._round("contents"))
            pages = member_content_pages(scope.engine, scope.tenant_id, scope.segment_id)
            await asyncio.to_thread(read.extend, pages)
            current, state, same = await self._incremental(read, stored)
        if save and not same:
            self.unsaved = state
        return current, users

    async def prepare_owners(self, owners: list[int]) -> Current:
        """Prepare these members again (unchanged members with records still to send)."""
        scope, fields = self.scope, await self._fields()
        batches = member_batches_of(
            scope.engine, scope.tenant_id, scope.segment_id, owners, fields=fields
        )
        current, _ = await self._records(batches, keep_users=False)
        return current

    async def _incremental(
        self, contents: SpilledContents, stored: StoredParts
    ) -> tuple[Current, Callable[[], Iterable[pl.DataFrame]], bool]:
        """Prepare the members whose content is not in the state; take the others' keys from
        it. Also returns the new state (made when called) and whether it equals the old one
        (nobody changed, joined or left). The state is read a part at a time (`_kept`)."""
        kept = self._kept(contents, stored)
        gone = kept.gone
        stale = contents.unmarked(kept.members)
        kept_members = int(kept.members.sum())
        self.previous = gone
        await self.on_members(kept_members)
        scope, fields = self.scope, await self._fields()
        batches = member_batches_of(
            scope.engine, scope.tenant_id, scope.segment_id, stale["owner"].to_list(), fields=fields
        )
        current, _ = await self._records(batches, keep_users=False, counted=True)
        fresh = _state_of(stale, current)
        if stored.converged:
            # Every keyed row of the state: the kept members' and those that changed or left.
            held = kept.keys + RecordKeys.of(gone)
            self.delta = Delta(held, gone.select(KEYS), current.keys.frame())
        current.keys = kept.keys + current.keys
        # The whole segment's dropped values: the kept members' from the state, plus this run's.
        kept_drops = pl.concat(kept.drops).unique("owner").select(*SUMMARY_SCHEMA)
        current.drops = pl.concat([kept_drops, current.drops])
        await self._kept_diagnostics(kept_drops["owner"], current)
        current.members += kept_members
        current.unusable_members += kept.unusable
        same = stale.is_empty() and kept.rows == kept.of_rows
        files = kept.files

        def state() -> Iterator[pl.DataFrame]:
            yield from _read_back(files)
            yield fresh

        return current, state, same

    def _kept(self, contents: SpilledContents, stored: StoredParts) -> Kept:
        """The stored state against the members' contents now, a part at a time: the rows whose
        content is still the member's are kept (spilled, for the new state; their keys and
        drops held), the others' keyed rows are gone. Never the whole state in memory, nor
        every member's content: each part is matched against its stretch of them."""
        kept = Kept(members=pl.repeat(False, contents.rows, dtype=pl.Boolean, eager=True))
        spill = self._round("state")
        gone: list[pl.DataFrame] = [pl.DataFrame(schema=GONE_SCHEMA)]
        with transaction(self.scope.factory) as session:
            repository = MemberStateRepository(session, self.scope.tenant_id)
            parts = repository.frames(self.scope.audience_id, stored.numbers)
            for number, part in enumerate(parts):
                start, span = contents.span(part["owner"])
                owners = part["owner"].unique().implode()
                now = span.filter(pl.col("owner").is_in(owners)).rename({"content": "_now"})
                marked = part.join(now, on="owner", how="left")
                same = (pl.col("content") == pl.col("_now")).fill_null(False)  # left: false
                rows = marked.filter(same).drop("_now")
                keyed = pl.col("k1").is_not_null()
                gone.append(marked.filter(~same & keyed).select(*GONE_SCHEMA))
                kept.drops.append(
                    rows.filter(pl.col("dropped").is_not_null()).select(*SUMMARY_SCHEMA)
                )
                kept.unusable += rows.filter(~keyed).height  # one row, with no key, each
                kept.rows += rows.height
                kept.of_rows += part.height
                path = spill / f"kept-{number:06d}.arrow"
                rows.write_ipc(path)
                kept.files.append(path)
                kept.keys.add(path, rows)
                found = span["owner"].is_in(rows["owner"].implode()).arg_true()
                kept.members.scatter(found + start, True)
        kept.gone = pl.concat(gone)
        return kept

    async def _kept_diagnostics(self, owners: pl.Series, current: Current) -> None:
        """Entries for members taken from the state with dropped values: the state keeps only
        their counts, so the first of them are read and prepared again (no more than the
        entries still missing, `Diagnostics.room`: a bounded cost, nothing read when none)."""
        room = current.diagnostics.room
        if not room or owners.is_empty():
            return
        scope, fields = self.scope, await self._fields()
        chosen = owners.sort().head(room).to_list()
        batches = member_batches_of(
            scope.engine, scope.tenant_id, scope.segment_id, chosen, fields=fields
        )
        allowed = allowed_fields(scope.config)
        await collect_drops(
            self.connector, self.platform_audience_id, batches, allowed, current.diagnostics
        )

    async def _records(
        self,
        batches: Iterator[tuple[pl.DataFrame, pl.DataFrame]],
        *,
        keep_users: bool,
        keep_owners: bool = True,
        counted: bool = False,
    ) -> tuple[Current, list[AudienceUser]]:
        """Prepare `batches` into a spill of their own; `counted`: the run's progress counts
        these members (`on_members`)."""
        return await current_records(
            self.connector,
            self.platform_audience_id,
            batches,
            allowed_fields(self.scope.config),
            spill=self._round("round"),
            keep_users=keep_users,
            keep_owners=keep_owners,
            on_batch=self.on_members if counted else None,
        )

    def _round(self, name: str) -> Path:
        """A new folder in the spill, for one round's files."""
        folder = self.spill / f"{name}-{self.rounds}"
        self.rounds += 1
        folder.mkdir()
        return folder

    async def _fields(self) -> MemberFields:
        """What to read of the members: only what this platform's records are made of."""
        mobile_list = await self.connector.mobile_list(self.platform_audience_id)
        needs = member_fields(self.connector.RECORD_SHAPE, mobile_list)
        return MemberFields(needs.columns, needs.types)

    def _spilled_later(
        self, made: Callable[[], Iterable[pl.DataFrame]]
    ) -> Callable[[], Iterator[pl.DataFrame]]:
        """`made`'s parts, when called, all made and spilled at once, then read back one at a
        time. `save` calls it before its transaction opens: a run's fenced write holds SQLite's
        write lock, and ten parts' joins inside it outlasted the 10 s busy timeout of the
        lease's renewal (a 10M create failed on "database is locked"). An update's state needs
        no such step: its kept parts are spilled as they are read (`_kept`)."""
        return lambda: self._spilled(made())

    def _spilled(self, frames: Iterable[pl.DataFrame]) -> Iterator[pl.DataFrame]:
        """`frames` written to the spill directory now, read back one at a time later."""
        spill = self._round("save")
        paths = []
        for number, frame in enumerate(frames):
            paths.append(spill / f"state-{number:06d}.arrow")
            frame.write_ipc(paths[-1])
        return _read_back(paths)

    def _load(self) -> StoredParts | None:
        with transaction(self.scope.factory) as session:
            repository = MemberStateRepository(session, self.scope.tenant_id)
            return repository.parts(self.scope.audience_id, self.fingerprint)

    def save(
        self, now: datetime, begin: Callable[[], AbstractContextManager[Session]] | None = None
    ) -> None:
        """Replace the stored state with the one `prepare` found, if there is one to save;
        in the transaction `begin` opens (a run's: under its lease), else a plain one."""
        if self.unsaved is None:
            return
        state = self.unsaved()  # its parts made before the transaction opens (`_spilled_later`)
        opened = begin() if begin is not None else transaction(self.scope.factory)
        with opened as session:
            MemberStateRepository(session, self.scope.tenant_id).save(
                self.scope.audience_id, self.fingerprint, state, now
            )
        self.unsaved = None


def _span_of(contents: pl.DataFrame, owners: pl.Series, ordered: bool) -> tuple[int, pl.DataFrame]:
    """The rows of `contents` between the lowest and the highest of `owners`, and where they
    start: a slice found by binary search when the contents are in owner order (as read), else
    all of them. A state part's members are a stretch of the segment's (all but an update's
    fresh part), so a part is matched against its stretch, not every member: against every
    member, ten parts at ten million members made two hundred million lookups."""
    if not ordered or owners.is_empty():
        return 0, contents
    low, high = owner_span(owners)
    column = contents["owner"]
    start = int(column.search_sorted(low, side="left"))
    end = int(column.search_sorted(high, side="right"))
    return start, contents.slice(start, end - start)


def _read_back(paths: list[Path]) -> Iterator[pl.DataFrame]:
    for path in paths:
        yield pl.read_ipc(path)


def _state_of(contents: pl.DataFrame, current: Current) -> pl.DataFrame:
    """The state rows of the members this run read (`current.member_pks`): each with its
    records' keys, or one row with null keys when it has none. A member listed in `contents`
    but not read (it left between the two reads) is not covered."""
    empty = pl.DataFrame(schema=STATE_SCHEMA)
    return pl.concat([empty, *_state_later(contents, current)()], how="vertical_relaxed")


def _state_later(contents: pl.DataFrame, current: Current) -> Callable[[], Iterator[pl.DataFrame]]:
    """`_state_of`, made when called, of what `current` holds now (a run may add members to
    it later: `update.Update.prepare_unsent`), `STATE_GROUP` members at a time: the whole
    state (~40 bytes a record, and its joins' tables) is never in memory at once."""
    groups = _grouped(current.owner_batches, STATE_GROUP)

    def state() -> Iterator[pl.DataFrame]:
        ordered = contents["owner"].is_sorted()
        rows = _StateRows(current)
        for owners in groups:
            yield rows.of(_rows_of(contents, owners, ordered))

    return state


def _state_from(
    contents: SpilledContents, current: Current
) -> Callable[[], Iterator[pl.DataFrame]]:
    """`_state_later` of a run that read every member with its content: the members are the
    spilled contents' (the same query read both), `STATE_GROUP` at a time."""

    def state() -> Iterator[pl.DataFrame]:
        rows = _StateRows(current)
        for covered in contents.groups(STATE_GROUP):
            yield rows.of(covered)

    return state


class _StateRows:
    """The state rows of members (`owner`, `content`): each member's records' keys from
    `current`, or one row with null keys when it has none, and its dropped values."""

    def __init__(self, current: Current) -> None:
        self.keys, self.drops = current.keys, current.drops

    def of(self, covered: pl.DataFrame) -> pl.DataFrame:
        mine = self.keys.of_owners(covered["owner"])
        with_keys = covered.join(mine, on="owner", how="left")
        return with_keys.join(self.drops, on="owner", how="left").select(*STATE_SCHEMA)


@dataclass(frozen=True, slots=True)
class _Page:
    """One spilled page of members' contents."""

    path: Path
    start: int  # its first row's place among every member read
    rows: int
    low: int  # its lowest and highest member (0, -1 when empty)
    high: int
    ordered: bool  # its members in order


class SpilledContents:
    """Members' contents (`owner`, `content`), written to a file a page (a batch) at a time
    as they are read, read back a few pages at a time: held whole, they took 16 bytes a
    member (160 MB at ten million) beside the index a run keeps. A create makes its state
    of them a group of pages at a time (`groups`); an update matches each stored part against
    its stretch of them (`span`)."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.pages: list[_Page] = []
        self.rows = 0  # members in every page

    def append(self, frame: pl.DataFrame) -> None:
        path = self.folder / f"contents-{len(self.pages):06d}.arrow"
        frame.write_ipc(path)
        low, high = owner_span(frame["owner"]) if len(frame) else (0, -1)
        ordered = frame["owner"].is_sorted()
        self.pages.append(_Page(path, self.rows, len(frame), low, high, ordered))
        self.rows += len(frame)

    def extend(self, frames: Iterable[pl.DataFrame]) -> None:
        for frame in frames:
            self.append(frame)

    @property
    def ordered(self) -> bool:
        """Every member in order, page after page."""
        return in_owner_order(self.pages)

    def groups(self, rows: int) -> Iterator[pl.DataFrame]:
        """The contents in the order read, in frames of whole pages and at least `rows`
        members (the last may be short; none for no member)."""
        waiting: list[_Page] = []
        count = 0
        for page in self.pages:
            waiting.append(page)
            count += page.rows
            if count >= rows:
                yield _read_all(waiting)
                waiting, count = [], 0
        if waiting:
            yield _read_all(waiting)

    def span(self, owners: pl.Series) -> tuple[int, pl.DataFrame]:
        """`_span_of` every member's contents: the stretch that `owners` span (read from the
        pages it crosses alone when every member is in order, else every page), and where it
        starts among every member."""
        if not self.ordered or owners.is_empty():
            return _span_of(_read_all(self.pages), owners, ordered=False)
        low, high = owner_span(owners)
        crossed = crossing(self.pages, low, high)
        if not crossed:
            return 0, _NO_CONTENTS
        start, span = _span_of(_read_all(crossed), owners, ordered=True)
        return crossed[0].start + start, span

    def unmarked(self, marks: pl.Series) -> pl.DataFrame:
        """The members whose mark (a Boolean a member, in the order read) is false."""
        frames = [
            pl.read_ipc(page.path).filter(~marks.slice(page.start, page.rows))
            for page in self.pages
        ]
        return pl.concat([_NO_CONTENTS, *frames])


def _read_all(pages: list[_Page]) -> pl.DataFrame:
    return pl.concat([_NO_CONTENTS, *(pl.read_ipc(page.path) for page in pages)])


def _rows_of(frame: pl.DataFrame, owners: pl.Series, ordered: bool) -> pl.DataFrame:
    """The rows of `frame` whose `owner` is one of `owners`, looked for in their stretch of
    `frame` (`_span_of`) when it is in owner order: a group costs its own rows, not every
    member's or record's, so groups can be small."""
    _, span = _span_of(frame, owners, ordered)
    return span.filter(pl.col("owner").is_in(owners.implode()))


def _grouped(batches: list[pl.Series], rows: int) -> list[pl.Series]:
    """The batches' values in Series of at least `rows` values (the last one may be short)."""
    groups: list[pl.Series] = []
    waiting: list[pl.Series] = []
    for batch in batches:
        waiting.append(batch)
        if sum(map(len, waiting)) >= rows:
            groups.append(pl.concat(waiting))
            waiting = []
    if waiting:
        groups.append(pl.concat(waiting))
    return groups


async def _nothing(members: int) -> None:
    """No progress to report (a preparer outside a run)."""


GONE_SCHEMA = {"owner": pl.Int64, "k1": pl.UInt64, "k2": pl.UInt64}


@dataclass
class Kept:
    """What `Preparer._kept` found of the stored state, a part at a time."""

    members: pl.Series  # per member of the contents read: whether the state's rows are kept
    keys: RecordKeys = field(default_factory=RecordKeys)  # kept rows with keys, where they are
    drops: list[pl.DataFrame] = field(default_factory=lambda: [pl.DataFrame(schema=SUMMARY_SCHEMA)])
    files: list[Path] = field(default_factory=list)  # the kept rows, spilled a part a file
    gone: pl.DataFrame = field(default_factory=lambda: pl.DataFrame(schema=GONE_SCHEMA))
    unusable: int = 0  # kept members with no record
    rows: int = 0  # kept rows
    of_rows: int = 0  # the stored state's rows
