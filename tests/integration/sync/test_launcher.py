"""One launcher per process: the API's launches and the scheduler's ticks share one concurrency
limit, and a tick returns (and the scheduler sleeps) while the syncs it started still run."""

from __future__ import annotations

import asyncio
import dataclasses
import uuid

import httpx
import pytest

from audience_sync.api import create_app
from audience_sync.config import Settings
from audience_sync.domain.models import SyncPlatform
from audience_sync.scheduler import tick as scheduler_tick
from audience_sync.scheduler.tick import run_scheduler, tick
from audience_sync.services import tenants
from audience_sync.services.launcher import InProcessLauncher
from audience_sync.sync.context import SyncService

from .world import World, row

SNAP = SyncPlatform.SNAPCHAT


class HeldSyncs:
    """A stand-in for `run_job` that holds every sync until released, counting how many run
    at once."""

    def __init__(self) -> None:
        self.now = 0
        self.peak = 0
        self.started: list[uuid.UUID] = []
        self.release = asyncio.Event()

    async def __call__(self, service: SyncService, tenant_id: int, job_id: uuid.UUID) -> None:
        self.now += 1
        self.peak = max(self.peak, self.now)
        self.started.append(job_id)
        try:
            await self.release.wait()
        finally:
            self.now -= 1


async def settle() -> None:
    """Let every task that can run, run (the held syncs then wait for their release)."""
    for _ in range(20):
        await asyncio.sleep(0.01)


async def test_api_launches_and_ticks_share_one_concurrency_limit(world: World) -> None:
    world.load([row(i) for i in range(5)])
    by_api = [world.audience(SNAP) for _ in range(2)]
    for _ in range(2):  # due now: the tick's
        world.audience(SNAP, next_sync_at=world.clock)
    syncs = HeldSyncs()
    launcher = InProcessLauncher(world.service, limit=2, run=syncs)
    app = create_app(world.service.settings, world.engine, world.service, launcher=launcher)
    key = tenants.issue_key(world.factory, "default")
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://api") as client:
        for audience in by_api:
            asked = await client.post(
                f"/api/v1/audiences/{audience}/sync",
                json={},
                headers={"Authorization": f"Bearer {key}"},
            )
            assert asked.status_code == 202, asked.text
    report = await tick(world.service, launcher)
    await settle()
    assert report.launched == 2  # the due audiences' jobs (the API's were launched already)
    assert len(launcher.tasks) == 4
    assert (syncs.peak, launcher.running) == (2, 2)
    syncs.release.set()
    await launcher.drain()
    assert (len(syncs.started), syncs.peak) == (4, 2)


async def test_a_tick_returns_while_the_syncs_it_started_run(world: World) -> None:
    world.load([row(i) for i in range(5)])
    world.audience(SNAP, next_sync_at=world.clock)
    syncs = HeldSyncs()
    launcher = InProcessLauncher(world.service, run=syncs)
    report = await asyncio.wait_for(tick(world.service, launcher), timeout=10)
    await settle()
    assert (report.queued, report.launched, launcher.running) == (1, 1, 1)
    syncs.release.set()
    await launcher.drain()
    assert launcher.running == 0


async def test_the_scheduler_keeps_ticking_while_a_sync_runs(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    world.load([row(i) for i in range(5)])
    world.audience(SNAP, next_sync_at=world.clock)
    service = dataclasses.replace(world.service, settings=Settings(scheduler_tick_seconds=1))
    ticks = 0
    upkeep = scheduler_tick.upkeep

    def counted(service: SyncService) -> tuple[scheduler_tick.TickReport, list[object]]:
        nonlocal ticks
        ticks += 1
        return upkeep(service)  # type: ignore[return-value]

    monkeypatch.setattr(scheduler_tick, "upkeep", counted)
    syncs = HeldSyncs()
    launcher = InProcessLauncher(service, run=syncs)
    stop = asyncio.Event()
    scheduler = asyncio.create_task(run_scheduler(service, stop, launcher))
    await asyncio.sleep(2.5)  # a tick at 0 s, 1 s and 2 s, with the first sync held all along
    assert (launcher.running, len(syncs.started)) == (1, 1)
    assert ticks >= 2
    stop.set()
    syncs.release.set()
    await asyncio.wait_for(scheduler, timeout=5)
    await launcher.drain()
