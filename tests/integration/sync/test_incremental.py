"""An update prepares only the members that changed or joined; the member state supplies the
rest, and the snapshot still decides what is sent (sync/prepare.py)."""

from __future__ import annotations

import time
from datetime import datetime, timedelta
from typing import Any

import polars as pl
import pytest
from sqlalchemy import select

from audience_sync.domain.models import SyncOperation, SyncPlatform, SyncStatus
from audience_sync.sources import members as sources_members
from audience_sync.store import member_state
from audience_sync.store.db import transaction
from audience_sync.store.member_state import MemberStateRepository, reset_converged
from audience_sync.store.repositories import AudienceRepository
from audience_sync.store.snapshot import SnapshotRepository
from audience_sync.store.tables import MemberStatePart
from audience_sync.sync import prepare, update
from audience_sync.sync.members import Current
from audience_sync.sync.plan import encode_record

from .world import World, row

SNAP = SyncPlatform.SNAPCHAT


@pytest.mark.parametrize("texts_in_plan", [update.REMOVED_TEXTS_IN_PLAN, 0])
async def test_an_update_prepares_only_the_members_that_changed_or_joined(
    world: World, monkeypatch: pytest.MonkeyPatch, texts_in_plan: int
) -> None:
    # The removed records' text read with the plan, or (too many of them) a chunk at a time.
    monkeypatch.setattr(update, "REMOVED_TEXTS_IN_PLAN", texts_in_plan)
    world.load([row(i) for i in range(40)])
    audience = world.audience(SNAP)
    created = await world.sync(audience, SyncOperation.CREATE)
    assert created.details["prepared_members"] == 40
    world.load([row(3, email="someone.else@example.com"), row(40), row(41)])
    world.leave("P5")
    updated = await world.sync(audience)
    assert updated.status is SyncStatus.COMPLETED
    assert updated.details["prepared_members"] == 3  # P3 changed, P40 and P41 joined
    # The create confirmed every record: the update planned without reading the snapshot.
    assert updated.details["plan"]["against"] == "member state"
    assert updated.details["members"] == 41
    assert await world.held(SNAP, audience) == world.expected(SNAP)
    saved = _prepared_at(world)
    world.clock += timedelta(hours=1)
    again = await world.sync(audience)
    assert again.details["prepared_members"] == 0
    assert _prepared_at(world) == saved  # nobody changed, joined or left: nothing rewritten
    assert (again.details["plan"]["adds"], again.details["plan"]["removes"]) == (0, 0)


