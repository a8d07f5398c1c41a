"""`GET /sync-jobs/{id}` carries the job's live progress, with its rate and ETA."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import httpx
from fastapi import FastAPI
from sqlalchemy.orm import Session, sessionmaker

from audience_sync.domain.models import SyncOperation
from audience_sync.store.db import transaction
from audience_sync.store.repositories import SyncJobRepository
from audience_sync.sync.jobs import Trigger, start_job, trigger_job

from .conftest import Api, Tenant, context

PROGRESS_FIELDS = {
    "phase", "done", "total", "unit", "started_at", "updated_at", "rate_per_second",
    "eta_seconds",
}  # fmt: skip


async def test_a_running_job_shows_its_phase_count_rate_and_eta(
    client: httpx.AsyncClient, alice: Tenant, factory: sessionmaker[Session]
) -> None:
    api = Api(client, alice)
    segment_id = await api.segment(profiles=3)
    await api.connect("meta")
    made = await api.audience(segment_id, sync_now=False)
    now = datetime.now(UTC)
    job, _ = trigger_job(
        factory, alice.id, uuid.UUID(made["id"]), Trigger(SyncOperation.CREATE), now
    )
    queued = (await api.call("GET", f"/api/v1/sync-jobs/{job.id}")).json()
    assert queued["progress"] is None
    assert start_job(factory, alice.id, job.id, now) is not None
    with transaction(factory) as session:  # as the worker writes it, from its own process
        running = SyncJobRepository(session, alice.id).get(job.id)
        running.progress_phase, running.progress_unit = "uploading", "records"
        running.progress_done, running.progress_total = 1_000, 3_000
        running.progress_started_at = now - timedelta(seconds=10)
        running.progress_at = now
    shown = (await api.call("GET", f"/api/v1/sync-jobs/{job.id}")).json()["progress"]
    assert set(shown) == PROGRESS_FIELDS
    assert (shown["phase"], shown["unit"], shown["done"], shown["total"]) == (
        "uploading",
        "records",
        1_000,
        3_000,
    )
    assert 50 < shown["rate_per_second"] <= 100  # 1,000 in the 10 s (and the request's time)
    assert 20 <= shown["eta_seconds"] <= 40
    listed = (await api.call("GET", f"/api/v1/audiences/{made['id']}/jobs")).json()
    assert listed[0]["progress"]["phase"] == "uploading"


async def test_a_finished_sync_keeps_its_last_phase_without_an_eta(
    client: httpx.AsyncClient, alice: Tenant, app: FastAPI
) -> None:
    api = Api(client, alice)
    segment_id = await api.segment(profiles=12)
    await api.connect("meta")
    made = await api.audience(segment_id)
    await context(app).launcher.drain()
    done = (await api.call("GET", f"/api/v1/sync-jobs/{made['sync_job']['id']}")).json()
    assert done["status"] == "completed", done["error_message"]
    assert done["progress"]["phase"] == "finishing"
    assert done["progress"]["eta_seconds"] is None
