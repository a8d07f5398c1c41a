"""One execution of one job, steps 3 to 8 of docs/sync.md: prepare, plan and send (`update`)
or replace, refresh the audience's figures; or delete the audience."""

from __future__ import annotations

import functools
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import polars as pl

from audience_sync.connectors import BaseAudienceConnector
from audience_sync.domain.models import AudienceConfig, SyncOperation
from audience_sync.domain.progress import Phase, Unit
from audience_sync.domain.schedule import next_sync_at
from audience_sync.store.db import transaction
from audience_sync.store.member_state import MemberStateRepository
from audience_sync.store.repositories import (
    AudienceRepository,
    SegmentRepository,
    SyncJobRepository,
)
from audience_sync.store.snapshot import SnapshotRepository
from audience_sync.store.tables import AudienceSyncJob
from audience_sync.sync.checkpoint import Checkpoints
from audience_sync.sync.context import SyncService, Target
from audience_sync.sync.figures import Tally
from audience_sync.sync.health import size_warning
from audience_sync.sync.jobs import JobMetrics
from audience_sync.sync.lease import lease_waits
from audience_sync.sync.members import Current
from audience_sync.sync.plan import KEYS
from audience_sync.sync.prepare import Preparer, Scope
from audience_sync.sync.update import (
    Update,
    emptying,
    enforce,
    first_of_each,
    plan_against_snapshot,
    plan_summary,
)


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
        self.tally = Tally(metrics)
        self.checkpoints = Checkpoints(service, target, job, self.tally)
        self.progress = self.checkpoints.progress
        self.keep_lease_while_waiting()

    def keep_lease_while_waiting(self) -> None:
        """The connector's waits (`Retry-After`, backoff, rate limit, polls) renew the lease in
        slices of at most a third of it, and stop the run once it lost its job (`LeasedSleep`)."""
        lease_seconds = self.service.settings.job_lease_seconds
        lease_waits(self.connector, self.checkpoints.renew_while_waiting, lease_seconds)

    async def execute(self) -> None:
        if self.job.operation is SyncOperation.DELETE:
            await self.progress.begin(Phase.FINISHING)
            await self.delete()
            return
        platform_id = await self.ensure_created()
        replacing = self.job.operation is SyncOperation.REPLACE
        checkpoints = self.checkpoints
        with tempfile.TemporaryDirectory(prefix="audience-sync-") as spill:
            preparer = Preparer(self.scope(), self.connector, platform_id, Path(spill))
            preparer.on_members = self.progress.advance
            await self.progress.begin(Phase.READING, Unit.MEMBERS, self.member_count())
            current, users = await preparer.prepare(full=replacing, save=not self.job.dry_run)
            await self.progress.begin(Phase.PLANNING)
            try:
                # The member state is written while the plan is made and the first chunk sent.
                checkpoints.in_background(functools.partial(checkpoints.save_state, preparer))
                self.tally.diagnose(current)
                if replacing and not self.connector.CAPABILITIES.replace_by_difference:
                    await checkpoints.drain()
                    await self.replace(platform_id, current, users)
                else:
                    update = Update(
                        self.service,
                        self.target,
                        self.job,
                        self.connector,
                        self.tally,
                        checkpoints,
                        self.force,
                    )
                    await update.run(platform_id, current, preparer, replacing=replacing)
                await checkpoints.drain()
                await self.progress.begin(Phase.FINISHING)  # after the last checkpoint
            except BaseException:
                await checkpoints.settle()
                raise
        if not self.job.dry_run:
            await self.refresh(platform_id, current)

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
        with self.checkpoints.fenced() as session:
            AudienceRepository(session, self.target.tenant_id).get(
                self.target.audience_id
            ).platform_audience_id = platform_id
        return platform_id

    def member_count(self) -> int:
        """The segment's members now: the reading phase's total."""
        with transaction(self.service.factory) as session:
            segments = SegmentRepository(session, self.target.tenant_id)
            return segments.member_count(self.target.segment_id)

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

    async def replace(self, platform_id: str, current: Current, users: Sequence[Any]) -> None:
        """The platform's own replace: every member sent at once; the snapshot becomes what
        the platform accepted."""
        dry_run = self.job.dry_run
        enforce(emptying(current), force=self.force, dry_run=dry_run, metrics=self.metrics)
        records = current.keys.frame().select(KEYS).n_unique()
        self.metrics.details["plan"] = {"replace_records": records}
        if dry_run:
            self.preview_replace(current)
            return
        await self.progress.begin(Phase.UPLOADING, Unit.MEMBERS, len(users))
        result = await self.connector.replace_audience(platform_id, users)
        self.tally.accepted_for_processing(result)
        if result.details.get("remove_all_as_of"):
            # Google's replace: the members last added before this time are removed once the
            # ingest requests have been processed (`sync.confirm`).
            self.metrics.details["remove_all_as_of"] = result.details["remove_all_as_of"]
        pks = current.member_pks
        failed = sorted({pks[int(i)] for i in result.details.get("failed_users", [])})
        if failed:
            # Unusable members are in `users` too (no record: failed): they are not refused.
            unusable = set(pks.to_list()) - set(current.keys.column("owner").unique().to_list())
            refused = [pk for pk in failed if pk not in unusable]
            self.tally.refused_adds(pl.Series(refused, dtype=pl.Int64))
        now = self.service.clock()
        sent_all = self.progress.riding(len(users))
        with self.checkpoints.fenced() as session:
            if sent_all is not None:
                sent_all.apply(SyncJobRepository(session, self.target.tenant_id).get(self.job.id))
            snapshot = SnapshotRepository(session, self.target.tenant_id)
            snapshot.clear(self.target.audience_id)
            for part in current.records():
                kept = part.filter(~pl.col("owner").is_in(failed)).unique("record_hash")
                snapshot.confirm_records(self.target.audience_id, now, kept)
        # `users` is every member, the unusable ones too (they have no record, so the
        # connector counts them failed): they are in `profiles_failed` once, from `diagnose`.
        sent = max(0, result.sent - self.tally.figures.unusable)
        self.tally.count_members(sent=sent, added=min(result.accepted, sent))

    def preview_replace(self, current: Current) -> None:
        """A dry run of the platform's own replace: what it would add, and remove, of what the
        snapshot holds (the plan of an update, which a replace becomes by difference)."""
        factory, tenant_id = self.service.factory, self.target.tenant_id
        plan = plan_against_snapshot(factory, tenant_id, self.target.audience_id, current.keys)
        adds = first_of_each(plan.adds)
        self.metrics.details["plan"].update(plan_summary(plan, adds, "snapshot"))

    async def delete(self) -> None:
        if self.job.dry_run:
            return
        if self.target.platform_audience_id:
            await self.connector.delete_audience(self.target.platform_audience_id)
        with self.checkpoints.fenced() as session:
            audience = AudienceRepository(session, self.target.tenant_id).get(
                self.target.audience_id
            )
            audience.is_active = False
            audience.auto_sync = False
            audience.next_sync_at = None
            SnapshotRepository(session, self.target.tenant_id).clear(self.target.audience_id)
            MemberStateRepository(session, self.target.tenant_id).clear(self.target.audience_id)

    async def refresh(self, platform_id: str, current: Current) -> None:
        """Step 8: the platform's size and match rate on the audience; schedule the next run."""
        info = await self.connector.get_audience_info(platform_id)
        matched = info.get("size")
        usable = current.members - current.unusable_members
        if matched is not None:
            synced = max(0, usable - self.tally.figures.refused)
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
        with self.checkpoints.fenced() as session:
            audience = AudienceRepository(session, self.target.tenant_id).get(
                self.target.audience_id
            )
            audience.platform_size = int(matched) if matched is not None else None
            audience.matched_size = audience.platform_size
            audience.match_rate = rate
            if audience.auto_sync:
                audience.next_sync_at = next_sync_at(now, audience.sync_interval_hours)
        # Kept on the job too: the dashboard charts the audience's size, one point per sync.
        size = int(matched) if matched is not None else None
        self.metrics.details["platform_size"] = self.metrics.details["matched_size"] = size
