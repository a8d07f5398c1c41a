"""Run one sync job end to end: docs/sync.md, steps 2 to 8 (step 1 is `jobs.trigger_job`).

validate → read members → normalize and hash (the connector's own records) → plan against the
snapshot → upload in chunks, each confirmed in one transaction with the job's counters →
refresh the audience's figures from the platform → finish. Any of our errors ends in `fail_job`,
which retries transient ones later (durably) and explains the rest.
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import logging
import tempfile
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import polars as pl
from sqlalchemy import Engine
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from audience_sync.config import Settings
from audience_sync.connectors import BaseAudienceConnector, Operation
from audience_sync.connectors.base import Prepared
from audience_sync.connectors.columnar import identity_texts
from audience_sync.connectors.registry import sync_flags
from audience_sync.crypto import CredentialCipher
from audience_sync.domain.data_use import with_connection_defaults
from audience_sync.domain.models import (
    AudienceConfig,
    AudienceSyncResult,
    SyncOperation,
    SyncPlatform,
    SyncStatus,
)
from audience_sync.exceptions import AudienceSyncError, ValidationError
from audience_sync.sources.members import read_ahead
from audience_sync.store.db import transaction
from audience_sync.store.member_state import MemberStateRepository
from audience_sync.store.repositories import (
    AudienceRepository,
    ConnectionRepository,
    FeatureFlagRepository,
    SegmentRepository,
    SyncJobRepository,
    TenantRepository,
)
from audience_sync.store.snapshot import SnapshotRepository
from audience_sync.store.tables import AudienceSyncJob
from audience_sync.sync.collector import rarer_collections
from audience_sync.sync.health import size_warning
from audience_sync.sync.jobs import (
    Heartbeat,
    JobMetrics,
    Lease,
    LeaseLostError,
    complete_job,
    fail_job,
    fenced,
    heartbeat,
    hold_lease,
    release_job,
    start_job,
)
from audience_sync.sync.lease import lease_waits
from audience_sync.sync.members import CURRENT_SCHEMA, Current, by_reason, drop_counts
from audience_sync.sync.plan import (
    KEYS,
    Plan,
    decode_record,
    hash_keys,
    plan_from_delta,
    plan_streamed,
)
from audience_sync.sync.prepare import Preparer, Scope

log = logging.getLogger(__name__)
ConnectorFactory = Callable[["Target"], BaseAudienceConnector]
# Records per checkpoint: about CHUNK_BYTES of record text, from MIN_CHUNK_BATCHES to
# CHUNK_BATCHES platform batches. A checkpoint commits its chunk as one snapshot part with the
# job's counters: larger chunks, fewer commits and parts (when the snapshot was rows under a
# random key, 2.4M rows took 37.4 s in chunks of 60,000, 18.1 s in chunks of 240,000). But an
# uploaded chunk is also held as Python objects: 25 batches of Meta's wide rows peaked at 2.5 GB
# for a million members, 10 batches at 1.7 GB. A crash re-sends at most one chunk (the platforms
# take a record twice as once).
CHUNK_BYTES = 32 * 2**20
MIN_CHUNK_BATCHES = 10
CHUNK_BATCHES = 25
# An update planned from the member state reads the text of at most this many removed records
# with the plan (one pass over the snapshot's parts, not two); more are read a chunk at a time.
REMOVED_TEXTS_IN_PLAN = 250_000


@dataclass(frozen=True, slots=True)
class Target:
    """Everything about the audience a run needs, read once (no ORM objects leave the session)."""

    tenant_id: int
    audience_id: uuid.UUID
    segment_id: uuid.UUID
    platform: SyncPlatform
    platform_audience_id: str | None
    name: str
    ad_account_id: str
    description: str | None
    config: dict[str, Any]
    sealed_credentials: str  # still encrypted: opened only where the connector is built
    base_url: str | None
    region: str
    # The connection's non-secret settings (Google `login_account_id`,
    # `customer_match_terms_accepted`), handed to the connector as `options["connection"]`.
    connection_settings: dict[str, Any] = field(default_factory=dict)


@dataclass
class SyncService:
    """The engine's dependencies; `connect` builds a connector (tests point it at the sandbox)."""

    factory: sessionmaker[Session]
    engine: Engine
    settings: Settings
    cipher: CredentialCipher
    connect: ConnectorFactory
    clock: Callable[[], datetime] = field(default=lambda: datetime.now(UTC))
    # True once this process is shutting down: a run stops at its next checkpoint and hands
    # its job back (`jobs.release_job`). Read from the checkpoint's thread: thread-safe.
    stopping: Callable[[], bool] = field(default=lambda: False)


class RunInterruptedError(Exception):
    """The run stops at a batch boundary: cancelled, or the job's lease was lost."""

    def __init__(self, beat: Heartbeat) -> None:
        super().__init__(beat.value)
        self.beat = beat


