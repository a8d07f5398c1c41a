"""GET /api/v1/sync-jobs/{id}/diagnostics: which profiles' values a job dropped, masked."""

from __future__ import annotations

import csv
import io
from typing import Any

import httpx
from fastapi import FastAPI

from audience_sync.export.cells import unescape

from .conftest import Api, Tenant, context, profile_rows

RAW = ["=jane.doe.example.com", "+999 1234 5678", "broken-email-2"]


async def synced(client: httpx.AsyncClient, tenant: Tenant, app: FastAPI) -> tuple[Api, str]:
    """A Meta audience of 12 members, three with values the sync drops; its first job's id."""
    api = Api(client, tenant)
    made = await api.call("POST", "/api/v1/segments", json={"name": "VIP"})
    segment_id = made.json()["id"]
    rows: list[dict[str, Any]] = profile_rows(12)
    rows[0]["email"] = RAW[0]  # a formula, should a spreadsheet read it raw
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


async def test_a_job_lists_its_dropped_values_masked_with_exact_counts(
    client: httpx.AsyncClient, alice: Tenant, app: FastAPI
) -> None:
    api, job_id = await synced(client, alice, app)
    answer = await api.call("GET", f"/api/v1/sync-jobs/{job_id}/diagnostics")
    assert answer.status_code == 200, answer.text
    body = answer.json()
    # In the order found: a batch's phones first, then its emails.
    assert body["items"] == [
        {
            "profile_id": "P1",
            "field": "phone",
            "reason": "invalid_phone",
            "masked_value": "••• ••78",
        },
        {"profile_id": "P0", "field": "email", "reason": "invalid_email", "masked_value": "=***m"},
        {"profile_id": "P2", "field": "email", "reason": "invalid_email", "masked_value": "b***2"},
    ]
    assert body["counts"] == [
        {"field": "email", "reason": "invalid_email", "count": 2},
        {"field": "phone", "reason": "invalid_phone", "count": 1},
    ]
    assert (body["truncated"], body["max_entries"], body["total"]) == (False, 10_000, 3)
    assert body["next_offset"] is None
    for raw in RAW:
        assert raw not in answer.text


async def test_entries_come_a_page_at_a_time_and_filtered(
    client: httpx.AsyncClient, alice: Tenant, app: FastAPI
) -> None:
    api, job_id = await synced(client, alice, app)
    url = f"/api/v1/sync-jobs/{job_id}/diagnostics"
    first = (await api.call("GET", url, params={"limit": 2})).json()
    assert [e["profile_id"] for e in first["items"]] == ["P1", "P0"]
    assert (first["total"], first["next_offset"]) == (3, 2)
    rest = (await api.call("GET", url, params={"limit": 2, "offset": 2})).json()
    assert [e["profile_id"] for e in rest["items"]] == ["P2"]
    assert rest["next_offset"] is None
    phones = (await api.call("GET", url, params={"field": "phone"})).json()
    assert [e["profile_id"] for e in phones["items"]] == ["P1"]
    emails = (await api.call("GET", url, params={"reason": "invalid_email"})).json()
    assert [e["profile_id"] for e in emails["items"]] == ["P0", "P2"]
    assert emails["counts"] == first["counts"]  # the counts are the job's, whatever the filter
    none = (await api.call("GET", url, params={"reason": "zeroed_maid"})).json()
    assert (none["items"], none["total"]) == ([], 0)


async def test_the_entries_download_as_a_formula_safe_csv(
    client: httpx.AsyncClient, alice: Tenant, app: FastAPI
) -> None:
    api, job_id = await synced(client, alice, app)
    url = f"/api/v1/sync-jobs/{job_id}/diagnostics"
    by_param = await api.call("GET", url, params={"format": "csv", "limit": 1})
    by_header = await client.get(url, headers={**alice.headers, "Accept": "text/csv"})
    assert by_param.status_code == by_header.status_code == 200
    assert by_param.headers["content-type"].startswith("text/csv")
    assert "attachment" in by_param.headers["content-disposition"]
    assert by_param.text == by_header.text
    rows = list(csv.reader(io.StringIO(by_param.text)))
    assert rows[0] == ["profile_id", "field", "reason", "masked_value"]
    assert len(rows) == 4  # every entry, whatever `limit`
    assert rows[2][3] == "'=***m"  # would be a formula: quoted
    assert [unescape(c) for c in rows[2]] == ["P0", "email", "invalid_email", "=***m"]
    for raw in RAW:
        assert raw not in by_param.text


async def test_another_tenants_job_has_no_diagnostics(
    client: httpx.AsyncClient, alice: Tenant, bob: Tenant, app: FastAPI
) -> None:
    _, job_id = await synced(client, alice, app)
    answer = await Api(client, bob).call("GET", f"/api/v1/sync-jobs/{job_id}/diagnostics")
    assert answer.status_code == 404
    as_csv = await Api(client, bob).call(
        "GET", f"/api/v1/sync-jobs/{job_id}/diagnostics", params={"format": "csv"}
    )
    assert as_csv.status_code == 404
