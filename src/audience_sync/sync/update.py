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

import polars as pl
from sqlalchemy.orm import Session, sessionmaker

from audience_sync.connectors import BaseAudienceConnector, Operation
from audience_sync.connectors.base import Prepared
from audience_sync.connectors.columnar import identity_texts
from audience_sync.exceptions import ValidationError
from audience_sync.sources.members import read_ahead
from audience_sync.store.db import transaction
from audience_sync.store.snapshot import SnapshotRepository
from audience_sync.store.tables import AudienceSyncJob
from audience_sync.sync.checkpoint import Checkpoints
from audience_sync.sync.chunks import MIN_CHUNK_BATCHES, add_chunks
from audience_sync.sync.context import SyncService, Target
from audience_sync.sync.figures import RemovedMembers, Tally
from audience_sync.sync.members import Current
from audience_sync.sync.plan import KEYS, Plan, decode_record, plan_from_delta, plan_streamed
from audience_sync.sync.prepare import Preparer

# An update planned from the member state reads the text of at most this many removed records
# with the plan (one pass over the snapshot's parts, not two); more are read a chunk at a time.
REMOVED_TEXTS_IN_PLAN = 250_000
# The code a guard rail's refusal carries; the failed job keeps it in `details["error_code"]`
# (`jobs.fail_job`), which is how alerts tell a blocked run from a failed one.
GUARD_RAIL = "guard_rail"


def plan_against_snapshot(
    factory: sessionmaker[Session], tenant_id: int, audience_id: uuid.UUID, current: pl.DataFrame
) -> Plan:
    """Step 5: the current records' keys (`k1`, `k2`, `owner`) against the confirmed snapshot,
    whose hashes are read as they stream (never its records' text)."""
    with transaction(factory) as session:
        held = SnapshotRepository(session, tenant_id).hash_batches(audience_id)
        return plan_streamed(current, held)


def refuse_emptying(current: Current, force: bool) -> None:
    """Refuse, unless forced, a replace that would empty the audience."""
    if current.is_empty and not force:
        raise ValidationError(
            "Replace refused: the segment has no member with a usable identifier, so the "
            "audience would be emptied. Sync again with force to do it anyway.",
            details={"code": GUARD_RAIL},
        )


def guard(removes: int, held: int, share: float, force: bool) -> None:
    """Refuse a mass removal unless forced (a broken segment must not empty an audience)."""
    if held and removes > share * held and not force:
        raise ValidationError(
            f"Update refused: it would remove {removes:,} of {held:,} records "
            f"({removes / held:.0%}, above the {share:.0%} guard rail). Check the segment, "
            "then sync again with force if this is intended.",
            details={"code": GUARD_RAIL},
        )


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
            refuse_emptying(current, self.force)
        plan = self.plan(current, preparer)
        # Each new record is sent once, by its first owner; its text comes from the spill.
        adds = plan.adds.unique(KEYS, keep="first", maintain_order=True)
        self.tally.metrics.details["plan"] = {
            "adds": len(adds),
            "removes": len(plan.removes),
            "unchanged": plan.unchanged,
            "members_to_add": plan.adds["owner"].n_unique(),
            "against": "snapshot" if preparer.delta is None else "member state",
        }
        if not replacing:  # a replace means to remove whatever the segment no longer holds
            share = self.service.settings.max_removal_share
            guard(len(plan.removes), plan.held, share, self.force)
        if self.job.dry_run:
            return
        await self.prepare_unsent(plan, current, preparer)
        if len(plan.removes):
            self.tally.removed = RemovedMembers.of(plan.removes, preparer.previous, current.keys)
        sent, readded = await self.send_adds(platform_id, plan, adds, current)
        sent += await self.send_removes(platform_id, plan, readded)
        await self.checkpoints.drain()
        if sent == len(adds) + len(plan.removes) and not self.tally.refused:
            self.checkpoints.converged()

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

    async def prepare_unsent(self, plan: Plan, current: Current, preparer: Preparer) -> None:
        """Adds owned by members taken from the state have no text in this run's spill: prepare
        those members again (they are few: records a failed or interrupted run left unsent)."""
        prepared = pl.Series("owner", current.member_pks, dtype=pl.Int64).implode()
        owners = plan.adds.filter(~pl.col("owner").is_in(prepared))["owner"].unique().to_list()
        if owners:
            again = await preparer.prepare_owners(owners)
            current.parts.extend(again.parts)
            current.member_pks.extend(again.member_pks)
            self.tally.metrics.details["prepared_members"] = len(current.member_pks)

    async def send_adds(
        self, platform_id: str, plan: Plan, adds: pl.DataFrame, current: Current
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
        self, adds: pl.DataFrame, current: Current
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
