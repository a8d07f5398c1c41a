"""The Audience page: figures, charts over time, its jobs, and every action through its forms."""

from __future__ import annotations

import json
import re
import uuid
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy.orm import Session, sessionmaker

from audience_sync.config import Settings
from audience_sync.domain.models import SyncOperation
from audience_sync.store.db import transaction
from audience_sync.store.repositories import SyncJobRepository
from audience_sync.sync.jobs import Trigger, trigger_job

from ..conftest import Api, Tenant, context
from .conftest import Browser

# SQLite only, but for the query new here (the charts' points), which runs on both engines.
sqlite_only = pytest.mark.parametrize("engine", ["sqlite"], indirect=True)


async def synced(client: httpx.AsyncClient, app: FastAPI, tenant: Tenant, **fields: Any) -> Api:
    """A Meta audience of 12 members whose first sync (create) completed."""
    api = Api(client, tenant)
    api.segment_id = await api.segment(profiles=12)  # type: ignore[attr-defined]
    await api.connect("meta")
    api.made = await api.audience(api.segment_id, **fields)  # type: ignore[attr-defined]
    await context(app).launcher.drain()
    return api


def chart(html: str, name: str) -> dict[str, Any]:
    found = re.search(rf'<script type="application/json" id="{name}">(.*?)</script>', html, re.S)
    assert found is not None, f"no data for {name}"
    data: dict[str, Any] = json.loads(found.group(1))
    return data


def job_of(answer: httpx.Response) -> str:
    assert answer.status_code == 303, answer.text
    location = answer.headers["location"]
    assert location.startswith("/jobs/"), location
    return location.removeprefix("/jobs/")


async def test_the_page_shows_figures_charts_and_jobs_one_point_per_sync(
    client: httpx.AsyncClient, app: FastAPI, alice: Tenant, alice_browser: Browser
) -> None:
    api = await synced(client, app, alice)
    url = f"/audiences/{api.made['id']}"  # type: ignore[attr-defined]
    job_id = job_of(await alice_browser.post(f"{url}/sync"))
    await context(app).launcher.drain()
    # A dry run is no point on the charts.
    job_of(await alice_browser.post(f"{url}/sync", {"dry_run": "yes"}))
    await context(app).launcher.drain()

    page = await alice_browser.get(url)
    assert page.status_code == 200
    html = page.text
    assert 'data-testid="chart-size"' in html
    assert 'data-testid="chart-match-rate"' in html
    size = chart(html, "chart-size-data")
    assert len(size["labels"]) == 2
    assert [d["label"] for d in size["datasets"]] == ["Platform size", "Matched size"]
    assert all(isinstance(v, int) for v in size["datasets"][0]["data"])
    rate = chart(html, "chart-match-rate-data")
    assert rate["max"] == 100
    assert all(0 <= v <= 100 for v in rate["datasets"][0]["data"])
    assert 'data-testid="chart-table"' in html  # the charts' figures for screen readers
    rows = re.findall(r'data-testid="job-row" data-job-id="([^"]+)"', html)
    assert len(rows) == 3
    assert rows[1] == job_id
    assert "update" in html
    assert "(dry run)" in html
    assert f'href="/jobs/{job_id}"' in html
    assert 'href="/segments"' in html
    assert '<span class="state state-healthy" data-testid="audience-state">healthy</span>' in html
    assert "every 24 h" in html


@sqlite_only
async def test_sync_now_and_dry_run_open_the_new_job(
    client: httpx.AsyncClient, app: FastAPI, alice: Tenant, alice_browser: Browser
) -> None:
    api = await synced(client, app, alice)
    segment_id = api.segment_id  # type: ignore[attr-defined]
    await api.call("POST", f"/api/v1/segments/{segment_id}/members", json={"remove": ["P1", "P2"]})
    url = f"/audiences/{api.made['id']}"  # type: ignore[attr-defined]
    job_id = job_of(await alice_browser.post(f"{url}/sync", {"dry_run": "yes"}))
    await context(app).launcher.drain()
    done = (await api.call("GET", f"/api/v1/sync-jobs/{job_id}")).json()
    assert (done["operation"], done["dry_run"], done["triggered_by"]) == ("update", True, "manual")
    page = (await alice_browser.get(f"/jobs/{job_id}")).text
    assert 'data-testid="preview"' in page
    assert re.search(r'data-testid="preview-removes">2<', page)


