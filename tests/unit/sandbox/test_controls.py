"""The `/_sandbox` controls: audiences, match rate, request log, faults, rate limits, reset."""

from __future__ import annotations

import time

import httpx
import pytest
from fastapi import FastAPI

from audience_sync.sandbox.app import ConnectionDroppedError
from audience_sync.sandbox.controls import identifiers_digest

from .conftest import audiences, digests

SNAP = "/snapchat/v1/adaccounts/acc/segments"
AUTH = {"Authorization": "Bearer sandbox-token"}


async def snap_segment(client: httpx.AsyncClient) -> str:
    body = {"segments": [{"name": "s", "retention_in_days": 30}]}
    response = await client.post(SNAP, json=body, headers=AUTH)
    return str(response.json()["segments"][0]["segment"]["id"])


async def fault(client: httpx.AsyncClient, **spec: object) -> None:
    response = await client.post("/_sandbox/faults", json=spec)
    assert response.status_code == 201, response.text


async def test_the_match_rate_is_settable_per_audience(client: httpx.AsyncClient) -> None:
    segment_id = await snap_segment(client)
    body = {"users": [{"schema": ["EMAIL_SHA256"], "data": [[d] for d in digests(1000)]}]}
    await client.post(f"/snapchat/v1/segments/{segment_id}/users", json=body, headers=AUTH)
    [held] = await audiences(client, "snapchat")
    assert 650 < int(held["matched"]) < 750
    patched = await client.patch(
        f"/_sandbox/audiences/snapchat/{segment_id}", json={"match_rate": 0.25}
    )
    assert 200 < patched.json()["matched"] < 300
    full = await client.patch(
        f"/_sandbox/audiences/snapchat/{segment_id}", json={"match_rate": 1.0}
    )
    assert full.json()["matched"] == 1000


async def test_the_digest_stands_for_the_identifiers_listed(client: httpx.AsyncClient) -> None:
    segment_id = await snap_segment(client)
    body = {"users": [{"schema": ["EMAIL_SHA256"], "data": [[d] for d in digests(20)]}]}
    await client.post(f"/snapchat/v1/segments/{segment_id}/users", json=body, headers=AUTH)
    params = {"platform": "snapchat", "digest": "true"}
    [held] = (await client.get("/_sandbox/audiences", params=params)).json()
    assert held["identifiers_sha256"] == identifiers_digest(held["identifiers"])
    assert held["identifiers"] == {"EMAIL_SHA256": sorted(digests(20))}
    params["identifiers"] = "false"
    [brief] = (await client.get("/_sandbox/audiences", params=params)).json()
    assert "identifiers" not in brief
    assert brief["identifiers_sha256"] == held["identifiers_sha256"]


async def test_the_request_log_records_method_path_status_and_timing(
    client: httpx.AsyncClient,
) -> None:
    await client.get(SNAP, headers=AUTH)
    await client.get(SNAP)
    log = (await client.get("/_sandbox/requests", params={"platform": "snapchat"})).json()
    assert [(e["method"], e["path"], e["status"]) for e in log] == [
        ("GET", SNAP, 200),
        ("GET", SNAP, 401),
    ]
    assert all(e["duration_ms"] >= 0 for e in log)


async def test_a_server_error_fault_answers_the_next_n_matching_requests(
    client: httpx.AsyncClient,
) -> None:
    await fault(client, kind="server_error", count=2, platform="snapchat", status=503)
    statuses = [(await client.get(SNAP, headers=AUTH)).status_code for _ in range(3)]
    assert statuses == [503, 503, 200]


async def test_a_rate_limit_fault_carries_retry_after(client: httpx.AsyncClient) -> None:
    await fault(client, kind="rate_limit", platform="google", retry_after=7)
    response = await client.post("/google/v1/audienceMembers:ingest", json={}, headers=AUTH)
    assert response.status_code == 429
    assert response.headers["Retry-After"] == "7"
    assert response.json()["error"]["status"] == "RESOURCE_EXHAUSTED"