async def test_an_update_reads_the_snapshot_for_its_plan_after_saving_the_member_state(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Both hold their parts in memory as they go: one after the other, never both at once
    # (they made a 10M-member update's peak).
    world.load([row(i) for i in range(40)])
    audience = world.audience(SNAP)
    await world.sync(audience, SyncOperation.CREATE)
    world.load([row(3, email="someone.else@example.com")])
    world.leave("P5")
    events: list[str] = []
    save, read = prepare.Preparer.save, SnapshotRepository.records_of_keys

    def saving(self: Any, *args: Any, **kwargs: Any) -> None:
        events.append("save starts")
        time.sleep(0.3)  # a slow save (it runs on a thread): the plan would start meanwhile
        save(self, *args, **kwargs)
        events.append("save ends")

    def reading(self: Any, *args: Any, **kwargs: Any) -> Any:
        events.append("plan reads")
        return read(self, *args, **kwargs)

    monkeypatch.setattr(prepare.Preparer, "save", saving)
    monkeypatch.setattr(SnapshotRepository, "records_of_keys", reading)
    updated = await world.sync(audience)
    assert updated.details["plan"]["against"] == "member state"
    assert events == ["save starts", "save ends", "plan reads"]
    assert await world.held(SNAP, audience) == world.expected(SNAP)


@pytest.mark.parametrize("shared", [False, True])
async def test_a_create_sends_each_record_once_and_converges(world: World, shared: bool) -> None:
    """A create sends its spilled records whole when no two share a key, else each shared
    record once (by its first owner); either way it sends exactly what it planned, so the next
    update plans from the member state."""
    others = [row(40, email="person.1@example.com")] if shared else []  # P1's email too
    world.load([row(i) for i in range(40)] + others)
    audience = world.audience(SNAP)
    created = await world.sync(audience, SyncOperation.CREATE)
    assert created.status is SyncStatus.COMPLETED
    updated = await world.sync(audience)
    assert updated.details["plan"]["against"] == "member state"
    assert (updated.details["plan"]["adds"], updated.details["plan"]["removes"]) == (0, 0)
    assert await world.held(SNAP, audience) == world.expected(SNAP)


async def test_an_update_reports_the_dropped_values_of_the_whole_segment(world: World) -> None:
    world.load([row(i) for i in range(20)] + [row(i, email="not-an-email") for i in range(20, 25)])
    audience = world.audience(SNAP)
    created = await world.sync(audience, SyncOperation.CREATE)
    assert created.details["dropped"]["invalid_email"] == 5
    world.load([row(3, email="also not an email"), row(25, email="nor this")])
    updated = await world.sync(audience)
    assert updated.details["prepared_members"] == 2  # P3 changed, P25 joined
    assert updated.details["dropped"]["invalid_email"] == 7
    # As a run preparing every member counts them.
    everyone = await world.sync(audience, SyncOperation.REPLACE, dry_run=True)
    assert everyone.details["prepared_members"] == 26
    assert updated.details["dropped"] == everyone.details["dropped"]


async def test_reimporting_identical_rows_prepares_nobody(world: World) -> None:
    world.load([row(i) for i in range(10)])
    audience = world.audience(SNAP)
    await world.sync(audience, SyncOperation.CREATE)
    world.load([row(i) for i in range(10)])
    updated = await world.sync(audience)
    assert updated.details["prepared_members"] == 0
    assert await world.held(SNAP, audience) == world.expected(SNAP)


async def test_records_a_failed_run_left_unsent_are_sent_by_the_next(world: World) -> None:
    world.load([row(i) for i in range(30)])
    audience = world.audience(SNAP)
    # Every upload fails (the create request itself succeeds): the run prepared every member and
    # saved the state, but the platform confirmed nothing.
    await world.fault(SNAP, "server_error", count=200, path="/users$")
    failed = await world.sync(audience, SyncOperation.CREATE)
    assert failed.status is SyncStatus.PENDING  # a retry is scheduled
    await world.clear_faults()
    assert await world.held(SNAP, audience) == {}
    retried = await world.sync(audience)
    assert retried.status is SyncStatus.COMPLETED, retried.error_message
    assert retried.details["plan"]["against"] == "snapshot"  # the failed run vouched for nothing
    # Nobody changed, but every record was unsent: every member was prepared again to send it.
    assert retried.details["prepared_members"] == 30
    assert await world.held(SNAP, audience) == world.expected(SNAP)


async def test_other_settings_make_the_state_unusable_and_everyone_is_prepared(
    world: World,
) -> None:
    world.load([row(i) for i in range(12)])
    audience = world.audience(SNAP)
    await world.sync(audience, SyncOperation.CREATE)
    with transaction(world.factory) as session:
        AudienceRepository(session, world.tenant_id).get(audience).config = {
            "identifier_types": ["email"]
        }
    narrowed = await world.sync(audience, force=True)
    assert narrowed.details["prepared_members"] == 12
    assert set(await world.held(SNAP, audience)) == {"EMAIL_SHA256"}


async def test_a_delete_forgets_the_state(world: World) -> None:
    world.load([row(i) for i in range(3)])
    audience = world.audience(SNAP)
    await world.sync(audience, SyncOperation.CREATE)
    assert _state_parts(world) == 1
    with transaction(world.factory) as session:  # another fingerprint: as if there were none
        assert MemberStateRepository(session, world.tenant_id).load(audience, "other") is None
    await world.sync(audience, SyncOperation.DELETE)
    assert _state_parts(world) == 0


def _prepared_at(world: World) -> list[datetime]:
    with transaction(world.factory) as session:
        return list(session.scalars(select(MemberStatePart.prepared_at)).all())


def _state_parts(world: World) -> int:
    with transaction(world.factory) as session:
        return len(session.scalars(select(MemberStatePart.part)).all())


async def test_any_snapshot_write_makes_the_next_update_read_the_snapshot(world: World) -> None:
    world.load([row(i) for i in range(10)])
    audience = world.audience(SNAP)
    await world.sync(audience, SyncOperation.CREATE)
    assert _converged(world) == [True]
    with transaction(world.factory) as session:  # e.g. another run's checkpoint
        SnapshotRepository(session, world.tenant_id).confirm(
            audience, world.clock, added=[encode_record([("EMAIL_SHA256", "0" * 64)])]
        )
    assert _converged(world) == [False]
    updated = await world.sync(audience)
    assert updated.details["plan"]["against"] == "snapshot"
    assert updated.details["plan"]["removes"] == 1  # the stray record goes
    assert await world.held(SNAP, audience) == world.expected(SNAP)
    assert _converged(world) == [True]


def _converged(world: World) -> list[bool]:
    with transaction(world.factory) as session:
        return list(session.scalars(select(MemberStatePart.converged)).all())


@pytest.mark.parametrize("converged", [True, False])
async def test_a_state_of_many_parts_is_read_and_written_a_part_at_a_time(
    world: World, monkeypatch: pytest.MonkeyPatch, converged: bool
) -> None:
    """At ten million members the state is never whole in memory: it is made, saved and read
    back a part at a time (`prepare._state_from`, `Preparer._kept`). With parts of 7 rows,
    members and their records straddle parts; an update still prepares only who changed or
    joined, counts who left and the dropped values of the whole segment, and converges."""
    monkeypatch.setattr(member_state, "PART_ROWS", 7)
    monkeypatch.setattr(prepare, "STATE_GROUP", 11)
    monkeypatch.setattr(sources_members, "MEMBER_BATCH_ROWS", 5)  # groups of whole batches
    rows = [row(i) for i in range(40)] + [row(i, email="not-an-email") for i in range(40, 44)]
    world.load(rows)
    audience = world.audience(SNAP)
    created = await world.sync(audience, SyncOperation.CREATE)
    assert created.status is SyncStatus.COMPLETED
    assert _state_parts(world) > 5
    if not converged:  # a snapshot write since: the update plans against the snapshot
        with transaction(world.factory) as session:
            reset_converged(session, world.tenant_id, audience)
    world.load([row(3, email="someone.else@example.com"), row(44), row(45, email="nor this")])
    world.leave("P5", "P43")
    updated = await world.sync(audience)
    assert updated.status is SyncStatus.COMPLETED
    assert updated.details["prepared_members"] == 3  # P3 changed, P44 and P45 joined
    assert updated.details["plan"]["against"] == ("member state" if converged else "snapshot")
    assert updated.details["members"] == 44
    assert updated.details["dropped"]["invalid_email"] == 4  # P40, P41, P42 and P45
    assert updated.profiles_removed == 1  # P5 (P43 had no record; P3 is still a member)
    assert await world.held(SNAP, audience) == world.expected(SNAP)
    again = await world.sync(audience)
    assert (again.details["plan"]["adds"], again.details["plan"]["removes"]) == (0, 0)
    assert again.details["plan"]["against"] == "member state"
    assert again.details["prepared_members"] == 0


def test_a_state_is_saved_from_frames_made_as_it_is_written(world: World) -> None:
    """`save` takes the state as frames made one after the other (a generator), not only as
    one frame: the part numbers run on across them, and `load` reads them back in order."""
    audience = world.audience(SNAP)
    frames = (
        pl.DataFrame(
            {"owner": [i, i + 1], "content": [7, 8], "k1": [1, None], "k2": [2, None],
             "dropped": [None, "email:invalid_email:1"]},
            schema=member_state.STATE_SCHEMA,
        )
        for i in (10, 20, 30)
    )  # fmt: skip
    with transaction(world.factory) as session:
        states = MemberStateRepository(session, world.tenant_id)
        states.save(audience, "f", frames, world.clock)
    with transaction(world.factory) as session:
        loaded = MemberStateRepository(session, world.tenant_id).load(audience, "f")
    assert loaded is not None
    assert loaded.frame["owner"].to_list() == [10, 11, 20, 21, 30, 31]
    assert _state_parts(world) == 3


async def test_a_create_keeps_neither_the_contents_nor_the_members_it_read(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What a run holds stays bounded (docs/sync.md, "Nothing is kept a record"): a create's
    contents go to files as they are read, its state is made of those files, it keeps no list
    of the members it read, and its record keys are read from its spilled parts (none held); an
    update's kept members' keys are read from the state's kept parts; a replace keeps the
    members read (it maps the platform's failed users to members by position)."""
    made: list[Current] = []
    spilled: list[prepare.SpilledContents] = []
    records, state_from = prepare.current_records, prepare._state_from

    async def noted(*args: Any, **kwargs: Any) -> tuple[Current, list[Any]]:
        current, users = await records(*args, **kwargs)
        made.append(current)
        return current, users

    def noted_state(contents: prepare.SpilledContents, current: Current) -> Any:
        spilled.append(contents)
        return state_from(contents, current)

    monkeypatch.setattr(prepare, "current_records", noted)
    monkeypatch.setattr(prepare, "_state_from", noted_state)
    monkeypatch.setattr(sources_members, "MEMBER_BATCH_ROWS", 8)
    world.load([row(i) for i in range(30)])
    audience = world.audience(SNAP)
    created = await world.sync(audience, SyncOperation.CREATE)
    assert created.status is SyncStatus.COMPLETED, created.error_message
    (current,) = made
    assert (current.prepared, current.owner_batches) == (30, [])
    with pytest.raises(RuntimeError, match="not kept"):
        _ = current.member_pks
    (contents,) = spilled
    assert contents.rows == 30
    assert [page.rows for page in contents.pages] == [8, 8, 8, 6]
    assert all(page.path.name.startswith("contents-") for page in contents.pages)
    assert current.keys.files() == current.parts
    keyed = len(current.keys)
    assert keyed > 30  # Snapchat: a record an identifier
    updated = await world.sync(audience, SyncOperation.UPDATE)
    assert updated.status is SyncStatus.COMPLETED, updated.error_message
    kept = made[-1].keys.files()
    assert kept, made[-1].keys.pieces
    assert all(path.name.startswith("kept-") for path in kept)
    assert len(made[-1].keys) == keyed
    replaced = await world.sync(audience, SyncOperation.REPLACE)
    assert replaced.status is SyncStatus.COMPLETED, replaced.error_message
    assert made[-1].member_pks.len() == 30
