"""The Job page: progress while it runs, then figures, failures in plain words, and the values it
dropped (masked), listed a page at a time and downloadable as CSV."""

from __future__ import annotations

import csv
import io
import re
import uuid
from datetime import UTC, datetime
from types import SimpleNamespace
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy.orm import Session, sessionmaker

from audience_sync.dashboard.pages import jobs as job_page
from audience_sync.domain.models import SyncOperation, SyncStatus
from audience_sync.services import jobs as services_jobs
from audience_sync.store.db import transaction
from audience_sync.store.repositories import SyncJobRepository
from audience_sync.sync.jobs import Trigger, trigger_job

from ..conftest import Api, Tenant, context, profile_rows
from .conftest import Browser

# SQLite only (the pages run no query of their own here).
sqlite_only = pytest.mark.parametrize("engine", ["sqlite"], indirect=True)

RAW = ["=jane.doe.example.com", "+999 1234 5678", "broken-email-2"]


async def synced(client: httpx.AsyncClient, tenant: Tenant, app: FastAPI) -> tuple[Api, str]:
    """A Meta audience of 12 members, three with values the sync drops; its first job's id."""
    api = Api(client, tenant)
    made = await api.call("POST", "/api/v1/segments", json={"name": "VIP"})
    segment_id = made.json()["id"]
    rows: list[dict[str, Any]] = profile_rows(12)
    rows[0]["email"] = RAW[0]
    rows[1]["phone"] = RAW[1]
    rows[2]["email"] = RAW[2]
    loaded = await api.call(
        "POST", "/api/v1/profiles:batch", json={"profiles": rows, "segment_id": segment_id}
    )
    assert loaded.status_code == 200, loaded.text
    await api.connect("meta")
    audience = await api.audience(segment_id)
    await context(app).launcher.drain()
    return api, audience["sync_job"]["id"]


def raw_identifiers() -> list[str]:
    """Every raw email and phone of the test profiles, as given and as normalized."""
    found = list(RAW)
    for row in profile_rows(12):
        found += [row["email"].strip(), row["email"].strip().lower()]
        if row["phone"]:
            found.append(row["phone"])
    return found


@sqlite_only
async def test_a_completed_job_shows_its_figures_and_masked_drops_only(
    client: httpx.AsyncClient, app: FastAPI, alice: Tenant, alice_browser: Browser
) -> None:
    _, job_id = await synced(client, alice, app)
    page = await alice_browser.get(f"/jobs/{job_id}")
    assert page.status_code == 200
    html = page.text
    assert re.search(r'data-testid="job-status">completed<', html)
    assert re.search(r'data-testid="job-added">11<', html)
    assert 'data-testid="job-platform-size"' in html
    assert 'data-testid="job-progress"' not in html  # ended: no polling
    assert len(re.findall(r'data-testid="diagnostic-count"', html)) == 2
    assert len(re.findall(r'data-testid="diagnostic-row"', html)) == 3
    assert "b***2" in html
    assert "••• ••78" in html
    for raw in raw_identifiers():
        assert raw not in html, raw
    assert f'href="/jobs/{job_id}/diagnostics.csv"' in html
    assert 'data-testid="cancel-job"' not in html
    ended = await alice_browser.post(f"/jobs/{job_id}/cancel")
    assert ended.headers["location"] == f"/jobs/{job_id}?done=ended"
    assert "already ended" in (await alice_browser.get(ended.headers["location"])).text


