"""Steps 5 and 6 of an update (and of a replace by difference): plan, then send in chunks.

The plan is made against the member state when the last run converged (only the changed
members' records are looked up), else against every hash in the snapshot. The adds are then
sent in chunks of one checkpoint each, read from the spill and prepared on a thread while the
chunk before is sent; then the removes. Each sent chunk is checkpointed (`Checkpoints.confirm`).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from typing import overload

import polars as pl
from sqlalchemy.orm import Session, sessionmaker

from audience_sync.connectors import BaseAudienceConnector, Operation
from audience_sync.connectors.base import Prepared
from audience_sync.connectors.columnar import identity_texts
from audience_sync.connectors.registry import platform_spec
from audience_sync.domain.progress import Phase, Unit
from audience_sync.exceptions import ValidationError
from audience_sync.sources.members import read_ahead
from audience_sync.store.db import transaction
from audience_sync.store.snapshot import SnapshotRepository
from audience_sync.store.tables import AudienceSyncJob
from audience_sync.sync.checkpoint import Checkpoints
from audience_sync.sync.chunks import MIN_CHUNK_BATCHES, add_chunks
from audience_sync.sync.context import SyncService, Target
from audience_sync.sync.figures import RemovedMembers, Tally
from audience_sync.sync.freshness import due_for_refresh, refresh_window
from audience_sync.sync.jobs import JobMetrics
from audience_sync.sync.keys import RecordKeys
from audience_sync.sync.members import Current
from audience_sync.sync.plan import (
    KEYS,
    Plan,
    decode_record,
    distinct_count,
    plan_from_delta,
    plan_streamed,
    repeated,
)
from audience_sync.sync.prepare import Preparer

# An update planned from the member state reads the text of at most this many removed records
# with the plan (one pass over the snapshot's parts, not two); more are read a chunk at a time.
REMOVED_TEXTS_IN_PLAN = 250_000
# The guard rails' codes, as a dry run's `details.warnings` name them.
MASS_REMOVAL = "mass_removal"
EMPTY_REPLACE = "empty_replace"
# The code a guard rail's refusal carries; the failed job keeps it in `details["error_code"]`
# (`jobs.fail_job`), which is how alerts tell a blocked run from a failed one.
GUARD_RAIL = "guard_rail"


def plan_against_snapshot(
    factory: sessionmaker[Session],
    tenant_id: int,
    audience_id: uuid.UUID,
    current: pl.DataFrame | RecordKeys,
) -> Plan:
    """Step 5: the current records' keys (`k1`, `k2`, `owner`) against the confirmed snapshot,
    whose hashes are read as they stream (never its records' text)."""
    with transaction(factory) as session:
        held = SnapshotRepository(session, tenant_id).hash_batches(audience_id)
        return plan_streamed(current, held)


@dataclass(frozen=True, slots=True)
class GuardRail:
    """A plan a guard rail stops: `code` and `message` for a dry run's warnings, `refusal` for
    the error a run without force fails with."""

    code: str
    message: str
    refusal: str

    def as_warning(self) -> dict[str, str]:
        return {"code": self.code, "message": self.message}


def emptying(current: Current) -> GuardRail | None:
    """A replace that would empty the audience (no member with a usable identifier)."""
    if not current.is_empty:
        return None
    return GuardRail(
        EMPTY_REPLACE,
        "The segment has no member with a usable identifier: a replace would empty the "
        "audience, and is refused unless forced.",
        "Replace refused: the segment has no member with a usable identifier, so the "
        "audience would be emptied. Sync again with force to do it anyway.",
    )


def mass_removal(removes: int, held: int, share: float) -> GuardRail | None:
    """An update that would remove more than `share` of the records the audience holds (a
    broken segment must not empty an audience)."""
    if not held or removes <= share * held:
        return None
    what = (
        f"it would remove {removes:,} of {held:,} records "
        f"({removes / held:.0%}, above the {share:.0%} guard rail)"
    )
    return GuardRail(
        MASS_REMOVAL,
        f"The update would be refused unless forced: {what}.",
        f"Update refused: {what}. Check the segment, then sync again with force if this is "
        "intended.",
    )


def enforce(rail: GuardRail | None, *, force: bool, dry_run: bool, metrics: JobMetrics) -> None:
    """A tripped guard rail fails a run (`ValidationError`) unless forced; a dry run records
    it in `details.warnings` instead and goes on to complete with its plan."""
    if rail is None:
        return
    if dry_run:
        metrics.details.setdefault("warnings", []).append(rail.as_warning())
    elif not force:
        raise ValidationError(rail.refusal, details={"code": GUARD_RAIL})


def plan_summary(
    plan: Plan, adds: pl.DataFrame | RecordKeys, against: str, refreshes: int = 0
) -> dict[str, object]:
    """What `details.plan` says of a plan (`adds`: its adds, each record once, `refreshes` of
    them re-sent for freshness only)."""
    return {
        "adds": len(adds),
        "refreshes": refreshes,
        "removes": len(plan.removes),
        "unchanged": plan.unchanged,
        "members_to_add": _distinct_owners(plan.adds),
        "against": against,
    }


def _distinct_owners(adds: pl.DataFrame | RecordKeys) -> int:
    if isinstance(adds, RecordKeys):
        return adds.distinct("owner")
    return distinct_count(adds["owner"])


@overload
def first_of_each(adds: pl.DataFrame) -> pl.DataFrame: ...
@overload
def first_of_each(adds: RecordKeys) -> RecordKeys: ...
def first_of_each(adds: pl.DataFrame | RecordKeys) -> pl.DataFrame | RecordKeys:
    """`adds.unique(KEYS, keep="first", maintain_order=True)`, with no table of every key: the
    keys two rows share are found in the sorted `k1` (`keys.repeated`: a piece at a time), and
    only the rows of those keys are looked at. A create has millions of adds and few shared:
    its adds are left where they are, less the later rows of the shared keys."""
    if isinstance(adds, RecordKeys):
        return _first_of_each_kept(adds)
    shared = repeated(adds["k1"])
    if shared.is_empty():
        return adds
    numbered = adds.with_row_index("_row")
    maybe = numbered.filter(pl.col("k1").is_in(shared.implode()))
    later = maybe.filter(~pl.struct(KEYS).is_first_distinct())["_row"]
    return numbered.filter(~pl.col("_row").is_in(later.implode())).drop("_row")


def _first_of_each_kept(adds: RecordKeys) -> RecordKeys:
    """`first_of_each` of keys left where they are: the same rows left out."""
    shared = adds.repeated("k1")
    if shared.is_empty():
        return adds
    maybe = adds.numbered(pl.col("k1").is_in(shared.implode()))
    return adds.leaving_out(maybe.filter(~pl.struct(KEYS).is_first_distinct())["row"])


@dataclass
class Update:
    """One run's delta: planned, then sent to `platform_id` chunk by chunk."""

    service: SyncService
    target: Target
    job: AudienceSyncJob
    connector: BaseAudienceConnector
    tally: Tally
    checkpoints: Checkpoints
    force: bool

    async def run(
        self, platform_id: str, current: Current, preparer: Preparer, *, replacing: bool = False
    ) -> None:
        """Send the delta. A replace on a platform without one (`replace_by_difference`) is
        this too: prepared in full, planned against every confirmed record of the snapshot."""
        if replacing:
            self.enforce(emptying(current))
        if preparer.delta is not None:
            # This plan reads every part of the snapshot (the removed records' text): after the
            # member state is saved, not beside it, so the two never hold their parts at once.
            await self.checkpoints.drain()
        plan = self.plan(current, preparer)
        refreshes = self.refreshes(current)
        if len(refreshes):  # held records near their lifetime go with the adds (freshness)
            self.tally.refreshing(refreshes)
            planned = plan.adds.frame() if isinstance(plan.adds, RecordKeys) else plan.adds
            both = pl.concat([planned.select(*KEYS, "owner"), refreshes.select(*KEYS, "owner")])
            plan = Plan(both, plan.removes, plan.unchanged, plan.held)
        # Each new record is sent once, by its first owner; its text comes from the spill.
        adds = first_of_each(plan.adds)
        against = "snapshot" if preparer.delta is None else "member state"
        summary = plan_summary(plan, adds, against, len(refreshes))
        self.tally.metrics.details["plan"] = summary
        if not replacing:  # a replace means to remove whatever the segment no longer holds
            share = self.service.settings.max_removal_share
            self.enforce(mass_removal(len(plan.removes), plan.held, share))
        if self.job.dry_run:
            return
        await self.checkpoints.progress.begin(Phase.UPLOADING, Unit.RECORDS, len(adds))
        await self.prepare_unsent(plan, current, preparer)
        if len(plan.removes):
            self.tally.removed = RemovedMembers.of(plan.removes, preparer.previous, current.keys)
        sent, readded = await self.send_adds(platform_id, plan, adds, current)
        sent += await self.send_removes(platform_id, plan, readded)
        await self.checkpoints.drain()
        if sent == len(adds) + len(plan.removes) and not self.tally.refused:
            self.checkpoints.converged()

    def enforce(self, rail: GuardRail | None) -> None:
        """A guard rail: refused unless forced; a dry run's warning (`enforce`)."""
        metrics = self.tally.metrics
        enforce(rail, force=self.force, dry_run=self.job.dry_run, metrics=metrics)

    def plan(self, current: Current, preparer: Preparer) -> Plan:
        """Step 5. Against the converged member state when there is one (the snapshot holds
        exactly its records, so only the changed members' records are looked up), else against
        every hash in the snapshot."""
        tenant_id, audience_id = self.target.tenant_id, self.target.audience_id
        if preparer.delta is None:
            return plan_against_snapshot(self.service.factory, tenant_id, audience_id, current.keys)
        keyed = plan_from_delta(preparer.delta, current.keys)
        with transaction(self.service.factory) as session:
            snapshot = SnapshotRepository(session, tenant_id)
            if len(keyed.removes) <= REMOVED_TEXTS_IN_PLAN:
                # With their text: every part is read once, not once for the hashes and again
                # for the records (`send_removes`).
                removes = snapshot.records_of_keys(audience_id, keyed.removes)
            else:
                hashes = snapshot.hashes_of_keys(audience_id, keyed.removes)
                removes = pl.DataFrame({"record_hash": hashes}, schema={"record_hash": pl.String})
        return Plan(keyed.adds, removes, keyed.unchanged, keyed.held)

    def refreshes(self, current: Current) -> pl.DataFrame:
        """The current records (`k1`, `k2`, `owner`) the platform holds and whose last confirmed
        upload is older than their latest refresh slot (`sync.freshness`): none on a platform
        whose members never expire (the snapshot's keys are not read then)."""
        target = self.target
        lifetime = platform_spec(target.platform).membership_lifetime(target.config)
        margin = timedelta(days=self.service.settings.refresh_margin_days)
        window = refresh_window(lifetime, margin)
        none = current.keys.clear()
        if window is None or current.is_empty:
            return none
        now = self.service.clock()
        with transaction(self.service.factory) as session:
            snapshot = SnapshotRepository(session, target.tenant_id)
            if snapshot.oldest_confirmed(target.audience_id) is None:
                return none  # nothing held
            times = snapshot.confirmed_times(target.audience_id)
        return due_for_refresh(times, current.keys, now, window)

    async def prepare_unsent(self, plan: Plan, current: Current, preparer: Preparer) -> None:
        """Adds owned by members taken from the state have no text in this run's spill: prepare
        those members again (they are few: records a failed or interrupted run left unsent)."""
        if current.prepared_members == current.members:
            # Nobody was taken from the state (a create, a full run): every add's text is in
            # the spill. Not looked up: a set of every member, ~300 MB and seconds at 10M.
            return
        prepared = current.member_pks.implode()
        owners = plan.adds.filter(~pl.col("owner").is_in(prepared))["owner"].unique().to_list()
        if owners:
            again = await preparer.prepare_owners(owners)
            current.parts.extend(again.parts)
            current.owner_batches.extend(again.owner_batches)
            current.prepared += again.prepared
            self.tally.metrics.details["prepared_members"] = current.prepared_members

    async def send_adds(
        self, platform_id: str, plan: Plan, adds: pl.DataFrame | RecordKeys, current: Current
    ) -> tuple[int, pl.Series]:
        """Step 6, first half: upload the plan's adds; how many records were sent, and who they
        name (the identity of each record, for `send_removes`)."""
        sent = 0
        added: list[pl.Series] = [pl.Series(dtype=pl.String)]
        # The next chunk is read from the spill and prepared on a thread while this one is
        # sent: Polars splits and sorts its records without the GIL (`prepared_adds`).
        for chunk, prepared in read_ahead(self.prepared_adds(adds, current)):
            sent += len(chunk)
            if len(plan.removes):
                added.append(identity_texts(chunk["record"]))
            await self.upload(platform_id, Operation.ADD, chunk, prepared)
        return sent, pl.concat(added)

    async def send_removes(self, platform_id: str, plan: Plan, added: pl.Series) -> int:
        """Step 6, second half: upload the plan's removes; how many records were sent."""
        sent = 0
        readded = added.implode()
        # Removed records are sent back as the snapshot holds them: read with the plan when
        # they are few (`plan`), else a chunk at a time — with no checkpoint in flight, whose
        # compaction could drop a part between listing the parts and reading them.
        await self.checkpoints.drain()
        if len(plan.removes):  # after the adds' last checkpoint: it writes their progress
            await self.checkpoints.progress.begin(Phase.REMOVING, Unit.RECORDS, len(plan.removes))
        size = self.connector.batch_size * MIN_CHUNK_BATCHES
        for start in range(0, len(plan.removes), size):
            removed = self.removed_records(plan.removes.slice(start, size))
            sent += len(removed)
            # A record replaced only by its data use (consent, LDU): the new one was added, the
            # old one is confirmed gone without asking the platform to remove the person.
            superseded = identity_texts(removed["record"]).is_in(readded)
            if superseded.any():
                gone = removed.filter(superseded)
                await self.checkpoints.confirm(Operation.REMOVE, gone, gone, 0, superseded=True)
                removed = removed.filter(~superseded)
                if removed.is_empty():
                    continue
            await self.upload(platform_id, Operation.REMOVE, removed, self.prepared(removed))
        return sent

    def removed_records(self, removed: pl.DataFrame) -> pl.DataFrame:
        """The removed records with their text, read from the snapshot unless the plan has it."""
        if "record" in removed.columns:
            return removed
        hashes = removed["record_hash"].to_list()
        with transaction(self.service.factory) as session:
            snapshot = SnapshotRepository(session, self.target.tenant_id)
            return snapshot.records_of(self.target.audience_id, hashes)

    def prepared_adds(
        self, adds: pl.DataFrame | RecordKeys, current: Current
    ) -> Iterator[tuple[pl.DataFrame, Prepared]]:
        """The adds' rows in chunks of one checkpoint each, with what the connector sends of
        them (made on the thread that reads ahead)."""
        for chunk in add_chunks(adds, current, self.connector.batch_size):
            yield chunk, self.prepared(chunk)

    def prepared(self, chunk: pl.DataFrame) -> Prepared:
        """The chunk's records as the connector sends them."""
        prepared = self.connector.prepared_from_texts(chunk["record"])
        if prepared is None:
            records = [decode_record(text) for text in chunk["record"].to_list()]
            prepared = self.connector.prepared_from_records(records)
        return prepared

    async def upload(
        self, platform_id: str, op: Operation, chunk: pl.DataFrame, prepared: Prepared
    ) -> None:
        """Send one chunk; confirm what the platform accepted with the job's counters."""
        result = await self.connector.upload(op, platform_id, prepared)
        self.tally.accepted_for_processing(result)
        failed = sorted({int(i) for i in result.details.get("failed_users", [])})
        self.tally.refused += len(failed)
        accepted = chunk
        if failed:
            refused = pl.Series(failed, dtype=pl.Int64)
            accepted = chunk.filter(~pl.int_range(pl.len()).is_in(refused.implode()))
            if op is Operation.ADD:
                self.tally.refused_adds(chunk["owner"].gather(refused))
        await self.checkpoints.confirm(op, chunk, accepted, len(failed))
