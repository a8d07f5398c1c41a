"""Racing requests (issue 17, findings 8 and 9): one segment name asked for at once, and syncs
asked for while the audience is being deleted. On SQLite and PostgreSQL (the `engine` fixture)."""

from __future__ import annotations

import asyncio
import threading
import uuid
from collections.abc import Coroutine
from datetime import UTC, datetime
from typing import Any

import anyio
import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from audience_sync.domain.models import SyncOperation, SyncStatus
from audience_sync.exceptions import ValidationError
from audience_sync.store.db import transaction
from audience_sync.store.repositories import SyncJobRepository
from audience_sync.store.tables import AudienceSyncJob
from audience_sync.sync.jobs import Trigger, trigger_job

from .conftest import Api, Tenant, context
from .test_audiences import ready


async def test_one_segment_name_asked_for_twenty_times_at_once_is_one_201_and_409s(
    client: httpx.AsyncClient, alice: Tenant
) -> None:
    api = Api(client, alice)
    answers = await asyncio.gather(
        *(api.call("POST", "/api/v1/segments", json={"name": "Same"}) for _ in range(20))
    )
    statuses = sorted(a.status_code for a in answers)
    assert statuses == [201] + [409] * 19, [a.text for a in answers if a.status_code == 500]
    for answer in answers[1:]:
        if answer.status_code == 409:
            assert answer.json()["error"]["code"] == "segment_exists"
    assert [s["name"] for s in (await api.call("GET", "/api/v1/segments")).json()] == ["Same"]


def jobs_of(factory: sessionmaker[Session], audience_id: str) -> list[AudienceSyncJob]:
    with transaction(factory) as session:
        return list(
            session.scalars(
                select(AudienceSyncJob)
                .where(AudienceSyncJob.platform_audience_id == uuid.UUID(audience_id))
                .order_by(AudienceSyncJob.created_at)
            )
        )


async def test_a_sync_checked_before_the_delete_completed_is_not_queued_after_it(
    client: httpx.AsyncClient,
    alice: Tenant,
    app: FastAPI,
    factory: sessionmaker[Session],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The race made certain: a sync request reads the audience (active), then the whole delete
    runs and completes, then the request goes on to queue its job."""
    api, segment_id = await ready(client, alice)
    made = await api.audience(segment_id, sync_now=False)
    audience_id = uuid.UUID(made["id"])
    racer = threading.local()
    checked, deleted = threading.Event(), threading.Event()
    add = SyncJobRepository.add

    def add_after_the_delete(repo: SyncJobRepository, job: AudienceSyncJob) -> AudienceSyncJob:
        if getattr(racer, "waits", False):
            checked.set()
            assert deleted.wait(30)
        return add(repo, job)

    monkeypatch.setattr(SyncJobRepository, "add", add_after_the_delete)

    def ask_for_a_sync() -> Any:
        racer.waits = True
        try:
            return trigger_job(
                factory, alice.id, audience_id, Trigger(SyncOperation.UPDATE), datetime.now(UTC)
            )
        except ValidationError as exc:
            return exc
        finally:
            racer.waits = False

    async with anyio.create_task_group() as group:
        outcome: list[Any] = []

        async def race() -> None:
            outcome.append(await anyio.to_thread.run_sync(ask_for_a_sync))

        group.start_soon(race)
        await anyio.to_thread.run_sync(checked.wait, 30)
        deleting = await api.call("DELETE", f"/api/v1/audiences/{audience_id}")
        assert deleting.status_code == 202, deleting.text
        await context(app).launcher.drain()
        deleted.set()

    [result] = outcome
    assert isinstance(result, ValidationError), f"a job was queued after the delete: {result}"
    assert "was deleted" in result.message
    assert [(j.operation, j.status) for j in jobs_of(factory, made["id"])] == [
        (SyncOperation.DELETE, SyncStatus.COMPLETED)
    ]


async def test_racing_deletes_and_syncs_never_queue_a_job_after_the_delete(
    client: httpx.AsyncClient, alice: Tenant, app: FastAPI, factory: sessionmaker[Session]
) -> None:
    """10 deletes and 10 syncs at once, several rounds, as reported: whatever wins, no job
    starts after the delete completed (it would fail against the platform), and no answer is
    a 500."""
    api, segment_id = await ready(client, alice)
    for _ in range(4):
        made = await api.audience(segment_id, sync_now=False)
        url = f"/api/v1/audiences/{made['id']}"
        calls: list[Coroutine[Any, Any, httpx.Response | None]] = []
        for i in range(10):
            calls.append(api.call("DELETE", url))
            calls.append(api.call("POST", f"{url}/sync", json={"operation": "update"}))
            if i % 3 == 2:  # let started jobs run (and a delete complete) amid the requests
                calls.append(context(app).launcher.drain())
        answers = [a for a in await asyncio.gather(*calls) if a is not None]
        await context(app).launcher.drain()
        assert all(a.status_code < 500 for a in answers), [a.text for a in answers]
        jobs = jobs_of(factory, made["id"])
        deletes = [j for j in jobs if j.operation is SyncOperation.DELETE]
        assert len(deletes) <= 1, [(j.operation, j.status) for j in jobs]
        assert all(j.status is SyncStatus.COMPLETED for j in jobs), [
            (j.operation, j.status, j.error_message) for j in jobs
        ]
        if deletes:
            ended = deletes[0].completed_at
            assert ended is not None
            assert all(j.created_at <= ended for j in jobs), [
                (j.operation, j.created_at, ended) for j in jobs
            ]