@sqlite_only
async def test_drops_filter_by_reason_and_come_a_page_at_a_time(
    client: httpx.AsyncClient,
    app: FastAPI,
    alice: Tenant,
    alice_browser: Browser,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    _, job_id = await synced(client, alice, app)
    phones = (await alice_browser.get(f"/jobs/{job_id}?reason=invalid_phone")).text
    assert re.findall(r'data-testid="diagnostic-row"><th scope="row">(\w+)<', phones) == ["P1"]
    monkeypatch.setattr(job_page, "PAGE_SIZE", 2)
    first = (await alice_browser.get(f"/jobs/{job_id}")).text
    assert re.findall(r'data-testid="diagnostic-row"><th scope="row">(\w+)<', first) == [
        "P1",
        "P0",
    ]
    assert f'href="/jobs/{job_id}?offset=2" data-testid="diagnostics-next"' in first
    rest = (await alice_browser.get(f"/jobs/{job_id}?offset=2")).text
    assert re.findall(r'data-testid="diagnostic-row"><th scope="row">(\w+)<', rest) == ["P2"]
    assert 'data-testid="diagnostics-next"' not in rest


@sqlite_only
async def test_the_csv_is_the_apis_and_needs_the_session_of_the_tenant(
    client: httpx.AsyncClient,
    app: FastAPI,
    alice: Tenant,
    alice_browser: Browser,
    bob_browser: Browser,
) -> None:
    api, job_id = await synced(client, alice, app)
    mine = await alice_browser.get(f"/jobs/{job_id}/diagnostics.csv")
    assert mine.status_code == 200
    assert mine.headers["content-type"].startswith("text/csv")
    assert "attachment" in mine.headers["content-disposition"]
    from_api = await api.call("GET", f"/api/v1/sync-jobs/{job_id}/diagnostics?format=csv")
    assert mine.text == from_api.text
    rows = list(csv.reader(io.StringIO(mine.text)))
    assert rows[0] == ["profile_id", "field", "reason", "masked_value"]
    assert len(rows) == 4
    for raw in RAW:
        assert raw not in mine.text
    emails = await alice_browser.get(f"/jobs/{job_id}/diagnostics.csv?reason=invalid_email")
    assert len(list(csv.reader(io.StringIO(emails.text)))) == 3
    assert (await bob_browser.get(f"/jobs/{job_id}/diagnostics.csv")).status_code == 404
    alice_browser.client.cookies.clear()
    assert (await alice_browser.get(f"/jobs/{job_id}/diagnostics.csv")).status_code == 303


@sqlite_only
async def test_a_pending_job_polls_its_progress_until_it_ends_then_swaps_the_page_in(
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
    page = (await alice_browser.get(f"/jobs/{queued.id}")).text
    assert re.search(r'data-testid="job-status">pending<', page)
    assert f'hx-get="/jobs/{queued.id}/progress" hx-trigger="every 1s"' in page
    assert "<progress" in page
    assert 'data-testid="cancel-job"' in page
    polled = await alice_browser.get(f"/jobs/{queued.id}/progress", headers={"HX-Request": "true"})
    assert 'hx-trigger="every 1s"' in polled.text
    assert "hx-retarget" not in polled.headers
    assert 'id="job-status" hx-swap-oob="true"' in polled.text  # the badge follows, too

    assert (await alice_browser.client.post(f"/jobs/{queued.id}/cancel")).status_code == 403
    cancelled = await alice_browser.post(f"/jobs/{queued.id}/cancel")
    assert cancelled.headers["location"] == f"/jobs/{queued.id}?done=cancel"
    ended = await alice_browser.get(f"/jobs/{queued.id}/progress", headers={"HX-Request": "true"})
    # The last answer is the whole page, swapped into <main> in place: no reload.
    assert (ended.headers["hx-retarget"], ended.headers["hx-reselect"]) == ("#main", "#main")
    assert re.search(r'data-testid="job-status">cancelled<', ended.text)
    assert "hx-trigger" not in ended.text  # the last answer stops the polling
    final = (await alice_browser.get(f"/jobs/{queued.id}")).text
    assert re.search(r'data-testid="job-status">cancelled<', final)
    assert "hx-trigger" not in final  # the reloaded page polls no more: no loop


@sqlite_only
async def test_the_progress_block_reads_services_progress_of_once_it_exists(
    client: httpx.AsyncClient,
    app: FastAPI,
    alice: Tenant,
    alice_browser: Browser,
    factory: sessionmaker[Session],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    api = Api(client, alice)
    segment_id = await api.segment(profiles=3)
    await api.connect("meta")
    made = await api.audience(segment_id, sync_now=False)
    queued, _ = trigger_job(
        factory, alice.id, uuid.UUID(made["id"]), Trigger(SyncOperation.CREATE), datetime.now(UTC)
    )
    now = datetime.now(UTC)
    figures = SimpleNamespace(
        phase="Sending adds",
        done=500,
        total=1200,
        unit="members",
        started_at=now,
        updated_at=now,
        rate_per_second=250.0,
        eta_seconds=2.8,
    )
    monkeypatch.setattr(services_jobs, "progress_of", lambda job, now: figures, raising=False)
    block = (await alice_browser.get(f"/jobs/{queued.id}/progress")).text
    assert re.search(r'data-testid="progress-phase">Sending adds<', block)
    assert "500 of 1,200 members" in block
    assert 'value="500" max="1200"' in block
    assert "250.0 members a second" in block
    assert "about 2.8 s left" in block


@sqlite_only
async def test_a_failed_job_says_why_and_what_to_do(
    client: httpx.AsyncClient,
    app: FastAPI,
    alice: Tenant,
    alice_browser: Browser,
    factory: sessionmaker[Session],
) -> None:
    _, job_id = await synced(client, alice, app)
    message = (
        "Meta access token expired or was revoked — reconnect the Meta account "
        "(`audience-sync connections set meta …` or `PUT /api/v1/connections/meta`)."
    )
    with transaction(factory) as session:
        job = SyncJobRepository(session, alice.id).get(uuid.UUID(job_id))
        job.status, job.error_message = SyncStatus.FAILED, message
    page = (await alice_browser.get(f"/jobs/{job_id}")).text
    assert re.search(r'data-testid="job-status">failed<', page)
    assert 'data-testid="job-failure"' in page
    assert (
        'href="/connections" data-testid="failure-action">Reconnect on the Connections page' in page
    )


@sqlite_only
async def test_another_tenants_job_is_a_404_page(
    client: httpx.AsyncClient, app: FastAPI, alice: Tenant, bob_browser: Browser
) -> None:
    _, job_id = await synced(client, alice, app)
    for url in (f"/jobs/{job_id}", f"/jobs/{job_id}/progress"):
        answer = await bob_browser.get(url)
        assert answer.status_code == 404, url
        assert "belongs to another account" in answer.text
    assert (await bob_browser.post(f"/jobs/{job_id}/cancel")).status_code == 404
    assert (await bob_browser.get("/jobs/12")).status_code == 404


AUDIENCE = uuid.UUID(int=7)


@pytest.mark.parametrize(
    ("message", "link", "words"),
    [
        ("Meta access token expired or was revoked — reconnect …", "/connections", "Reconnect"),
        ("Meta is not connected; connect it first.", "/connections", "Reconnect"),
        ("Meta is rate limiting requests; the sync will retry automatically.", None, "slow down"),
        (
            "Meta refused the request: Update refused: it would remove 8 of 16 records (50%, "
            "above the 10% guard rail).",
            None,
            "guard rail",
        ),
        ("Replace refused: the segment has no member with a usable identifier", None, "guard"),
        ("Could not connect to Meta at sandbox: check …", "/connections", "could not be reached"),
        ("Something else entirely.", None, "Fix what the message says"),
        (None, None, "Fix what the message says"),
    ],
)
def test_failure_help_says_what_to_do(message: str | None, link: str | None, words: str) -> None:
    found = job_page.failure_help(message, AUDIENCE)
    assert found.link == (link or f"/audiences/{AUDIENCE}")
    assert words in found.text