@sqlite_only
async def test_a_second_sync_says_one_is_running_with_a_link(
    client: httpx.AsyncClient,
    app: FastAPI,
    alice: Tenant,
    alice_browser: Browser,
    factory: sessionmaker[Session],
) -> None:
    api = Api(client, alice)
    segment_id = await api.segment(profiles=3)
    await api.connect("meta")
    made = await api.audience(segment_id, sync_now=False)
    queued, _ = trigger_job(
        factory, alice.id, uuid.UUID(made["id"]), Trigger(SyncOperation.CREATE), datetime.now(UTC)
    )
    answer = await alice_browser.post(f"/audiences/{made['id']}/sync")
    assert answer.status_code == 303
    assert answer.headers["location"] == f"/audiences/{made['id']}?done=busy&job={queued.id}"
    page = (await alice_browser.get(answer.headers["location"])).text
    assert "A sync is already running" in page
    assert f'href="/jobs/{queued.id}" data-testid="busy-job"' in page


@sqlite_only
async def test_replace_asks_to_confirm_first(
    client: httpx.AsyncClient, app: FastAPI, alice: Tenant, alice_browser: Browser
) -> None:
    api = await synced(client, app, alice)
    url = f"/audiences/{api.made['id']}"  # type: ignore[attr-defined]
    asked = await alice_browser.post(f"{url}/sync", {"operation": "replace"})
    assert asked.status_code == 303
    assert asked.headers["location"] == f"{url}?confirm=replace#actions"
    page = (await alice_browser.get(f"{url}?confirm=replace")).text
    assert 'data-testid="confirm-replace"' in page
    listed = (await api.call("GET", f"/api/v1{url}/jobs")).json()
    assert [j["operation"] for j in listed] == ["create"]  # nothing queued yet
    job_id = job_of(
        await alice_browser.post(f"{url}/sync", {"operation": "replace", "confirmed": "yes"})
    )
    await context(app).launcher.drain()
    done = (await api.call("GET", f"/api/v1/sync-jobs/{job_id}")).json()
    assert (done["operation"], done["status"]) == ("replace", "completed")


@sqlite_only
async def test_pause_resume_and_the_interval_rule_beside_its_field(
    client: httpx.AsyncClient, app: FastAPI, alice: Tenant, alice_browser: Browser
) -> None:
    api = await synced(client, app, alice)
    url = f"/audiences/{api.made['id']}"  # type: ignore[attr-defined]
    paused = await alice_browser.post(f"{url}/auto-sync", {"auto_sync": "off"})
    assert paused.headers["location"] == f"{url}?done=paused"
    page = (await alice_browser.get(paused.headers["location"])).text
    assert "<strong>paused</strong>" in page
    assert 'data-testid="resume"' in page
    assert (await api.call("GET", f"/api/v1{url}")).json()["auto_sync"] is False
    await alice_browser.post(f"{url}/auto-sync", {"auto_sync": "on"})
    assert (await api.call("GET", f"/api/v1{url}")).json()["auto_sync"] is True

    wrong = await alice_browser.post(f"{url}/interval", {"sync_interval_hours": "5"})
    assert wrong.status_code == 422
    assert 'aria-describedby="interval-error"' in wrong.text
    assert re.search(r'data-testid="interval-error">sync_interval_hours must be one of', wrong.text)
    right = await alice_browser.post(f"{url}/interval", {"sync_interval_hours": "6"})
    assert right.headers["location"] == f"{url}?done=interval"
    assert (await api.call("GET", f"/api/v1{url}")).json()["sync_interval_hours"] == 6


@sqlite_only
async def test_delete_needs_the_name_typed(
    client: httpx.AsyncClient, app: FastAPI, alice: Tenant, alice_browser: Browser
) -> None:
    api = await synced(client, app, alice)
    url = f"/audiences/{api.made['id']}"  # type: ignore[attr-defined]
    wrong = await alice_browser.post(f"{url}/delete", {"confirm_name": "vip"})
    assert wrong.status_code == 422
    assert 'data-testid="delete-error"' in wrong.text
    assert (await api.call("GET", f"/api/v1{url}")).json()["is_active"] is True
    job_id = job_of(await alice_browser.post(f"{url}/delete", {"confirm_name": "VIP"}))
    await context(app).launcher.drain()
    done = (await api.call("GET", f"/api/v1/sync-jobs/{job_id}")).json()
    assert (done["operation"], done["status"]) == ("delete", "completed")
    page = (await alice_browser.get(url)).text
    assert 'data-testid="sync-now"' not in page  # a deleted audience has no actions
    assert ">deleted<" in page


