"""Feature flags: per-tenant overrides, and a disabled flag answering 403 with its name."""

from __future__ import annotations

import uuid

import httpx
import pytest
from fastapi import FastAPI

from audience_sync.config import FeatureFlags, Settings
from audience_sync.exceptions import ValidationError
from audience_sync.sync.runner import load_target

from .conftest import Api, Tenant, context


async def test_flags_show_defaults_and_overrides(client: httpx.AsyncClient, alice: Tenant) -> None:
    api = Api(client, alice)
    flags = (await api.call("GET", "/api/v1/feature-flags")).json()["flags"]
    assert flags["audience_export"] == {"enabled": True, "source": "default"}
    assert flags["audience_sync_meta"] == {"enabled": True, "source": "default"}
    put = await api.call(
        "PUT",
        "/api/v1/feature-flags",
        json={"flags": {"audience_export": False, "audience_sync_meta": False}},
    )
    assert put.json()["flags"]["audience_export"] == {"enabled": False, "source": "tenant"}
    assert put.json()["flags"]["audience_sync_meta"] == {"enabled": False, "source": "tenant"}
    cleared = await api.call(
        "PUT", "/api/v1/feature-flags", json={"flags": {"audience_export": None}}
    )
    assert cleared.json()["flags"]["audience_export"] == {"enabled": True, "source": "default"}
    assert cleared.json()["flags"]["audience_sync_meta"]["enabled"] is False
    assert (await api.call("GET", "/api/v1/feature-flags")).json() == cleared.json()


async def test_a_tenant_cannot_turn_on_a_flag_the_operator_turned_off(
    client: httpx.AsyncClient, alice: Tenant, settings: Settings
) -> None:
    # As AUDIENCE_SYNC_FEATURE_FLAGS__AUDIENCE_EXPORT=false does (an explicitly set field).
    settings.feature_flags = FeatureFlags(audience_export=False)
    api = Api(client, alice)
    segment_id = await api.segment(profiles=1)
    flags = (await api.call("GET", "/api/v1/feature-flags")).json()["flags"]
    assert flags["audience_export"] == {"enabled": False, "source": "operator"}
    assert flags["audience_sync"] == {"enabled": True, "source": "default"}
    raised = await api.call(
        "PUT",
        "/api/v1/feature-flags",
        json={"flags": {"audience_sync_meta": False, "audience_export": True}},
    )
    assert raised.status_code == 403
    error = raised.json()["error"]
    assert error["code"] == "flag_set_by_operator"
    assert error["details"] == {"flag": "audience_export"}
    assert "turned off by the operator" in error["message"]
    # Nothing of the refused request was stored, and exports stay off.
    after = (await api.call("GET", "/api/v1/feature-flags")).json()["flags"]
    assert after["audience_sync_meta"] == {"enabled": True, "source": "default"}
    assert after["audience_export"] == {"enabled": False, "source": "operator"}
    export = await api.call("POST", f"/api/v1/segments/{segment_id}/export", json={})
    assert export.status_code == 403
    assert export.json()["error"]["details"] == {"flag": "audience_export", "source": "operator"}
    # Lowering or clearing stays the tenant's to do.
    lowered = await api.call(
        "PUT", "/api/v1/feature-flags", json={"flags": {"audience_export": False}}
    )
    assert lowered.status_code == 200
    assert lowered.json()["flags"]["audience_export"] == {"enabled": False, "source": "operator"}


async def test_an_override_stored_before_the_operator_turned_a_flag_off_does_not_lift_it(
    client: httpx.AsyncClient,
    alice: Tenant,
    app: FastAPI,
    settings: Settings,
) -> None:
    api = Api(client, alice)
    segment_id = await api.segment(profiles=2)
    await api.connect("meta")
    made = await api.audience(segment_id)
    await context(app).launcher.drain()
    on = {"audience_export": True, "audience_sync_meta": True}
    assert (await api.call("PUT", "/api/v1/feature-flags", json={"flags": on})).status_code == 200
    settings.feature_flags = FeatureFlags(audience_export=False, audience_sync_meta=False)
    flags = (await api.call("GET", "/api/v1/feature-flags")).json()["flags"]
    assert flags["audience_export"] == {"enabled": False, "source": "operator"}
    assert flags["audience_sync_meta"] == {"enabled": False, "source": "operator"}
    export = await api.call("POST", f"/api/v1/segments/{segment_id}/export", json={})
    assert export.status_code == 403
    sync = await api.call("POST", f"/api/v1/audiences/{made['id']}/sync", json={})
    assert sync.status_code == 403
    assert sync.json()["error"]["details"]["flag"] == "audience_sync_meta"
    # The sync engine reads the same ceiling (a job queued earlier, the scheduler, the CLI).
    with pytest.raises(ValidationError, match="audience_sync_meta"):
        load_target(context(app).service, alice.id, uuid.UUID(made["id"]))


async def test_an_unknown_flag_is_a_validation_error(
    client: httpx.AsyncClient, alice: Tenant
) -> None:
    response = await Api(client, alice).call(
        "PUT", "/api/v1/feature-flags", json={"flags": {"audience_teleport": True}}
    )
    assert response.status_code == 422
    assert response.json()["error"]["details"]["errors"][0]["field"].startswith("body.flags")


@pytest.mark.parametrize("flag", ["audience_sync", "audience_sync_meta"])
async def test_a_disabled_flag_guards_every_sync_route(
    client: httpx.AsyncClient, alice: Tenant, app: FastAPI, flag: str
) -> None:
    api = Api(client, alice)
    segment_id = await api.segment(profiles=2)
    await api.connect("meta")
    made = await api.audience(segment_id)
    await context(app).launcher.drain()
    await api.call("PUT", "/api/v1/feature-flags", json={"flags": {flag: False}})
    body = {
        "segment_id": segment_id,
        "platform": "meta",
        "platform_audience_name": "Another",
        "ad_account_id": "1",
    }
    guarded = [
        await api.call("POST", "/api/v1/audiences", json=body),
        await api.call("POST", f"/api/v1/audiences/{made['id']}/sync", json={}),
        await api.call("DELETE", f"/api/v1/audiences/{made['id']}"),
    ]
    for response in guarded:
        assert response.status_code == 403, response.text
        assert response.json()["error"] == {
            "code": "feature_disabled",
            "message": f"Feature flag {flag!r} is off for this tenant.",
            "details": {"flag": flag},
        }
    # Reading is never guarded.
    assert (await api.call("GET", f"/api/v1/audiences/{made['id']}")).status_code == 200
    assert len((await api.call("GET", "/api/v1/audiences")).json()) == 1


async def test_another_platforms_flag_does_not_guard_this_one(
    client: httpx.AsyncClient, alice: Tenant, app: FastAPI
) -> None:
    api = Api(client, alice)
    segment_id = await api.segment(profiles=2)
    await api.connect("meta")
    await api.call("PUT", "/api/v1/feature-flags", json={"flags": {"audience_sync_tiktok": False}})
    made = await api.audience(segment_id)
    await context(app).launcher.drain()
    job = (await api.call("GET", f"/api/v1/sync-jobs/{made['sync_job']['id']}")).json()
    assert job["status"] == "completed"
