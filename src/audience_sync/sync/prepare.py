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

import contextvars
import functools
import hashlib
import json
import uuid
from collections.abc import Awaitable, Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractContextManager
from dataclasses import dataclass
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
    member_contents,
)
from audience_sync.store.db import transaction
from audience_sync.store.member_state import STATE_SCHEMA, MemberStateRepository, StoredState
from audience_sync.sync.members import (
    SUMMARY_SCHEMA,
    Current,
    allowed_fields,
    collect_drops,
    current_records,
)
from audience_sync.sync.plan import KEYS, Delta

STATE_VERSION = 4  # bump when what a member produces changes without a package version change


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
        self.unsaved: Callable[[], pl.DataFrame] | None = None
        # The stored state `prepare` found (columns of `STATE_SCHEMA`): who owned each record
        # the last run prepared, for the members a removal takes off (`figures.RemovedMembers`).
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
        # Every member's content is read on a thread, beside the members' own reads (it is
        # needed only at the end of a full preparation): ~0.5 s of a million-member create.
        with ThreadPoolExecutor(1, thread_name_prefix="contents") as pool:
            read = functools.partial(
                member_contents, scope.engine, scope.tenant_id, scope.segment_id
            )
            contents = pool.submit(contextvars.copy_context().run, read)
            stored = None if full else self._load()
            if stored is None:
                fields = await self._fields()
                batches = member_batches(
                    scope.engine, scope.tenant_id, scope.segment_id, fields=fields
                )
                current, users = await self._records(batches, keep_users=full, counted=True)
                state = _state_later(contents.result(), current)
                same = False
            else:
                self.previous = stored.frame
                current, new_state, same = await self._incremental(contents.result(), stored)
                state = _made(new_state)
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
        self, contents: pl.DataFrame, stored: StoredState
    ) -> tuple[Current, pl.DataFrame, bool]:
        """Prepare the members whose content is not in the state; take the others' keys from
        it. Also returns the new state and whether it equals the old one (nobody changed, joined
        or left). One join, on `owner`: the state's rows whose content is still the member's."""
        state = stored.frame
        marked = state.join(contents.rename({"content": "_now"}), on="owner", how="left")
        same_content = pl.col("content") == pl.col("_now")  # null (left) → false below
        kept = marked.filter(same_content.fill_null(False)).drop("_now")
        gone = marked.filter(~same_content.fill_null(False) & pl.col("k1").is_not_null())
        stale = contents.filter(~pl.col("owner").is_in(kept["owner"].unique().implode()))
        kept_members = kept["owner"].n_unique()
        await self.on_members(kept_members)
        scope, fields = self.scope, await self._fields()
        batches = member_batches_of(
            scope.engine, scope.tenant_id, scope.segment_id, stale["owner"].to_list(), fields=fields
        )
        current, _ = await self._records(batches, keep_users=False, counted=True)
        fresh = _state_of(stale, current)
        if stored.converged:
            held = state.filter(pl.col("k1").is_not_null()).select(KEYS)
            self.delta = Delta(held, gone.select(KEYS), current.keys)
        kept_keys = kept.filter(pl.col("k1").is_not_null()).select(*KEYS, "owner")
        current.keys = pl.concat([kept_keys, current.keys])
        # The whole segment's dropped values: the kept members' from the state, plus this run's.
        dropping = kept.filter(pl.col("dropped").is_not_null())  # few: filtered before unique
        kept_drops = dropping.unique("owner").select(*SUMMARY_SCHEMA)
        current.drops = pl.concat([kept_drops, current.drops])
        await self._kept_diagnostics(kept_drops["owner"], current)
        current.members += kept_members
        current.unusable_members += kept_members - kept_keys["owner"].n_unique()
        same = stale.is_empty() and len(kept) == len(state)
        return current, pl.concat([kept, fresh]), same

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
        counted: bool = False,
    ) -> tuple[Current, list[AudienceUser]]:
        """Prepare `batches` into a spill of their own; `counted`: the run's progress counts
        these members (`on_members`)."""
        spill = self.spill / f"round-{self.rounds}"  # each round its own files
        self.rounds += 1
        spill.mkdir()
        return await current_records(
            self.connector,
            self.platform_audience_id,
            batches,
            allowed_fields(self.scope.config),
            spill=spill,
            keep_users=keep_users,
            on_batch=self.on_members if counted else None,
        )

    async def _fields(self) -> MemberFields:
        """What to read of the members: only what this platform's records are made of."""
        mobile_list = await self.connector.mobile_list(self.platform_audience_id)
        needs = member_fields(self.connector.RECORD_SHAPE, mobile_list)
        return MemberFields(needs.columns, needs.types)

    def _load(self) -> StoredState | None:
        with transaction(self.scope.factory) as session:
            repository = MemberStateRepository(session, self.scope.tenant_id)
            return repository.load(self.scope.audience_id, self.fingerprint)

    def save(
        self, now: datetime, begin: Callable[[], AbstractContextManager[Session]] | None = None
    ) -> None:
        """Replace the stored state with the one `prepare` found, if there is one to save;
        in the transaction `begin` opens (a run's: under its lease), else a plain one."""
        if self.unsaved is None:
            return
        state = self.unsaved()
        opened = begin() if begin is not None else transaction(self.scope.factory)
        with opened as session:
            MemberStateRepository(session, self.scope.tenant_id).save(
                self.scope.audience_id, self.fingerprint, state, now
            )
        self.unsaved = None


def _state_of(contents: pl.DataFrame, current: Current) -> pl.DataFrame:
    """The state rows of the members this run read (`current.member_pks`): each with its
    records' keys, or one row with null keys when it has none. A member listed in `contents`
    but not read (it left between the two reads) is not covered."""
    return _state_later(contents, current)()


def _state_later(contents: pl.DataFrame, current: Current) -> Callable[[], pl.DataFrame]:
    """`_state_of`, made when called, of what `current` holds now (a run may add members to
    it later: `update.Update.prepare_unsent`)."""
    read = pl.Series(current.member_pks, dtype=pl.Int64)
    keys, drops = current.keys, current.drops

    def state() -> pl.DataFrame:
        covered = contents.filter(pl.col("owner").is_in(read.implode()))
        with_keys = covered.join(keys, on="owner", how="left")
        return with_keys.join(drops, on="owner", how="left").select(*STATE_SCHEMA)

    return state


async def _nothing(members: int) -> None:
    """No progress to report (a preparer outside a run)."""


def _made(frame: pl.DataFrame) -> Callable[[], pl.DataFrame]:
    return lambda: frame
