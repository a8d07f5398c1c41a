"""Limits before work: the key before the body, a body limit (413), bounded JSON and options,
and deleted audiences hidden from lists and purgeable (issue 17, findings 3 and 11)."""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session, sessionmaker
from typer.testing import CliRunner

from audience_sync import cli
from audience_sync.api import create_app
from audience_sync.api.limits import MAX_INTEGER_DIGITS, MAX_JSON_DEPTH, json_problem
from audience_sync.config import Settings
from audience_sync.store.db import transaction
from audience_sync.store.tables import AudienceSyncJob, MemberStatePart, PlatformAudience
from audience_sync.sync.runner import SyncService

from .conftest import Api, Tenant, context
from .test_audiences import ready

BATCH = "/api/v1/profiles:batch"
MB = 1024 * 1024


class Body:
    """A streamed JSON body (`{"profiles": [...]}`) that records how much the server pulled."""

    def __init__(self, total_bytes: int, chunk_bytes: int = MB) -> None:
        row = b'{"profile_id":"P1","city":"' + b"x" * 200 + b'"},'
        middle = row * max(1, chunk_bytes // len(row))  # one object, repeated: little memory
        count = total_bytes // len(middle) + 1
        self.chunks = [b'{"profiles":[', *[middle] * count, b'{"profile_id":"P2"}]}']
        self.pulled = 0

    @property
    def size(self) -> int:
        return sum(map(len, self.chunks))

    async def stream(self) -> AsyncIterator[bytes]:
        for chunk in self.chunks:
            self.pulled += len(chunk)
            yield chunk


def assert_error(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    error: dict[str, Any] = response.json()["error"]
    assert set(error) == {"code", "message", "details"}
    assert error["code"] == code
    return error


@pytest.fixture
def small_app(settings: Settings, engine: Engine, service: SyncService) -> FastAPI:
    """The API with a 64 KiB body limit."""
    return create_app(settings.model_copy(update={"max_request_bytes": 64 * 1024}), engine, service)


@pytest.fixture
async def small(small_app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=small_app)
    async with httpx.AsyncClient(transport=transport, base_url="http://api") as client:
        yield client


# --- finding 3: the key before the body, and a body limit ---------------------------------


@pytest.mark.parametrize("key", [None, "as_not-a-key"])
async def test_an_unauthenticated_body_is_refused_before_a_byte_is_read(
    client: httpx.AsyncClient, key: str | None
) -> None:
    body = Body(20 * MB)
    headers = {"Content-Type": "application/json"}
    if key:
        headers["Authorization"] = f"Bearer {key}"
    response = await client.post(BATCH, content=body.stream(), headers=headers)
    assert_error(response, 401, "unauthorized")
    assert body.pulled == 0


async def test_a_declared_oversized_body_is_413_before_it_is_read(
    small: httpx.AsyncClient, alice: Tenant
) -> None:
    body = Body(200 * 1024, chunk_bytes=16 * 1024)
    headers = {**alice.headers, "Content-Length": str(body.size)}
    response = await small.post(BATCH, content=body.stream(), headers=headers)
    error = assert_error(response, 413, "payload_too_large")
    assert error["details"] == {"max_bytes": 64 * 1024}
    assert "AUDIENCE_SYNC_MAX_REQUEST_BYTES" in error["message"]
    assert body.pulled == 0


async def test_a_chunked_body_stops_being_read_at_the_limit(
    small: httpx.AsyncClient, alice: Tenant
) -> None:
    body = Body(2 * MB, chunk_bytes=16 * 1024)
    response = await small.post(BATCH, content=body.stream(), headers=alice.headers)
    assert_error(response, 413, "payload_too_large")
    assert body.pulled <= 64 * 1024 + 2 * 16 * 1024


async def test_the_default_limit_refuses_the_reported_body_and_keeps_a_full_batch(
    client: httpx.AsyncClient, alice: Tenant, settings: Settings
) -> None:
    assert settings.max_request_bytes == 10 * MB
    reported = Body(124 * MB, chunk_bytes=4 * MB)
    headers = {**alice.headers, "Content-Length": str(reported.size)}
    assert_error(
        await client.post(BATCH, content=reported.stream(), headers=headers),
        413,
        "payload_too_large",
    )
    assert reported.pulled == 0
    # The largest legitimate batch: 1,000 rows with every field filled in, and a trait.
    rows = [
        {
            "profile_id": f"profile-{i:06d}-" + "p" * 40,
            "email": f"person.{i}@example.com",
            "phone": "+16505550100",
            "first_name": "Mary-Ann",
            "last_name": "O'Neil",
            "city": "San Francisco",
            "state": "CA",
            "zip": "94107",
            "country": "US",
            "date_of_birth": "1990-01-31",
            "gender": "f",
            "external_id": "ext-" + "e" * 60,
            "notes": "n" * 2000,
        }
        for i in range(1000)
    ]
    full = await client.post(BATCH, json={"profiles": rows}, headers=alice.headers)
    assert full.status_code == 200, full.text
    assert full.json()["created"] == 1000


# --- bounded JSON: depth and integer size ---------------------------------------------------


def nested(levels: int) -> str:
    return "[" * levels + "]" * levels


@pytest.mark.parametrize("levels", [MAX_JSON_DEPTH + 1, 3000, 100_000])
async def test_deep_json_is_a_422_not_a_crash(
    client: httpx.AsyncClient, alice: Tenant, levels: int
) -> None:
    text = '{"profiles": [{"profile_id": "P1", "trait": ' + nested(levels - 3) + "}]}"
    response = await client.post(
        BATCH, content=text, headers={**alice.headers, "Content-Type": "application/json"}
    )
    error = assert_error(response, 422, "validation_error")
    assert error["details"]["errors"][0]["rule"] == "json_depth"
    assert f"deeper than {MAX_JSON_DEPTH} levels" in error["message"]


@pytest.mark.parametrize("digits", [MAX_INTEGER_DIGITS + 1, 5000, 100_000])
async def test_a_huge_integer_is_a_422_that_says_what_to_do(
    client: httpx.AsyncClient, alice: Tenant, digits: int
) -> None:
    text = '{"profiles": [{"profile_id": "P1", "score": ' + "7" * digits + "}]}"
    response = await client.post(
        BATCH, content=text, headers={**alice.headers, "Content-Type": "application/json"}
    )
    error = assert_error(response, 422, "validation_error")
    assert error["details"]["errors"][0]["rule"] == "json_integer_size"
    assert "send it as a string" in error["message"]
    assert "7777" not in response.text


def test_the_json_bounds_are_exact() -> None:
    assert json_problem(nested(MAX_JSON_DEPTH).encode()) is None
    assert json_problem(nested(MAX_JSON_DEPTH + 1).encode()) is not None
    deep_object = '{"a":' * MAX_JSON_DEPTH + "1" + "}" * MAX_JSON_DEPTH
    assert json_problem(deep_object.encode()) is None
    assert json_problem(b'{"n": -' + b"9" * MAX_INTEGER_DIGITS + b"}") is None
    assert json_problem(b'{"n": ' + b"9" * (MAX_INTEGER_DIGITS + 1) + b"}") is not None
    assert json_problem(b'{"n": 1e400, "s": "' + b"9" * 5000 + b'"}') is None
    assert json_problem(b"not json") is None  # the route answers it as before


async def test_a_body_within_bounds_still_reaches_the_route(
    client: httpx.AsyncClient, alice: Tenant
) -> None:
    trait = json.loads(nested(MAX_JSON_DEPTH - 3))
    response = await client.post(
        BATCH,
        json={"profiles": [{"profile_id": "P1", "email": "a@example.com", "score": 2**62}]},
        headers=alice.headers,
    )
    assert response.status_code == 200, response.text
    response = await client.post(
        BATCH, json={"profiles": [{"profile_id": "P2", "trait": trait}]}, headers=alice.headers
    )
    assert response.status_code == 200, response.text


# --- finding 11: bounded options; deleted audiences hidden and purgeable --------------------


async def test_options_are_bounded(
    client: httpx.AsyncClient, alice: Tenant, settings: Settings
) -> None:
    api, segment_id = await ready(client, alice)
    body = {
        "segment_id": segment_id,
        "platform": "meta",
        "platform_audience_name": "Big",
        "ad_account_id": "1",
        "sync_now": False,
        "options": {"padding": "x" * settings.max_options_bytes},
    }
    error = assert_error(
        await api.call("POST", "/api/v1/audiences", json=body), 422, "validation_error"
    )
    assert error["details"]["errors"][0] == {
        "field": "body.options",
        "rule": "max_size",
        "message": error["details"]["errors"][0]["message"],
    }
    assert "AUDIENCE_SYNC_MAX_OPTIONS_BYTES" in error["message"]
    # The reported 50 MB never reaches the route.
    huge = {**body, "options": {"padding": "x" * (50 * MB)}}
    assert_error(await api.call("POST", "/api/v1/audiences", json=huge), 413, "payload_too_large")
    assert (await api.call("GET", "/api/v1/audiences")).json() == []
    small = await api.call("POST", "/api/v1/audiences", json={**body, "options": {"a": "b"}})
    assert small.status_code == 201, small.text


async def test_deleted_audiences_are_hidden_then_purged(
    client: httpx.AsyncClient,
    alice: Tenant,
    bob: Tenant,
    app: FastAPI,
    factory: sessionmaker[Session],
) -> None:
    api, segment_id = await ready(client, alice)
    kept = await api.audience(segment_id, platform_audience_name="Kept")
    gone = await api.audience(segment_id, platform_audience_name="Gone")
    await context(app).launcher.drain()
    url = f"/api/v1/audiences/{gone['id']}"
    assert_error(await api.call("DELETE", f"{url}?purge=true"), 409, "audience_active")
    assert (await api.call("DELETE", url)).status_code == 202
    await context(app).launcher.drain()

    listed = (await api.call("GET", "/api/v1/audiences")).json()
    assert [a["id"] for a in listed] == [kept["id"]]
    everything = (await api.call("GET", "/api/v1/audiences?include_deleted=true")).json()
    assert {a["id"]: a["is_active"] for a in everything} == {kept["id"]: True, gone["id"]: False}

    # Another tenant cannot purge it; its owner can, once.
    assert_error(await Api(client, bob).call("DELETE", f"{url}?purge=true"), 404, "not_found")
    purged = await api.call("DELETE", f"{url}?purge=true")
    assert purged.status_code == 204, purged.text
    assert_error(await api.call("GET", url), 404, "not_found")
    assert_error(await api.call("DELETE", f"{url}?purge=true"), 404, "not_found")
    everything = (await api.call("GET", "/api/v1/audiences?include_deleted=true")).json()
    assert [a["id"] for a in everything] == [kept["id"]]
    with transaction(factory) as session:
        for model, column in (
            (AudienceSyncJob, AudienceSyncJob.platform_audience_id),
            (MemberStatePart, MemberStatePart.audience_id),
            (PlatformAudience, PlatformAudience.id),
        ):
            found = select(func.count()).select_from(model).where(column == uuid.UUID(gone["id"]))
            left = session.scalar(found)
            assert left == 0, model.__name__
        kept_jobs = session.scalar(
            select(func.count())
            .select_from(AudienceSyncJob)
            .where(AudienceSyncJob.platform_audience_id == uuid.UUID(kept["id"]))
        )
        assert kept_jobs == 1


@pytest.fixture
def run_cli(engine: Engine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    monkeypatch.setenv(
        "AUDIENCE_SYNC_DATABASE_URL", engine.url.render_as_string(hide_password=False)
    )
    monkeypatch.setenv("AUDIENCE_SYNC_VAR_DIR", str(tmp_path / "cli"))
    cli.context.cache_clear()
    runner = CliRunner()
    yield lambda *args: runner.invoke(cli.app, list(args))
    if cli.context.cache_info().currsize:
        cli.context().engine.dispose()
    cli.context.cache_clear()


async def test_the_cli_lists_deleted_audiences_on_request_and_purges_them(
    client: httpx.AsyncClient, alice: Tenant, app: FastAPI, run_cli: Any
) -> None:
    api, segment_id = await ready(client, alice)
    made = await api.audience(segment_id)
    await context(app).launcher.drain()
    refused = run_cli("audiences", "purge", made["id"], "--tenant", "alice")
    assert refused.exit_code != 0
    assert "delete it first" in refused.output
    assert (await api.call("DELETE", f"/api/v1/audiences/{made['id']}")).status_code == 202
    await context(app).launcher.drain()

    listed = run_cli("audiences", "list", "--tenant", "alice", "--json")
    assert json.loads(listed.stdout) == []
    listed = run_cli("audiences", "list", "--tenant", "alice", "--json", "--include-deleted")
    assert [a["id"] for a in json.loads(listed.stdout)] == [made["id"]]
    purged = run_cli("audiences", "purge", made["id"], "--tenant", "alice", "--json")
    assert purged.exit_code == 0, purged.output
    assert json.loads(purged.stdout) == {"audience_id": made["id"], "purged": True}
    listed = run_cli("audiences", "list", "--tenant", "alice", "--json", "--include-deleted")
    assert json.loads(listed.stdout) == []


async def test_the_gate_holds_behind_a_proxys_root_path(app: FastAPI, alice: Tenant) -> None:
    transport = httpx.ASGITransport(app=app, root_path="/svc")
    async with httpx.AsyncClient(transport=transport, base_url="http://api") as client:
        body = Body(2 * MB)
        response = await client.post(f"/svc{BATCH}", content=body.stream())
        assert_error(response, 401, "unauthorized")
        assert body.pulled == 0
        listed = await client.get("/svc/api/v1/segments", headers=alice.headers)
        assert listed.status_code == 200, listed.text
