"""Auth, the one error shape, validation messages, and the unauthenticated endpoints."""

from __future__ import annotations

from datetime import UTC, datetime

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import update
from sqlalchemy.orm import Session, sessionmaker

from audience_sync.store.db import transaction
from audience_sync.store.tables import ApiKey

from .conftest import Api, Tenant

ROUTES = [
    ("GET", "/api/v1/segments"),
    ("POST", "/api/v1/segments"),
    ("GET", "/api/v1/segments/00000000-0000-4000-8000-000000000000"),
    ("POST", "/api/v1/segments/00000000-0000-4000-8000-000000000000/members"),
    ("POST", "/api/v1/profiles:batch"),
    ("POST", "/api/v1/segments/00000000-0000-4000-8000-000000000000/export"),
    ("GET", "/api/v1/connections/meta"),
    ("PUT", "/api/v1/connections/meta"),
    ("DELETE", "/api/v1/connections/meta"),
    ("GET", "/api/v1/audiences"),
    ("POST", "/api/v1/audiences"),
    ("GET", "/api/v1/audiences/00000000-0000-4000-8000-000000000000"),
    ("PATCH", "/api/v1/audiences/00000000-0000-4000-8000-000000000000"),
    ("DELETE", "/api/v1/audiences/00000000-0000-4000-8000-000000000000"),
    ("POST", "/api/v1/audiences/00000000-0000-4000-8000-000000000000/sync"),
    ("GET", "/api/v1/audiences/00000000-0000-4000-8000-000000000000/jobs"),
    ("GET", "/api/v1/audiences/00000000-0000-4000-8000-000000000000/health"),
    ("GET", "/api/v1/sync-jobs/00000000-0000-4000-8000-000000000000"),
    ("POST", "/api/v1/sync-jobs/00000000-0000-4000-8000-000000000000/cancel"),
    ("GET", "/api/v1/feature-flags"),
    ("PUT", "/api/v1/feature-flags"),
]


def assert_error(response: httpx.Response, status: int, code: str) -> dict[str, object]:
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert set(error) == {"code", "message", "details"}
    assert error["code"] == code
    assert error["message"]
    found: dict[str, object] = error
    return found


async def test_every_route_answers_401_without_a_key(client: httpx.AsyncClient) -> None:
    for method, path in ROUTES:
        response = await client.request(method, path, json={})
        assert response.status_code == 401, (method, path)
        assert_error(response, 401, "unauthorized")
        assert response.headers["www-authenticate"] == "Bearer"


async def test_every_route_answers_401_with_a_wrong_key(
    client: httpx.AsyncClient, alice: Tenant
) -> None:
    headers = {"Authorization": f"Bearer {alice.key}x"}
    for method, path in ROUTES:
        response = await client.request(method, path, json={}, headers=headers)
        assert response.status_code == 401, (method, path)
        assert_error(response, 401, "unauthorized")


async def test_a_revoked_key_is_refused(
    client: httpx.AsyncClient, alice: Tenant, factory: sessionmaker[Session]
) -> None:
    assert (await client.get("/api/v1/segments", headers=alice.headers)).status_code == 200
    with transaction(factory) as session:
        session.execute(update(ApiKey).values(revoked_at=datetime.now(UTC)))
    response = await client.get("/api/v1/segments", headers=alice.headers)
    assert_error(response, 401, "unauthorized")


async def test_a_non_bearer_scheme_is_refused(client: httpx.AsyncClient, alice: Tenant) -> None:
    response = await client.get("/api/v1/segments", headers={"Authorization": f"Basic {alice.key}"})
    assert_error(response, 401, "unauthorized")


async def test_unknown_paths_and_methods_use_the_error_shape(
    client: httpx.AsyncClient, alice: Tenant
) -> None:
    assert_error(await client.get("/api/v1/nothing", headers=alice.headers), 404, "not_found")
    wrong = await client.request("PATCH", "/api/v1/segments", headers=alice.headers)
    assert_error(wrong, 405, "method_not_allowed")


