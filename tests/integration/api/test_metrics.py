"""`/metrics`: what every process's syncs did, read from the database at scrape time."""

from __future__ import annotations

import httpx
from fastapi import FastAPI
from prometheus_client.parser import text_string_to_metric_families

from .conftest import Api, Tenant, context


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


async def test_metrics_count_syncs_profiles_and_durations(
    client: httpx.AsyncClient, alice: Tenant, bob: Tenant, app: FastAPI
) -> None:
    for tenant in (alice, bob):
        api = Api(client, tenant)
        segment_id = await api.segment(profiles=4)
        await api.connect("meta")
        await api.audience(segment_id)
    await context(app).launcher.drain()
    response = await client.get("/metrics")  # no API key: operators scrape it
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    found = samples(response.text)
    meta = (("platform", "meta"),)
    assert found[("audience_sync_syncs_total", (*meta, ("status", "completed")))] == 2
    assert found[("audience_sync_profiles_total", (("outcome", "added"), *meta))] == 8
    assert found[("audience_sync_retries_total", meta)] == 0
    assert found[("audience_sync_sync_duration_seconds_count", meta)] == 2
    assert found[("audience_sync_sync_duration_seconds_bucket", (("le", "+Inf"), *meta))] == 2
    assert "tenant" not in response.text


async def test_metrics_of_an_empty_database(client: httpx.AsyncClient) -> None:
    response = await client.get("/metrics")
    assert response.status_code == 200
    assert "audience_sync_syncs" in response.text