async def test_a_rate_limit_fault_on_tiktok_is_40100_in_http_200(client: httpx.AsyncClient) -> None:
    await fault(client, kind="rate_limit", platform="tiktok")
    response = await client.get("/tiktok/open_api/v1.3/dmp/custom_audience/list/")
    assert response.status_code == 200
    assert response.json()["code"] == 40100


async def test_an_expired_token_fault_uses_the_platform_auth_error(
    client: httpx.AsyncClient,
) -> None:
    await fault(client, kind="expired_token", path="/meta/")
    response = await client.get(
        "/meta/v26.0/act_1/customaudiences", params={"access_token": "sandbox-token"}
    )
    assert response.json()["error"]["code"] == 190


async def test_faults_match_only_their_path(client: httpx.AsyncClient) -> None:
    await fault(client, kind="server_error", path=r"/segments/\d+/users$")
    assert (await client.get(SNAP, headers=AUTH)).status_code == 200
    assert len((await client.get("/_sandbox/faults")).json()) == 1


async def test_a_timeout_fault_processes_the_request_and_holds_the_answer(
    client: httpx.AsyncClient,
) -> None:
    await fault(client, kind="timeout", platform="snapchat", delay_seconds=0.2)
    started = time.perf_counter()
    response = await client.post(
        SNAP, json={"segments": [{"name": "s", "retention_in_days": 1}]}, headers=AUTH
    )
    assert time.perf_counter() - started >= 0.2
    assert response.status_code == 200
    assert len(await audiences(client, "snapchat")) == 1, "the write landed"


async def test_a_latency_fault_delays_matching_requests(client: httpx.AsyncClient) -> None:
    await fault(client, kind="latency", count=1, delay_seconds=0.1)
    started = time.perf_counter()
    await client.get(SNAP, headers=AUTH)
    assert time.perf_counter() - started >= 0.1


async def test_a_dropped_connection_raises_in_process(client: httpx.AsyncClient) -> None:
    await fault(client, kind="drop_connection", platform="snapchat")
    with pytest.raises(ConnectionDroppedError):
        await client.get(SNAP, headers=AUTH)
    assert (await client.get(SNAP, headers=AUTH)).status_code == 200


async def test_reset_forgets_audiences_faults_and_limits(client: httpx.AsyncClient) -> None:
    await snap_segment(client)
    await fault(client, kind="server_error", count=None)
    await client.put("/_sandbox/rate_limits", json={"family": "snapchat", "limit": None})
    assert (await client.post("/_sandbox/reset")).json() == {"reset": True}
    assert await audiences(client, "snapchat") == []
    assert (await client.get("/_sandbox/faults")).json() == []
    assert (await client.get("/_sandbox/rate_limits")).json()["snapchat"]["requests"] == 10


async def test_unknown_platform_paths_get_the_platform_not_found(client: httpx.AsyncClient) -> None:
    response = await client.get("/snapchat/v1/nothing-here", headers=AUTH)
    assert response.status_code == 404
    assert response.json()["request_status"] == "ERROR"
    meta = await client.get("/meta/v26.0/a/b/c")
    assert meta.json()["error"]["code"] == 2500


async def test_a_bad_fault_is_refused(client: httpx.AsyncClient) -> None:
    response = await client.post("/_sandbox/faults", json={"kind": "gremlins"})
    assert response.status_code == 422


async def test_faults_and_the_log_apply_when_the_sandbox_is_mounted_under_a_path(
    app: FastAPI,
) -> None:
    """`serve --demo` mounts the sandbox at /sandbox: its requests are still platform requests
    (Starlette keeps the full path in `path`, the mount point in `root_path`)."""
    outer = FastAPI()
    outer.mount("/sandbox", app)
    transport = httpx.ASGITransport(app=outer)
    async with httpx.AsyncClient(transport=transport, base_url="http://api/sandbox") as client:
        await fault(client, kind="expired_token", platform="snapchat")
        assert (await client.get(SNAP, headers=AUTH)).status_code == 401
        assert (await client.get(SNAP, headers=AUTH)).status_code == 200
        log = (await client.get("/_sandbox/requests", params={"platform": "snapchat"})).json()
    assert [(e["path"], e["status"], e["fault"]) for e in log] == [
        (SNAP, 401, "expired_token"),
        (SNAP, 200, None),
    ]