async def run_job(
    service: SyncService, tenant_id: int, job_id: uuid.UUID
) -> AudienceSyncJob | None:
    """Run a pending job to its end; None when another worker has it."""
    with rarer_collections():
        return await _run_job(service, tenant_id, job_id)


async def run_job_in_background(service: SyncService, tenant_id: int, job_id: uuid.UUID) -> None:
    """`run_job` for a launcher nobody awaits (the API's tasks, `serve`'s worker): an unexpected
    failure is logged, by its type only (a message could quote SQL parameters or platform
    payloads); the job stays running until its lease is reaped."""
    try:
        await run_job(service, tenant_id, job_id)
    except Exception as exc:
        log.error("sync job %s stopped by %s", job_id, type(exc).__name__)


async def _run_job(
    service: SyncService, tenant_id: int, job_id: uuid.UUID
) -> AudienceSyncJob | None:
    job = start_job(service.factory, tenant_id, job_id, service.clock())
    if job is None:
        return None
    try:
        return await _run_owned(service, tenant_id, job)
    except LeaseLostError:
        # Reaped (or started again) while it ran: another run owns the audience now, and this
        # one wrote nothing since it lost the job (every write is fenced).
        log.warning("sync job %s lost its lease and stopped", job_id)
        return None


async def _run_owned(
    service: SyncService, tenant_id: int, job: AudienceSyncJob
) -> AudienceSyncJob | None:
    """Run a started job and record how it ended, every write under the run's lease."""
    job_id, token = job.id, job.lease_token
    metrics = JobMetrics()
    try:
        target = load_target(service, tenant_id, job.platform_audience_id)
        async with service.connect(target) as connector:
            try:
                await Run(service, target, job, connector, metrics).execute()
            finally:
                keep_refreshed_token(service, target, connector)
    except RunInterruptedError as stop:
        if stop.beat is Heartbeat.LOST:
            raise LeaseLostError(f"job {job_id} is no longer held by this run") from None
        if stop.beat is Heartbeat.SHUTDOWN:
            return release_job(
                service.factory, tenant_id, job_id, metrics, service.clock(), lease_token=token
            )
        return complete_job(
            service.factory,
            tenant_id,
            job_id,
            metrics,
            service.clock(),
            SyncStatus.CANCELLED,
            lease_token=token,
        )
    except AudienceSyncError as error:
        delays = service.settings.retry_delays_seconds
        return fail_job(
            service.factory,
            tenant_id,
            job_id,
            error,
            service.clock(),
            delays,
            metrics,
            lease_token=token,
        )
    now = service.clock()
    if metrics.pending_requests:  # read their statuses later, on the platform's schedule
        metrics.confirm_at = now + timedelta(
            seconds=service.settings.confirmation_first_check_seconds
        )
    return complete_job(service.factory, tenant_id, job_id, metrics, now, lease_token=token)


def load_target(service: SyncService, tenant_id: int, audience_id: uuid.UUID) -> Target:
    """Step 2: the segment is active, the connection exists, the flags are on."""
    with transaction(service.factory) as session:
        audience = AudienceRepository(session, tenant_id).get(audience_id)
        segment = SegmentRepository(session, tenant_id).get(audience.segment_id)
        if not segment.is_active:
            raise ValidationError(f"Segment {segment.name!r} is inactive; activate it to sync.")
        flags = FeatureFlagRepository(session, tenant_id).effective(service.settings.feature_flags)
        for flag in sync_flags(audience.platform):
            if not flags[flag]:
                raise ValidationError(f"Feature flag {flag.value!r} is off for this tenant.")
        connections = ConnectionRepository(session, tenant_id, service.cipher)
        connection = connections.get(audience.platform)
        return Target(
            tenant_id=tenant_id,
            audience_id=audience.id,
            segment_id=segment.id,
            platform=audience.platform,
            platform_audience_id=audience.platform_audience_id,
            name=audience.platform_audience_name,
            ad_account_id=audience.ad_account_id or connection.ad_account_id,
            description=audience.description,
            # The connection's consent and Limited Data Use defaults, beneath the audience's.
            config=with_connection_defaults(connection.settings, audience.config or {}),
            sealed_credentials=connection.credentials_encrypted,
            base_url=connection.base_url,
            region=TenantRepository(session).region_of(tenant_id),
            connection_settings=dict(connection.settings or {}),
        )


def keep_refreshed_token(
    service: SyncService, target: Target, connector: BaseAudienceConnector
) -> None:
    """A token the connector refreshed (Google, Snapchat) is stored, encrypted, for the next
    runs — unless the connection was set again while this run went on (its sealed credentials
    changed): what the user set wins."""
    tokens = connector.http.tokens
    if not tokens.refreshed:
        return
    try:
        with transaction(service.factory) as session:
            connections = ConnectionRepository(session, target.tenant_id, service.cipher)
            connection = connections.find(target.platform)
            if connection is None or connection.credentials_encrypted != target.sealed_credentials:
                return  # removed or set again meanwhile
            stored = service.cipher.decrypt(connection.credentials_encrypted)
            stored["access_token"] = tokens.token
            if tokens.credentials.refresh_token:
                stored["refresh_token"] = tokens.credentials.refresh_token
            connections.put(
                target.platform, connection.ad_account_id, stored, base_url=connection.base_url
            )
    except SQLAlchemyError:
        # Called on the way out of every run: never replaces the run's own outcome. The next
        # run refreshes again from the stored refresh token.
        log.warning("could not store a refreshed token", extra={"platform": target.platform.value})