@sqlite_only
async def test_a_guarded_sync_runs_only_once_confirmed(
    client: httpx.AsyncClient,
    app: FastAPI,
    alice: Tenant,
    alice_browser: Browser,
    settings: Settings,
) -> None:
    api = await synced(client, app, alice)
    settings.max_removal_share = 0.1
    segment_id = api.segment_id  # type: ignore[attr-defined]
    gone = [f"P{i}" for i in range(6)]
    await api.call("POST", f"/api/v1/segments/{segment_id}/members", json={"remove": gone})
    url = f"/audiences/{api.made['id']}"  # type: ignore[attr-defined]
    dry = job_of(await alice_browser.post(f"{url}/sync", {"dry_run": "yes"}))
    await context(app).launcher.drain()
    page = (await alice_browser.get(url)).text
    assert 'data-testid="guard"' in page
    assert 'data-testid="confirm-sync"' in page
    job_page = (await alice_browser.get(f"/jobs/{dry}")).text
    assert 'data-testid="confirm-sync"' in job_page  # the preview asks to confirm too

    forced = job_of(await alice_browser.post(f"{url}/sync", {"confirmed": "yes", "force": "yes"}))
    await context(app).launcher.drain()
    done = (await api.call("GET", f"/api/v1/sync-jobs/{forced}")).json()
    assert done["status"] == "completed", done["error_message"]
    assert done["profiles_removed"] > 0
    assert 'data-testid="guard"' not in (await alice_browser.get(url)).text


@sqlite_only
async def test_a_dry_runs_guard_warnings_ask_to_confirm_and_others_do_not(
    client: httpx.AsyncClient,
    app: FastAPI,
    alice: Tenant,
    alice_browser: Browser,
    factory: sessionmaker[Session],
) -> None:
    """Dry runs that complete with the guard rails' warnings (the engine's coming form)."""
    api = await synced(client, app, alice)
    url = f"/audiences/{api.made['id']}"  # type: ignore[attr-defined]
    dry = job_of(await alice_browser.post(f"{url}/sync", {"dry_run": "yes"}))
    await context(app).launcher.drain()
    warning = {"code": "mass_removal", "message": "It would remove 9 of 12 members."}
    with transaction(factory) as session:
        job = SyncJobRepository(session, alice.id).get(uuid.UUID(dry))
        job.details = {**job.details, "warnings": [warning]}
    page = (await alice_browser.get(url)).text
    assert "It would remove 9 of 12 members." in page
    assert 'data-testid="confirm-sync"' in page
    preview = (await alice_browser.get(f"/jobs/{dry}")).text
    assert 'data-testid="preview"' in preview
    assert 'data-testid="confirm-sync"' in preview
    with transaction(factory) as session:
        job = SyncJobRepository(session, alice.id).get(uuid.UUID(dry))
        job.details = {**job.details, "warnings": [{"code": "size_above_sent", "message": "x"}]}
    assert 'data-testid="confirm-sync"' not in (await alice_browser.get(url)).text


@sqlite_only
async def test_every_action_needs_the_csrf_token(
    client: httpx.AsyncClient, app: FastAPI, alice: Tenant, alice_browser: Browser
) -> None:
    api = await synced(client, app, alice)
    url = f"/audiences/{api.made['id']}"  # type: ignore[attr-defined]
    for action, data in [
        ("sync", {}),
        ("sync", {"dry_run": "yes"}),
        ("auto-sync", {"auto_sync": "off"}),
        ("interval", {"sync_interval_hours": "6"}),
        ("delete", {"confirm_name": "VIP"}),
    ]:
        answer = await alice_browser.client.post(f"{url}/{action}", data=data)
        assert answer.status_code == 403, action
    listed = (await api.call("GET", f"/api/v1{url}/jobs")).json()
    assert [j["operation"] for j in listed] == ["create"]
    audience = (await api.call("GET", f"/api/v1{url}")).json()
    assert (audience["auto_sync"], audience["sync_interval_hours"]) == (True, 24)


@sqlite_only
async def test_another_tenants_audience_is_a_404_page_and_names_are_escaped(
    client: httpx.AsyncClient,
    app: FastAPI,
    alice: Tenant,
    alice_browser: Browser,
    bob_browser: Browser,
) -> None:
    evil = "<script>alert(1)</script>"
    api = await synced(client, app, alice, platform_audience_name=evil)
    url = f"/audiences/{api.made['id']}"  # type: ignore[attr-defined]
    page = (await alice_browser.get(url)).text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert evil not in page
    stolen = await bob_browser.get(url)
    assert stolen.status_code == 404
    assert "belongs to another account" in stolen.text
    for action in ("sync", "auto-sync", "interval", "delete"):
        assert (await bob_browser.post(f"{url}/{action}")).status_code == 404, action
    assert (await alice_browser.get("/audiences/not-an-id")).status_code == 404
