"""Audiences and their syncs, run in the background against the in-process sandbox."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy.orm import Session, sessionmaker

from audience_sync.domain.models import SyncOperation, SyncPlatform
from audience_sync.store.views import AUDIENCE_FIELDS, JOB_FIELDS
from audience_sync.sync.jobs import Trigger, start_job, trigger_job

from .conftest import TOKEN, Api, Tenant, context

PLATFORMS = [p.value for p in SyncPlatform]  # the built-ins, which the sandbox emulates


async def ready(
    client: httpx.AsyncClient, tenant: Tenant, platform: str = "meta"
) -> tuple[Api, str]:
    api = Api(client, tenant)
    segment_id = await api.segment(profiles=12)
    await api.connect(platform)
    return api, segment_id


@pytest.mark.parametrize("platform", PLATFORMS)
async def test_creating_an_audience_runs_its_first_sync(
    client: httpx.AsyncClient, alice: Tenant, app: FastAPI, platform: str
) -> None:
    api, segment_id = await ready(client, alice, platform)
    options = {"consent": "granted"} if platform == "google" else {}
    made = await api.audience(segment_id, platform, options=options)
    assert set(AUDIENCE_FIELDS) <= made.keys()
    job = made["sync_job"]
    assert set(JOB_FIELDS) <= job.keys()
    assert (job["operation"], job["status"], job["triggered_by"]) == ("create", "pending", "api")
    await context(app).launcher.drain()
    done = (await api.call("GET", f"/api/v1/sync-jobs/{job['id']}")).json()
    assert done["status"] == "completed", done["error_message"]
    assert done["profiles_added"] == 12
    audience = (await api.call("GET", f"/api/v1/audiences/{made['id']}")).json()
    assert audience["platform_audience_id"]
    assert audience["last_sync_status"] == "completed"
    assert audience["platform_size"] is not None


async def test_a_sync_is_accepted_and_runs_in_the_background(
    client: httpx.AsyncClient, alice: Tenant, app: FastAPI
) -> None:
    api, segment_id = await ready(client, alice)
    made = await api.audience(segment_id)
    await context(app).launcher.drain()
    url = f"/api/v1/audiences/{made['id']}/sync"
    accepted = await api.call("POST", url, json={"operation": "replace"})
    assert accepted.status_code == 202
    assert accepted.json()["status"] == "pending"
    await context(app).launcher.drain()
    jobs = (await api.call("GET", f"/api/v1/audiences/{made['id']}/jobs")).json()
    assert [(j["operation"], j["status"]) for j in jobs] == [
        ("replace", "completed"),
        ("create", "completed"),
    ]
    newest = await api.call("GET", f"/api/v1/audiences/{made['id']}/jobs?limit=1")
    assert newest.json() == jobs[:1]


async def test_a_second_sync_gets_the_active_job_back(
    client: httpx.AsyncClient, alice: Tenant, factory: sessionmaker[Session]
) -> None:
    api, segment_id = await ready(client, alice)
    made = await api.audience(segment_id, sync_now=False)
    queued, _ = trigger_job(
        factory, alice.id, uuid.UUID(made["id"]), Trigger(SyncOperation.UPDATE), datetime.now(UTC)
    )
    again = await api.call("POST", f"/api/v1/audiences/{made['id']}/sync", json={})
    assert again.status_code == 200
    assert (again.json()["id"], again.json()["status"]) == (str(queued.id), "pending")


async def test_a_dry_run_plans_without_sending(
    client: httpx.AsyncClient, alice: Tenant, app: FastAPI
) -> None:
    api, segment_id = await ready(client, alice)
    made = await api.audience(segment_id)
    await context(app).launcher.drain()
    await api.call("POST", f"/api/v1/segments/{segment_id}/members", json={"remove": ["P1", "P2"]})
    job = (
        await api.call("POST", f"/api/v1/audiences/{made['id']}/sync", json={"dry_run": True})
    ).json()
    await context(app).launcher.drain()
    done = (await api.call("GET", f"/api/v1/sync-jobs/{job['id']}")).json()
    assert done["dry_run"] is True
    assert done["status"] == "completed"
    assert done["details"]["plan"]["removes"] > 0
    assert done["profiles_removed"] == 0


async def test_health_reports_size_match_rate_and_success_rate(
    client: httpx.AsyncClient, alice: Tenant, app: FastAPI
) -> None:
    api, segment_id = await ready(client, alice)
    made = await api.audience(segment_id)
    await context(app).launcher.drain()
    health = (await api.call("GET", f"/api/v1/audiences/{made['id']}/health")).json()
    assert health["sync_success_rate"] == 1.0
    assert health["syncs_30d"] == 1
    assert health["platform_size"] is not None
    assert 0 <= health["match_rate"] <= 1


async def test_an_audience_needs_a_connection_and_a_segment_of_the_tenant(
    client: httpx.AsyncClient, alice: Tenant
) -> None:
    api = Api(client, alice)
    segment_id = await api.segment(profiles=1)
    body = {
        "segment_id": segment_id,
        "platform": "tiktok",
        "platform_audience_name": "VIP",
        "ad_account_id": "1",
    }
    unconnected = await api.call("POST", "/api/v1/audiences", json=body)
    assert unconnected.status_code == 422
    assert "tiktok is not connected" in unconnected.json()["error"]["message"]
    await api.connect("tiktok")
    body["segment_id"] = str(uuid.uuid4())
    assert (await api.call("POST", "/api/v1/audiences", json=body)).status_code == 404


async def test_patch_changes_the_schedule(
    client: httpx.AsyncClient, alice: Tenant, app: FastAPI
) -> None:
    api, segment_id = await ready(client, alice)
    made = await api.audience(segment_id, sync_now=False, sync_interval_hours=24)
    assert made["sync_job"] is None
    url = f"/api/v1/audiences/{made['id']}"
    off = (await api.call("PATCH", url, json={"auto_sync": False})).json()
    assert (off["auto_sync"], off["next_sync_at"]) == (False, None)
    weekly = (
        await api.call(
            "PATCH", url, json={"auto_sync": True, "sync_interval_hours": 168, "description": "d"}
        )
    ).json()
    assert weekly["sync_interval_hours"] == 168
    assert weekly["description"] == "d"
    gap = datetime.fromisoformat(weekly["next_sync_at"]) - datetime.now(UTC)
    assert 167 * 3600 < gap.total_seconds() <= 168 * 3600
    bad = await api.call("PATCH", url, json={"sync_interval_hours": 2})
    assert bad.json()["error"]["details"]["errors"][0]["field"] == "body.sync_interval_hours"
    null = await api.call("PATCH", url, json={"auto_sync": None})
    assert null.json()["error"]["details"]["errors"][0]["rule"] == "not_null"
    renamed = await api.call("PATCH", url, json={"platform_audience_name": "x"})
    assert renamed.json()["error"]["details"]["errors"][0]["rule"] == "extra_forbidden"


async def test_delete_deletes_on_the_platform_and_keeps_history(
    client: httpx.AsyncClient, alice: Tenant, app: FastAPI
) -> None:
    api, segment_id = await ready(client, alice)
    made = await api.audience(segment_id)
    await context(app).launcher.drain()
    url = f"/api/v1/audiences/{made['id']}"
    deleted = await api.call("DELETE", url)
    assert deleted.status_code == 202
    assert deleted.json()["operation"] == "delete"
    await context(app).launcher.drain()
    audience = (await api.call("GET", url)).json()
    assert (audience["is_active"], audience["auto_sync"], audience["last_sync_status"]) == (
        False,
        False,
        "completed",
    )
    jobs = (await api.call("GET", f"{url}/jobs")).json()
    assert [j["operation"] for j in jobs] == ["delete", "create"]
    again = await api.call("DELETE", url)
    assert again.json()["error"]["code"] == "audience_deleted"
    assert (await api.call("POST", f"{url}/sync", json={})).status_code == 422
    assert (await api.call("PATCH", url, json={"description": "x"})).status_code == 422


async def test_delete_waits_for_a_running_sync(
    client: httpx.AsyncClient, alice: Tenant, factory: sessionmaker[Session]
) -> None:
    api, segment_id = await ready(client, alice)
    made = await api.audience(segment_id, sync_now=False)
    job, _ = trigger_job(
        factory, alice.id, uuid.UUID(made["id"]), Trigger(SyncOperation.UPDATE), datetime.now(UTC)
    )
    response = await api.call("DELETE", f"/api/v1/audiences/{made['id']}")
    assert response.status_code == 409
    assert response.json()["error"]["details"] == {"job_id": str(job.id)}


async def test_a_pending_job_is_cancelled_at_once(
    client: httpx.AsyncClient, alice: Tenant, factory: sessionmaker[Session]
) -> None:
    api, segment_id = await ready(client, alice)
    made = await api.audience(segment_id, sync_now=False)
    job, _ = trigger_job(
        factory, alice.id, uuid.UUID(made["id"]), Trigger(SyncOperation.UPDATE), datetime.now(UTC)
    )
    cancelled = await api.call("POST", f"/api/v1/sync-jobs/{job.id}/cancel")
    assert cancelled.status_code == 200
    assert cancelled.json()["status"] == "cancelled"
    assert (await api.call("POST", f"/api/v1/sync-jobs/{job.id}/cancel")).json()[
        "status"
    ] == "cancelled"


async def test_a_running_job_is_asked_to_stop(
    client: httpx.AsyncClient, alice: Tenant, factory: sessionmaker[Session]
) -> None:
    api, segment_id = await ready(client, alice)
    made = await api.audience(segment_id, sync_now=False)
    job, _ = trigger_job(
        factory, alice.id, uuid.UUID(made["id"]), Trigger(SyncOperation.UPDATE), datetime.now(UTC)
    )
    start_job(factory, alice.id, job.id, datetime.now(UTC))
    cancelled = (await api.call("POST", f"/api/v1/sync-jobs/{job.id}/cancel")).json()
    assert (cancelled["status"], cancelled["cancel_requested"]) == ("running", True)


async def test_a_finished_job_cannot_be_cancelled(
    client: httpx.AsyncClient, alice: Tenant, app: FastAPI
) -> None:
    api, segment_id = await ready(client, alice)
    made = await api.audience(segment_id)
    await context(app).launcher.drain()
    response = await api.call("POST", f"/api/v1/sync-jobs/{made['sync_job']['id']}/cancel")
    assert response.status_code == 409
    assert response.json()["error"]["code"] == "job_finished"


async def test_no_token_or_raw_identifier_in_any_response(
    client: httpx.AsyncClient, alice: Tenant, app: FastAPI
) -> None:
    api, segment_id = await ready(client, alice)
    made = await api.audience(segment_id)
    await context(app).launcher.drain()
    seen = [
        await api.call("GET", f"/api/v1/audiences/{made['id']}"),
        await api.call("GET", f"/api/v1/audiences/{made['id']}/jobs"),
        await api.call("GET", "/api/v1/connections/meta"),
        await api.call("GET", f"/api/v1/audiences/{made['id']}/health"),
    ]
    for response in seen:
        assert TOKEN not in response.text
        text = response.text.lower()
        assert "example.com" not in text
        assert "(650) 555-" not in text
        assert "+1650555" not in text