async def test_validation_errors_name_the_field_and_the_rule(
    client: httpx.AsyncClient, alice: Tenant
) -> None:
    api = Api(client, alice)
    segment_id = await api.segment(profiles=1)
    await api.connect()
    body = {
        "segment_id": segment_id,
        "platform": "meta",
        "platform_audience_name": "VIP",
        "ad_account_id": "1",
        "sync_interval_hours": 5,
    }
    response = await api.call("POST", "/api/v1/audiences", json=body)
    error = assert_error(response, 422, "validation_error")
    assert "sync_interval_hours" in str(error["message"])
    assert "1, 6, 12, 24 or 168" in str(error["message"])
    [problem] = error["details"]["errors"]  # type: ignore[index]
    assert problem["field"] == "body.sync_interval_hours"
    assert problem["rule"] == "literal_error"


async def test_a_setting_rule_is_reported_like_a_schema_rule(
    client: httpx.AsyncClient, alice: Tenant, settings: object
) -> None:
    api = Api(client, alice)
    segment_id = await api.segment(profiles=1)
    await api.connect()
    settings.min_interval_hours = 6  # type: ignore[attr-defined]
    body = {
        "segment_id": segment_id,
        "platform": "meta",
        "platform_audience_name": "VIP",
        "ad_account_id": "1",
        "sync_interval_hours": 1,
    }
    error = assert_error(
        await api.call("POST", "/api/v1/audiences", json=body), 422, "validation_error"
    )
    assert error["details"] == {
        "errors": [
            {
                "field": "body.sync_interval_hours",
                "rule": "interval",
                "message": "sync_interval_hours must be one of 6, 12, 24, 168 (got 1).",
            }
        ]
    }


async def test_a_rejected_value_is_never_echoed(client: httpx.AsyncClient, alice: Tenant) -> None:
    body = {"name": ["secret@example.com"], "description": "x" * 10_001}
    response = await client.post("/api/v1/segments", json=body, headers=alice.headers)
    assert_error(response, 422, "validation_error")
    assert "secret@example.com" not in response.text
    assert "x" * 100 not in response.text
    fields = {p["field"] for p in response.json()["error"]["details"]["errors"]}
    assert fields == {"body.name", "body.description"}


async def test_malformed_json_is_a_validation_error(
    client: httpx.AsyncClient, alice: Tenant
) -> None:
    response = await client.post(
        "/api/v1/segments",
        content=b"{not json",
        headers={**alice.headers, "Content-Type": "application/json"},
    )
    assert_error(response, 422, "validation_error")


async def test_healthz_answers_without_a_key(client: httpx.AsyncClient) -> None:
    response = await client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok", "database": "ok"}


async def test_openapi_and_docs_are_served(client: httpx.AsyncClient) -> None:
    schema = (await client.get("/openapi.json")).json()
    assert "/api/v1/audiences/{audience_id}/sync" in schema["paths"]
    assert "/api/v1/profiles:batch" in schema["paths"]
    assert "HTTPBearer" in schema["components"]["securitySchemes"]
    docs = await client.get("/docs")
    assert docs.status_code == 200
    assert "swagger" in docs.text.lower()


async def test_an_unexpected_error_is_a_500_logged_without_its_message(
    client: httpx.AsyncClient, app: FastAPI, caplog: pytest.LogCaptureFixture
) -> None:
    email = "secret" + "@example.com"  # built, so no source line quoted in a traceback has it

    def boom() -> None:
        raise RuntimeError(f"INSERT failed [parameters: ({email!r},)]")

    app.add_api_route("/boom", boom)
    response = await client.get("/boom")
    assert_error(response, 500, "internal_error")
    assert email not in response.text
    assert "RuntimeError" in caplog.text
    assert email not in caplog.text