def plan_against_snapshot(
    factory: sessionmaker[Session], tenant_id: int, audience_id: uuid.UUID, current: pl.DataFrame
) -> Plan:
    """Step 5: the current records' keys (`k1`, `k2`, `owner`) against the confirmed snapshot,
    whose hashes are read as they stream (never its records' text)."""
    with transaction(factory) as session:
        held = SnapshotRepository(session, tenant_id).hash_batches(audience_id)
        return plan_streamed(current, held)


class Waiting:
    """Rows gathered into whole chunks of `size` (the last one may be short)."""

    def __init__(self, size: int) -> None:
        self.size = size
        self.frames: list[pl.DataFrame] = []
        self.rows = 0

    def add(self, frame: pl.DataFrame) -> list[pl.DataFrame]:
        """The whole chunks that `frame` completes; the remainder keeps waiting."""
        self.frames.append(frame)
        self.rows += len(frame)
        if self.rows < self.size:
            return []
        whole = pl.concat(self.frames)
        cut = len(whole) - len(whole) % self.size
        self.frames, self.rows = [whole.slice(cut)], len(whole) - cut
        return [whole.slice(start, self.size) for start in range(0, cut, self.size)]

    def rest(self) -> list[pl.DataFrame]:
        """The last, short chunk (if any rows wait)."""
        chunks = [pl.concat(self.frames)] if self.rows else []
        self.frames, self.rows = [], 0
        return chunks


class OwnerTally:
    """Distinct members over a run's chunks: a member's records can straddle two chunks, and
    counting each chunk's members would count such a member twice."""

    def __init__(self) -> None:
        self.seen = pl.Series("owner", [], dtype=pl.Int64)

    def add(self, owners: pl.Series) -> int:
        """How many of these members were not counted yet."""
        fresh = owners.unique()
        fresh = fresh.filter(~fresh.is_in(self.seen.implode()))
        self.seen = pl.concat([self.seen, fresh.cast(pl.Int64)])
        return len(fresh)

    @property
    def count(self) -> int:
        return len(self.seen)


class RemovedMembers:
    """The members a run's accepted removals took off the platform (`profiles_removed`, see
    `Figures`). A removed record's members are its owners in the last run's member state; one
    counts once, when it produces no record now (it left the segment or lost every identifier).
    A removed record with no known owner (no stored state: a first update after an upgrade, a
    replace) counts as one, and is tallied in `without_owner`."""

    def __init__(self, owners: pl.DataFrame | None = None) -> None:
        # `k1`, `k2`, `owner`, `gone` of the plan's removed records that the state names an
        # owner of (`gone`: the owner produces no record now); None without a stored state.
        self.owners = owners
        self.gone = OwnerTally()
        self.without_owner = 0

    @classmethod
    def of(
        cls, removes: pl.DataFrame, previous: pl.DataFrame | None, current: pl.DataFrame
    ) -> RemovedMembers:
        """For a plan's `removes` (`record_hash`), the last state (`previous`: `owner`, `k1`,
        `k2`) and the current records (`current`: `k1`, `k2`, `owner`). Joins of the removed
        keys, a scan of the state and one of the current owners: no loop over records."""
        if previous is None:
            return cls()
        keys = removes.select(hash_keys()).unique()
        named = (
            previous.filter(pl.col("k1").is_in(keys["k1"].implode()))
            .select(*KEYS, pl.col("owner").cast(pl.Int64))
            .join(keys, on=KEYS, how="semi")
        )
        owners = named["owner"].unique().implode()
        still = current.filter(pl.col("owner").is_in(owners))["owner"].unique().implode()
        return cls(named.with_columns(gone=~pl.col("owner").is_in(still)))

    def add(self, removed: pl.DataFrame) -> None:
        """Records (`record_hash`) the platform accepted to remove."""
        keys = removed.select(hash_keys())
        if self.owners is None:
            self.without_owner += len(keys)
            return
        self.without_owner += len(keys.join(self.owners, on=KEYS, how="anti"))
        gone = self.owners.filter(pl.col("gone")).join(keys, on=KEYS, how="semi")
        self.gone.add(gone["owner"])

    @property
    def count(self) -> int:
        return self.gone.count + self.without_owner


