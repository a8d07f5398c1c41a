"""I6 through the API: another tenant's object is a 404 on every route, like one that never was."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from sqlalchemy.orm import Session, sessionmaker

from audience_sync.sync.jobs import Trigger, trigger_job

from .conftest import Api, Tenant, connection_body

# (method, path template, body template); {segment}, {audience}, {job} are alice's ids.
ROUTES: list[tuple[str, str, dict[str, Any] | None]] = [
    ("GET", "/api/v1/segments/{segment}", None),
    ("POST", "/api/v1/segments/{segment}/members", {"add": ["P1"], "remove": ["P2"]}),
    (
        "POST",
        "/api/v1/profiles:batch",
        {"profiles": [{"profile_id": "X"}], "segment_id": "{segment}"},
    ),
    (
        "POST",
        "/api/v1/audiences",
        {
            "segment_id": "{segment}",
            "platform": "meta",
            "platform_audience_name": "stolen",
            "ad_account_id": "1",
        },
    ),
    ("GET", "/api/v1/audiences/{audience}", None),
    ("PATCH", "/api/v1/audiences/{audience}", {"auto_sync": False}),
    ("DELETE", "/api/v1/audiences/{audience}", None),
    ("POST", "/api/v1/audiences/{audience}/sync", {"operation": "update"}),
    ("GET", "/api/v1/audiences/{audience}/jobs", None),
    ("GET", "/api/v1/audiences/{audience}/health", None),
    ("GET", "/api/v1/sync-jobs/{job}", None),
    ("POST", "/api/v1/sync-jobs/{job}/cancel", None),
    ("GET", "/api/v1/sync-jobs/{job}/diagnostics", None),
    ("POST", "/api/v1/segments/{segment}/export", {"platform": "meta"}),
    ("GET", "/api/v1/connections/snapchat", None),
    ("DELETE", "/api/v1/connections/snapchat", None),
]


def fill(template: Any, ids: dict[str, str]) -> Any:
    if isinstance(template, str):
        return template.format(**ids)
    if isinstance(template, dict):
        return {k: fill(v, ids) for k, v in template.items()}
    if isinstance(template, list):
        return [fill(v, ids) for v in template]
    return template


@pytest.fixture
async def alices(
    client: httpx.AsyncClient, alice: Tenant, factory: sessionmaker[Session]
) -> dict[str, str]:
    api = Api(client, alice)
    segment = await api.segment(profiles=3)
    await api.connect("meta")
    await api.connect("snapchat")
    audience = await api.audience(segment, sync_now=False)
    # A queued job (not run: which state it is in does not matter to tenancy, and it is faster).
    job, _ = trigger_job(factory, alice.id, uuid.UUID(audience["id"]), Trigger(), datetime.now(UTC))
    return {"segment": segment, "audience": audience["id"], "job": str(job.id)}


@pytest.mark.parametrize(("method", "path", "body"), ROUTES)
async def test_another_tenants_object_is_not_found(
    client: httpx.AsyncClient,
    alice: Tenant,
    bob: Tenant,
    alices: dict[str, str],
    method: str,
    path: str,
    body: dict[str, Any] | None,
) -> None:
    bobs = Api(client, bob)
    await bobs.connect("meta")  # so creating an audience fails on the segment, not the connection
    before = await alice_state(client, alice, alices)

    response = await bobs.call(method, fill(path, alices), json=fill(body, alices))

    assert response.status_code == 404, response.text
    assert response.json()["error"]["code"] == "not_found"
    # The answer is the one for an id that never existed: nothing hints that it does.
    ghosts = {name: str(uuid.uuid4()) for name in alices}
    ghost = await bobs.call(method, fill(path, ghosts), json=fill(body, ghosts))
    assert ghost.status_code == 404
    message = response.json()["error"]["message"]
    for name, value in alices.items():
        message = message.replace(value, ghosts[name])
    assert message == ghost.json()["error"]["message"]
    assert await alice_state(client, alice, alices) == before


async def alice_state(client: httpx.AsyncClient, alice: Tenant, ids: dict[str, str]) -> list[Any]:
    api = Api(client, alice)
    urls = [
        f"/api/v1/segments/{ids['segment']}",
        f"/api/v1/audiences/{ids['audience']}",
        f"/api/v1/audiences/{ids['audience']}/jobs",
        "/api/v1/connections/snapchat",
    ]
    return [(await api.call("GET", url)).json() for url in urls]


async def test_lists_show_only_the_tenants_own_objects(
    client: httpx.AsyncClient, alice: Tenant, bob: Tenant, alices: dict[str, str]
) -> None:
    bobs = Api(client, bob)
    assert (await bobs.call("GET", "/api/v1/segments")).json() == []
    assert (await bobs.call("GET", "/api/v1/audiences")).json() == []
    flags = await bobs.call(
        "PUT", "/api/v1/feature-flags", json={"flags": {"audience_sync": False}}
    )
    assert flags.status_code == 200
    alices_flags = (await Api(client, alice).call("GET", "/api/v1/feature-flags")).json()
    assert alices_flags["flags"]["audience_sync"] == {"enabled": True, "source": "default"}


async def test_the_same_profile_ids_are_separate_people_per_tenant(
    client: httpx.AsyncClient, alice: Tenant, bob: Tenant, alices: dict[str, str]
) -> None:
    bobs = Api(client, bob)
    segment = (await bobs.call("POST", "/api/v1/segments", json={"name": "Mine"})).json()["id"]
    added = await bobs.call("POST", f"/api/v1/segments/{segment}/members", json={"add": ["P1"]})
    assert added.json()["unknown_profile_ids"] == ["P1"]  # alice's P1 is not bob's


async def test_a_connection_put_by_another_tenant_is_their_own(
    client: httpx.AsyncClient, alice: Tenant, bob: Tenant, alices: dict[str, str]
) -> None:
    bobs = Api(client, bob)
    await bobs.call("PUT", "/api/v1/connections/snapchat", json=connection_body("snapchat", "777"))
    alices_view = (await Api(client, alice).call("GET", "/api/v1/connections/snapchat")).json()
    assert alices_view["ad_account_id"] == "1234567890"
