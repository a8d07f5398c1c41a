"""A run told that its process is shutting down (`SyncService.stopping`) stops at its next
checkpoint and hands its job back, pending and due now (`jobs.release_job`); the next start
resumes it from the last confirmed batch (issue 17, finding 13). SQLite and PostgreSQL."""

from __future__ import annotations

import dataclasses
import threading
from typing import Any

from audience_sync.config import Settings
from audience_sync.domain.models import SyncOperation, SyncPlatform, SyncStatus
from audience_sync.store.db import transaction
from audience_sync.store.repositories import SyncJobRepository
from audience_sync.store.snapshot import SnapshotRepository
from audience_sync.sync.jobs import Trigger, trigger_job
from audience_sync.sync.runner import run_job

from .world import World, row

SNAP = SyncPlatform.SNAPCHAT
MEMBERS = 60


async def test_a_run_stopped_for_shutdown_hands_its_job_back_and_resumes(world: World) -> None:
    world.load([row(i) for i in range(MEMBERS)])
    audience = world.audience(SNAP)
    stopping = threading.Event()
    build, uploads = world.connect, [0]

    def connect(target: Any) -> Any:
        connector = build(target)
        upload = connector.upload

        async def counted(*args: Any) -> Any:
            result = await upload(*args)
            uploads[0] += 1
            if uploads[0] == 2:
                stopping.set()  # SIGTERM to the worker, as the second chunk is sent
            return result

        connector.upload = counted
        return connector

    # Batches of 1 record: a checkpoint every 10 to 25 records.
    world.service = dataclasses.replace(
        world.service,
        connect=connect,
        settings=Settings(max_batch_size=1),
        stopping=stopping.is_set,
    )
    job, _ = trigger_job(
        world.factory, world.tenant_id, audience, Trigger(SyncOperation.CREATE), world.clock
    )
    released = await run_job(world.service, world.tenant_id, job.id)
    assert released is not None
    assert released.status is SyncStatus.PENDING
    assert released.next_retry_at == world.clock  # due now: no wait for the lease reaper
    assert released.attempt == 0  # a shutdown uses up none of the job's retries
    (attempt,) = released.details["released"]
    with transaction(world.factory) as session:
        confirmed = SnapshotRepository(session, world.tenant_id).count(audience)
    held = await world.held(SNAP, audience)
    assert 0 < confirmed == sum(map(len, held.values()))  # every accepted chunk checkpointed
    assert 0 < attempt["profiles_added"] < MEMBERS

    stopping.clear()
    done = await run_job(world.service, world.tenant_id, job.id)  # the same job, resumed
    assert done is not None
    assert done.status is SyncStatus.COMPLETED, done.error_message
    assert attempt["profiles_added"] + done.profiles_added == MEMBERS
    assert done.details["released"] == [attempt]
    assert await world.held(SNAP, audience) == world.expected(SNAP)
    with transaction(world.factory) as session:
        jobs = SyncJobRepository(session, world.tenant_id).for_audience(audience)
    assert [j.status for j in jobs] == [SyncStatus.COMPLETED]