@dataclass(slots=True)
class Figures:
    """A run's figures, in members (profiles), the same for every platform and operation.

    Every member of the segment is exactly one of: *added* (at least one record sent in this
    run and accepted), *failed* (`unusable`: no identifier the platform takes; or `refused`:
    records sent, none accepted) or *unchanged* (nothing to send: the platform already holds
    all its records). `profiles_sent` = added + refused.

    `profiles_removed` counts members too: those with at least one record removed and accepted
    by the platform who produce no record now (left the segment, or lost every identifier),
    each found as the owner of a removed record in the last run's member state. A member who
    only changed an identifier is not removed. A removed record with no known owner (no stored
    state: a first update after an upgrade, a replace) counts as one member, and as one in
    `removes_without_owner`, so the figure never hides removals. `removes_sent` and
    `removes_refused` count records (the removal requests).
    """

    members: int = 0
    unusable: int = 0
    sent: int = 0
    added: int = 0
    removes_sent: int = 0
    removes_refused: int = 0
    removes_without_owner: int = 0

    @property
    def refused(self) -> int:
        return self.sent - self.added

    @property
    def unchanged(self) -> int:
        return max(0, self.members - self.unusable - self.sent)

    def as_json(self) -> dict[str, int]:
        return {
            "members": self.members,
            "unusable": self.unusable,
            "refused": self.refused,
            "unchanged": self.unchanged,
            "removes_sent": self.removes_sent,
            "removes_refused": self.removes_refused,
            "removed_records_without_owner": self.removes_without_owner,
        }


def _adds_of(part: pl.DataFrame, adds: pl.DataFrame) -> pl.DataFrame:
    """The rows of a spilled part that are adds, each record once."""
    # A part holds one member batch: only the adds of its owners' span are joined
    # (0.14 s → 0.006 s a part against a million adds).
    span = pl.col("owner").is_between(part["owner"].min(), part["owner"].max())
    mine = adds.filter(span)
    rows = part.join(mine, on=[*KEYS, "owner"], how="semi", maintain_order="left")
    # By the 128-bit key (two integers), not the 64-character hash it is cut from.
    return rows.unique(KEYS, keep="first", maintain_order=True)


class Run:
    """One execution of one job (steps 3 to 8)."""

    def __init__(
        self,
        service: SyncService,
        target: Target,
        job: AudienceSyncJob,
        connector: BaseAudienceConnector,
        metrics: JobMetrics,
    ) -> None:
        self.service = service
        self.target = target
        self.job = job
        self.connector = connector
        self.metrics = metrics
        self.force = bool((job.details or {}).get("force"))
        self.refused = 0  # records the platform refused in this run
        self.sent_to = OwnerTally()  # members whose records were sent to be added
        self.added = OwnerTally()  # members with at least one record the platform accepted
        self.figures = Figures()
        self.removed = RemovedMembers()
        self.writing: asyncio.Future[Heartbeat | None] | None = None  # see `in_background`
        self.hold = Lease(target.tenant_id, job.id, job.lease_token)
        self.keep_lease_while_waiting()

    def keep_lease_while_waiting(self) -> None:
        """The connector's waits (`Retry-After`, backoff, rate limit, polls) renew the lease in
        slices of at most a third of it, and stop the run once it lost its job (`LeasedSleep`)."""
        lease_seconds = self.service.settings.job_lease_seconds
        lease_waits(self.connector, self.renew_while_waiting, lease_seconds)

    async def renew_while_waiting(self) -> None:
        """Renew the lease from a wait, on a thread (the database call is synchronous); a
        cancel is left for the next checkpoint, as before."""
        if await asyncio.to_thread(self.lease) is Heartbeat.LOST:
            raise LeaseLostError(f"job {self.job.id} is no longer held by this run")

    def fenced(self) -> AbstractContextManager[Session]:
        """A transaction that commits only while this run holds its job (`jobs.fenced`)."""
        return fenced(self.service.factory, self.hold, self.service.clock())

    def save_state(self, preparer: Preparer) -> Heartbeat:
        """The member state `prepare` found, saved under the run's lease (`in_background`)."""
        try:
            preparer.save(self.service.clock(), begin=self.fenced)
        except LeaseLostError:
            return Heartbeat.LOST
        return Heartbeat.CONTINUE

    async def execute(self) -> None:
        if self.job.operation is SyncOperation.DELETE:
            await self.delete()
            return
        platform_id = await self.ensure_created()
        replacing = self.job.operation is SyncOperation.REPLACE
        with tempfile.TemporaryDirectory(prefix="audience-sync-") as spill:
            preparer = Preparer(self.scope(), self.connector, platform_id, Path(spill))
            current, users = await preparer.prepare(full=replacing, save=not self.job.dry_run)
            try:
                # The member state is written while the plan is made and the first chunk sent.
                self.in_background(functools.partial(self.save_state, preparer))
                self.diagnose(current)
                if replacing and not self.connector.CAPABILITIES.replace_by_difference:
                    await self.drain()
                    await self.replace(platform_id, current, users)
                else:
                    await self.update(platform_id, current, preparer, replacing=replacing)
                await self.drain()
            except BaseException:
                await self.settle()
                raise
        if not self.job.dry_run:
            await self.refresh(platform_id, current)

    # --- operations -----------------------------------------------------------------------

    async def ensure_created(self) -> str:
        """Create the platform audience once, recording its id before any upload."""
        if self.target.platform_audience_id:
            return self.target.platform_audience_id
        if self.job.dry_run:
            return ""
        config = AudienceConfig(
            name=self.target.name,
            ad_account_id=self.target.ad_account_id,
            description=self.target.description,
            options=self.target.config,
        )
        created = await self.connector.create_audience(config)
        platform_id = str(created.platform_audience_id)
        with self.fenced() as session:
            AudienceRepository(session, self.target.tenant_id).get(
                self.target.audience_id
            ).platform_audience_id = platform_id
        return platform_id

    def scope(self) -> Scope:
        target = self.target
        return Scope(
            engine=self.service.engine,
            factory=self.service.factory,
            tenant_id=target.tenant_id,
            audience_id=target.audience_id,
            segment_id=target.segment_id,
            platform=target.platform.value,
            region=target.region,
            config=target.config,
        )

    async def update(
        self, platform_id: str, current: Current, preparer: Preparer, *, replacing: bool = False
    ) -> None:
        """Send the delta. A replace on a platform without one (`replace_by_difference`) is
        this too: prepared in full, planned against every confirmed record of the snapshot."""
        if replacing:
            self.refuse_emptying(current)
        plan = self.plan(current, preparer)
        # Each new record is sent once, by its first owner; its text comes from the spill.
        adds = plan.adds.unique(KEYS, keep="first", maintain_order=True)
        self.metrics.details["plan"] = {
            "adds": len(adds),
            "removes": len(plan.removes),
            "unchanged": plan.unchanged,
            "members_to_add": plan.adds["owner"].n_unique(),
            "against": "snapshot" if preparer.delta is None else "member state",
        }
        if not replacing:  # a replace means to remove whatever the segment no longer holds
            self.guard(len(plan.removes), plan.held)
        if self.job.dry_run:
            return
        await self.prepare_unsent(plan, current, preparer)
        if len(plan.removes):
            self.removed = RemovedMembers.of(plan.removes, preparer.previous, current.keys)
        sent = await self.send(platform_id, plan, adds, current)
        await self.drain()
        if sent == len(adds) + len(plan.removes) and not self.refused:
            self.converged()

    async def send(self, platform_id: str, plan: Plan, adds: pl.DataFrame, current: Current) -> int:
        """Step 6: upload the plan's adds, then its removes; how many records were sent."""
        sent = 0
        added: list[pl.Series] = [pl.Series(dtype=pl.String)]  # who the adds name (removals)
        # The next chunk is read from the spill and prepared on a thread while this one is
        # sent: Polars splits and sorts its records without the GIL (`prepared_adds`).
        for chunk, prepared in read_ahead(self.prepared_adds(adds, current)):
            sent += len(chunk)
            if len(plan.removes):
                added.append(identity_texts(chunk["record"]))
            await self.upload(platform_id, Operation.ADD, chunk, prepared)
        readded = pl.concat(added).implode()
        # Removed records are sent back as the snapshot holds them: read with the plan when
        # they are few (`plan`), else a chunk at a time — with no checkpoint in flight, whose
        # compaction could drop a part between listing the parts and reading them.
        await self.drain()
        size = self.connector.batch_size * MIN_CHUNK_BATCHES
        for start in range(0, len(plan.removes), size):
            removed = plan.removes.slice(start, size)
            if "record" not in removed.columns:
                hashes = removed["record_hash"].to_list()
                with transaction(self.service.factory) as session:
                    removed = SnapshotRepository(session, self.target.tenant_id).records_of(
                        self.target.audience_id, hashes
                    )
            sent += len(removed)
            # A record replaced only by its data use (consent, LDU): the new one was added, the
            # old one is confirmed gone without asking the platform to remove the person.
            superseded = identity_texts(removed["record"]).is_in(readded)
            if superseded.any():
                gone = removed.filter(superseded)
                await self.confirm(Operation.REMOVE, gone, gone, 0, superseded=True)
                removed = removed.filter(~superseded)
                if removed.is_empty():
                    continue
            await self.upload(platform_id, Operation.REMOVE, removed, self.prepared(removed))
        return sent

    def prepared_adds(
        self, adds: pl.DataFrame, current: Current
    ) -> Iterator[tuple[pl.DataFrame, Prepared]]:
        """The adds' rows in chunks of one checkpoint each, with what the connector sends of
        them. Whole chunks across spilled parts: a checkpoint per part would commit small ones."""
        waiting = None
        # Every current record an add, no two sharing a key (a create, mostly): every row of
        # every part is sent, as `_adds_of` would find (~2 s of joins for 2.4M records).
        whole = len(adds) == len(current.keys)
        for part in current.records():
            rows = part if whole else _adds_of(part, adds)
            if rows.is_empty():
                continue
            waiting = waiting or Waiting(self.chunk_size(rows))
            for chunk in waiting.add(rows.select(*CURRENT_SCHEMA)):
                yield chunk, self.prepared(chunk)
        for chunk in waiting.rest() if waiting is not None else []:
            yield chunk, self.prepared(chunk)

    def prepared(self, chunk: pl.DataFrame) -> Prepared:
        """The chunk's records as the connector sends them."""
        prepared = self.connector.prepared_from_texts(chunk["record"])
        if prepared is None:
            records = [decode_record(text) for text in chunk["record"].to_list()]
            prepared = self.connector.prepared_from_records(records)
        return prepared

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
                # for the records (`update`).
                removes = snapshot.records_of_keys(audience_id, keyed.removes)
            else:
                hashes = snapshot.hashes_of_keys(audience_id, keyed.removes)
                removes = pl.DataFrame({"record_hash": hashes}, schema={"record_hash": pl.String})
        return Plan(keyed.adds, removes, keyed.unchanged, keyed.held)

    def converged(self) -> None:
        """Every planned record was confirmed: the snapshot now holds exactly the member state's
        records, so the next update can plan from the state. Under the job's lease, so a run
        that lost its job never vouches for a snapshot another run changes; a cancel
        requested meanwhile stops the run here, as at a checkpoint."""
        with transaction(self.service.factory) as session:
            answer = hold_lease(session, self.hold, self.service.clock())
            if answer is not Heartbeat.CONTINUE:
                raise RunInterruptedError(answer)
            MemberStateRepository(session, self.target.tenant_id).mark_converged(
                self.target.audience_id
            )

    async def prepare_unsent(self, plan: Plan, current: Current, preparer: Preparer) -> None:
        """Adds owned by members taken from the state have no text in this run's spill: prepare
        those members again (they are few: records a failed or interrupted run left unsent)."""
        prepared = pl.Series("owner", current.member_pks, dtype=pl.Int64).implode()
        owners = plan.adds.filter(~pl.col("owner").is_in(prepared))["owner"].unique().to_list()
        if owners:
            again = await preparer.prepare_owners(owners)
            current.parts.extend(again.parts)
            current.member_pks.extend(again.member_pks)
            self.metrics.details["prepared_members"] = len(current.member_pks)

    async def replace(self, platform_id: str, current: Current, users: Sequence[Any]) -> None:
        if current.is_empty and not self.force:
            raise ValidationError(
                "Replace refused: the segment has no member with a usable identifier, so the "
                "audience would be emptied. Sync again with force to do it anyway."
            )
        self.metrics.details["plan"] = {"replace_records": current.keys.select(KEYS).n_unique()}
        if self.job.dry_run:
            return
        result = await self.connector.replace_audience(platform_id, users)
        self.accepted_for_processing(result)
        if result.details.get("remove_all_as_of"):
            # Google's replace: the members last added before this time are removed once the
            # ingest requests have been processed (`sync.confirm`).
            self.metrics.details["remove_all_as_of"] = result.details["remove_all_as_of"]
        failed = sorted(
            {current.member_pks[int(i)] for i in result.details.get("failed_users", [])}
        )
        if failed and self.metrics.diagnostics is not None:
            # Unusable members are in `users` too (no record: failed): they are not refused.
            unusable = set(current.member_pks) - set(current.keys["owner"].unique().to_list())
            refused = [pk for pk in failed if pk not in unusable]
            self.metrics.diagnostics.add_refused(pl.Series(refused, dtype=pl.Int64))
        now = self.service.clock()
        with self.fenced() as session:
            snapshot = SnapshotRepository(session, self.target.tenant_id)
            snapshot.clear(self.target.audience_id)
            for part in current.records():
                kept = part.filter(~pl.col("owner").is_in(failed)).unique("record_hash")
                snapshot.confirm_records(self.target.audience_id, now, kept)
        # `users` is every member, the unusable ones too (they have no record, so the
        # connector counts them failed): they are in `profiles_failed` once, from `diagnose`.
        sent = max(0, result.sent - self.figures.unusable)
        self.count_members(sent=sent, added=min(result.accepted, sent))

    async def delete(self) -> None:
        if self.job.dry_run:
            return
        if self.target.platform_audience_id:
            await self.connector.delete_audience(self.target.platform_audience_id)
        with self.fenced() as session:
            audience = AudienceRepository(session, self.target.tenant_id).get(
                self.target.audience_id
            )
            audience.is_active = False
            audience.auto_sync = False
            audience.next_sync_at = None
            SnapshotRepository(session, self.target.tenant_id).clear(self.target.audience_id)
            MemberStateRepository(session, self.target.tenant_id).clear(self.target.audience_id)

    # --- steps ----------------------------------------------------------------------------

    def refuse_emptying(self, current: Current) -> None:
        """Refuse, unless forced, a replace that would empty the audience."""
        if current.is_empty and not self.force:
            raise ValidationError(
                "Replace refused: the segment has no member with a usable identifier, so the "
                "audience would be emptied. Sync again with force to do it anyway."
            )

    def guard(self, removes: int, held: int) -> None:
        """Refuse a mass removal unless forced (a broken segment must not empty an audience)."""
        share = self.service.settings.max_removal_share
        if held and removes > share * held and not self.force:
            raise ValidationError(
                f"Update refused: it would remove {removes:,} of {held:,} records "
                f"({removes / held:.0%}, above the {share:.0%} guard rail). Check the segment, "
                "then sync again with force if this is intended."
            )

    def diagnose(self, current: Current) -> None:
        self.figures = Figures(members=current.members, unusable=current.unusable_members)
        self.count_members(sent=0, added=0)
        self.metrics.details["members"] = current.members
        self.metrics.details["prepared_members"] = len(current.member_pks)
        counts = drop_counts(current.drops["dropped"])  # read once, for both
        self.metrics.details["dropped"] = dict(by_reason(counts))
        current.diagnostics.count(counts)
        self.metrics.diagnostics = current.diagnostics

    def chunk_size(self, sample: pl.DataFrame) -> int:
        """Records per checkpoint: about `CHUNK_BYTES` of record text (judged on a sample of
        the records), from `MIN_CHUNK_BATCHES` to `CHUNK_BATCHES` platform batches."""
        batch = self.connector.batch_size
        mean = sample["record"].str.len_bytes().mean()
        wanted = CHUNK_BYTES // max(1, int(mean)) if isinstance(mean, int | float) else 0
        return min(max(wanted, batch * MIN_CHUNK_BATCHES), batch * CHUNK_BATCHES)

    async def upload(
        self, platform_id: str, op: Operation, chunk: pl.DataFrame, prepared: Prepared
    ) -> None:
        """Send one chunk; confirm what the platform accepted with the job's counters."""
        result = await self.connector.upload(op, platform_id, prepared)
        self.accepted_for_processing(result)
        failed = sorted({int(i) for i in result.details.get("failed_users", [])})
        self.refused += len(failed)
        accepted = chunk
        if failed:
            refused = pl.Series(failed, dtype=pl.Int64)
            accepted = chunk.filter(~pl.int_range(pl.len()).is_in(refused.implode()))
            if op is Operation.ADD and self.metrics.diagnostics is not None:
                self.metrics.diagnostics.add_refused(chunk["owner"].gather(refused))
        await self.confirm(op, chunk, accepted, len(failed))

    def accepted_for_processing(self, result: AudienceSyncResult) -> None:
        """Requests the platform accepted and processes later are kept for the confirmation
        step; row-level warnings at acceptance are added up on the job."""
        if result.details.get("requests_pending"):
            self.metrics.pending_requests.extend(result.request_ids)
        warnings = result.details.get("field_warnings") or {}
        if warnings:
            held = self.metrics.details.setdefault("field_warnings", {})
            for reason, count in warnings.items():
                held[reason] = held.get(reason, 0) + int(count)

    async def confirm(
        self,
        op: Operation,
        chunk: pl.DataFrame,
        accepted: pl.DataFrame,
        failed: int,
        *,
        superseded: bool = False,
    ) -> None:
        """Checkpoint a sent chunk in a worker thread while the next one is prepared and sent.

        Checkpoints run one at a time, in order (`in_background`). Writing a chunk's part and
        committing it (compressing ~40 MB, then SQLite writing it twice, WAL and database) takes
        about as long as sending it; with a real platform the send is network time, so this
        hides the checkpoint entirely. A cancel or a lost lease, reported by the heartbeat after a
        checkpoint, stops the run once the chunk sent meanwhile is checkpointed too: the
        snapshot holds everything the platform accepted."""
        answer = await self.written()
        work = functools.partial(self.checkpoint, op, chunk, accepted, failed, superseded)
        self.in_background(work)
        if answer is not Heartbeat.CONTINUE:
            await self.written()
            raise RunInterruptedError(answer)

    def in_background(self, work: Callable[[], Heartbeat | None]) -> None:
        """Start `work` (a database write) in a worker thread; the caller waits for the write
        in flight first (`written`), so writes run one at a time, in order."""
        assert self.writing is None, "one write in flight at a time"
        # Submitted now, not as a task: a task would start at the loop's next turn, and a send
        # to an in-process app (the sandbox) may never yield to the loop.
        context = contextvars.copy_context()  # the log context, as `asyncio.to_thread` does
        self.writing = asyncio.get_running_loop().run_in_executor(None, context.run, work)

    async def written(self) -> Heartbeat:
        """Wait for the write in flight; the heartbeat's answer after it (a checkpoint's)."""
        if self.writing is None:
            return Heartbeat.CONTINUE
        writing, self.writing = self.writing, None
        return await writing or Heartbeat.CONTINUE

    async def drain(self) -> None:
        """Wait for the write in flight; stop if its heartbeat says so."""
        answer = await self.written()
        if answer is not Heartbeat.CONTINUE:
            raise RunInterruptedError(answer)

    async def settle(self) -> None:
        """On the way out of a failed run: let the write in flight finish (a checkpoint's
        chunk was accepted), logging rather than raising its own failure over the run's."""
        try:
            await self.written()
        except Exception:
            log.warning("a write in flight when the run failed did not commit", exc_info=True)

    def checkpoint(
        self,
        op: Operation,
        chunk: pl.DataFrame,
        accepted: pl.DataFrame,
        failed: int,
        superseded: bool = False,
    ) -> Heartbeat:
        """I2: a chunk's records enter the snapshot in the same transaction as the counters,
        and as the lease's renewal, which checks the run still holds its job (else nothing
        commits and the answer is `LOST`; see `confirm`). `superseded` removals were replaced
        by a record of the same person (`send`): nobody left, so no member is counted removed."""
        now = self.service.clock()
        try:
            with transaction(self.service.factory) as session:
                # The lease first, in the same transaction: when it is lost, the chunk's part
                # and the counters roll back with it.
                answer = hold_lease(session, self.hold, now)
                self.write_checkpoint(session, now, op, chunk, accepted, failed, superseded)
        except LeaseLostError:
            return Heartbeat.LOST
        return self.or_shutdown(answer)

    def write_checkpoint(
        self,
        session: Session,
        now: datetime,
        op: Operation,
        chunk: pl.DataFrame,
        accepted: pl.DataFrame,
        failed: int,
        superseded: bool,
    ) -> None:
        """The checkpoint's writes, in the caller's fenced transaction."""
        snapshot = SnapshotRepository(session, self.target.tenant_id)
        if op is Operation.ADD:
            snapshot.confirm_records(self.target.audience_id, now, accepted)
            self.added.add(accepted["owner"])
            self.sent_to.add(chunk["owner"])
            self.count_members(sent=self.sent_to.count, added=self.added.count)
        else:
            removed = accepted["record_hash"].to_list()
            snapshot.confirm(self.target.audience_id, now, removed=removed)
            if not superseded:
                self.removed.add(accepted)
            self.metrics.profiles_removed = self.removed.count
            self.figures.removes_without_owner = self.removed.without_owner
            self.figures.removes_sent += len(chunk)
            self.figures.removes_refused += failed
            self.metrics.details["figures"] = self.figures.as_json()
        job = SyncJobRepository(session, self.target.tenant_id).get(self.job.id)
        job.profiles_sent = self.metrics.profiles_sent
        job.profiles_added = self.metrics.profiles_added
        job.profiles_removed = self.metrics.profiles_removed
        job.profiles_failed = self.metrics.profiles_failed

    def count_members(self, *, sent: int, added: int) -> None:
        """The job's member figures from this run's members sent to be added and accepted
        (see `Figures`)."""
        figures = self.figures
        figures.sent, figures.added = sent, added
        self.metrics.profiles_sent = sent
        self.metrics.profiles_added = added
        self.metrics.profiles_failed = figures.unusable + figures.refused
        self.metrics.details["figures"] = figures.as_json()

    def lease(self) -> Heartbeat:
        """Renew the job's lease; whether to go on, cancel, or stop (`jobs.heartbeat`), or
        stop because this process is shutting down."""
        answer = heartbeat(
            self.service.factory,
            self.target.tenant_id,
            self.job.id,
            self.service.clock(),
            self.hold.token,
        )
        return self.or_shutdown(answer)

    def or_shutdown(self, answer: Heartbeat) -> Heartbeat:
        """`SHUTDOWN` instead of `CONTINUE` once this process is stopping (`serve`'s worker)."""
        if answer is Heartbeat.CONTINUE and self.service.stopping():
            return Heartbeat.SHUTDOWN
        return answer

    async def refresh(self, platform_id: str, current: Current) -> None:
        """Step 8: the platform's size and match rate on the audience; schedule the next run."""
        info = await self.connector.get_audience_info(platform_id)
        matched = info.get("size")
        usable = current.members - current.unusable_members
        if matched is not None:
            synced = max(0, usable - self.figures.refused)
            warning = size_warning(self.target.platform, int(matched), synced)
            if warning is not None:
                self.metrics.details.setdefault("warnings", []).append(warning)
        rate = info.get("match_rate")
        if rate is None and matched is not None and usable and int(matched) <= usable:
            # The platform's count as a share of the members sent. A count above them (members
            # added on the platform, identifiers counted) is no such share: no rate, not 100%.
            rate = int(matched) / usable
        self.metrics.match_rate = rate
        now = self.service.clock()
        with self.fenced() as session:
            audience = AudienceRepository(session, self.target.tenant_id).get(
                self.target.audience_id
            )
            audience.platform_size = int(matched) if matched is not None else None
            audience.matched_size = audience.platform_size
            audience.match_rate = rate
            if audience.auto_sync:
                audience.next_sync_at = now + timedelta(hours=audience.sync_interval_hours)
