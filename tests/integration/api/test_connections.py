"""Connections: credentials go in, only masked hints come out."""

from __future__ import annotations

import httpx
import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from audience_sync.config import Settings
from audience_sync.domain.models import SyncPlatform
from audience_sync.store.db import transaction
from audience_sync.store.tables import PlatformConnection

from .conftest import REFRESH, TOKEN, Api, Tenant, connection_body


async def test_a_connection_shows_status_and_hints_never_a_secret(
    client: httpx.AsyncClient, alice: Tenant, factory: sessionmaker[Session]
) -> None:
    api = Api(client, alice)
    body = connection_body("meta")
    body["credentials"]["app_secret"] = "app-secret-0123456789abcdef"
    put = await api.call("PUT", "/api/v1/connections/meta", json=body)
    got = await api.call("GET", "/api/v1/connections/meta")
    saved = put.json()
    assert saved.pop("test")["ok"] is True  # the PUT tested the new credentials
    assert saved == {k: v for k, v in got.json().items() if k != "test"}
    shown = got.json()
    assert shown["platform"] == "meta"
    assert shown["ad_account_id"] == "1234567890"
    assert shown["status"] == "connected"
    assert (
        shown["credentials"]
        == {
            "access_token": "****",  # too short to show any of it
            "app_secret": "****cdef",
            "client_id": "****",
            "client_secret": "****",
            "developer_token": "****",
            "refresh_token": "****" + REFRESH[-4:],
        }
    )
    for response in (put, got):
        assert TOKEN not in response.text
        assert REFRESH not in response.text
        assert "app-secret" not in response.text
    with transaction(factory) as session:
        stored = session.scalars(select(PlatformConnection.credentials_encrypted)).one()
    assert TOKEN not in stored


async def test_a_connection_is_replaced_then_deleted(
    client: httpx.AsyncClient, alice: Tenant
) -> None:
    api = Api(client, alice)
    await api.connect("tiktok")
    body = connection_body("tiktok", ad_account="999")
    assert (await api.call("PUT", "/api/v1/connections/tiktok", json=body)).json()[
        "ad_account_id"
    ] == "999"
    deleted = await api.call("DELETE", "/api/v1/connections/tiktok")
    assert deleted.status_code == 204
    assert (await api.call("GET", "/api/v1/connections/tiktok")).status_code == 404
    assert (await api.call("DELETE", "/api/v1/connections/tiktok")).status_code == 404


async def test_an_unknown_platform_or_a_missing_token_is_refused(
    client: httpx.AsyncClient, alice: Tenant
) -> None:
    api = Api(client, alice)
    unknown = await api.call("PUT", "/api/v1/connections/myspace", json=connection_body("meta"))
    assert unknown.status_code == 422
    assert unknown.json()["error"]["details"]["errors"][0]["field"] == "path.platform"
    body = connection_body("meta")
    del body["credentials"]["access_token"]
    missing = await api.call("PUT", "/api/v1/connections/meta", json=body)
    assert (
        missing.json()["error"]["details"]["errors"][0]["field"] == "body.credentials.access_token"
    )


async def test_a_tenant_cannot_point_a_connection_elsewhere_unless_the_operator_allows_it(
    client: httpx.AsyncClient, alice: Tenant, settings: Settings
) -> None:
    settings.allow_connection_base_url = False  # the default
    api = Api(client, alice)
    body = {**connection_body("meta"), "base_url": "http://169.254.169.254/latest"}
    response = await api.call("PUT", "/api/v1/connections/meta", json=body)
    assert response.status_code == 422
    error = response.json()["error"]["details"]["errors"][0]
    assert error["field"] == "body.base_url"
    assert error["rule"] == "not_allowed"
    assert "AUDIENCE_SYNC_ALLOW_CONNECTION_BASE_URL" in error["message"]
    assert "169.254" not in response.text
    # Nothing was stored; without base_url the same connection is accepted.
    assert (await api.call("GET", "/api/v1/connections/meta")).status_code == 404
    del body["base_url"]
    put = await api.call("PUT", "/api/v1/connections/meta", json=body)
    assert put.status_code == 200
    assert put.json()["base_url"] is None


@pytest.mark.parametrize("platform", [p.value for p in SyncPlatform])
async def test_every_platform_can_be_connected(
    client: httpx.AsyncClient, alice: Tenant, platform: str
) -> None:
    await Api(client, alice).connect(platform)


async def test_a_google_connection_records_its_login_account_and_the_terms(
    client: httpx.AsyncClient, alice: Tenant
) -> None:
    api = Api(client, alice)
    body = connection_body("google")
    body["settings"] = {"login_account_id": "123-456-7890", "customer_match_terms_accepted": True}
    put = await api.call("PUT", "/api/v1/connections/google", json=body)
    assert put.status_code == 200, put.text
    settings = {"login_account_id": "1234567890", "customer_match_terms_accepted": True}
    assert put.json()["settings"] == settings
    del body["settings"]  # reconnecting (a new token) keeps the settings
    assert (await api.call("PUT", "/api/v1/connections/google", json=body)).json()[
        "settings"
    ] == settings
    body["settings"] = {"customer_match_terms_accepted": False, "login_account_id": None}
    await api.call("PUT", "/api/v1/connections/google", json=body)
    assert (await api.call("GET", "/api/v1/connections/google")).json()["settings"] == {}


async def test_google_settings_on_another_platform_are_refused(
    client: httpx.AsyncClient, alice: Tenant
) -> None:
    api = Api(client, alice)
    body = {**connection_body("meta"), "settings": {"customer_match_terms_accepted": True}}
    refused = await api.call("PUT", "/api/v1/connections/meta", json=body)
    assert refused.status_code == 422
    assert refused.json()["error"]["details"]["errors"][0]["field"] == "body.settings"


async def test_a_connection_keeps_its_data_use_defaults_until_told_otherwise(
    client: httpx.AsyncClient, alice: Tenant
) -> None:
    api = Api(client, alice)
    body = connection_body("google")
    body["settings"] = {"consent_ad_user_data": "granted", "consent_ad_personalization": "denied"}
    put = await api.call("PUT", "/api/v1/connections/google", json=body)
    assert put.json()["settings"] == {
        "consent_ad_user_data": "granted",
        "consent_ad_personalization": "denied",
    }
    again = connection_body("google")
    again["settings"] = {"consent_ad_personalization": "unspecified"}  # forgets that default only
    got = (await api.call("PUT", "/api/v1/connections/google", json=again)).json()
    assert got["settings"] == {"consent_ad_user_data": "granted"}
    body = connection_body("meta")
    body["settings"] = {"limited_data_use": "sometimes"}
    assert (await api.call("PUT", "/api/v1/connections/meta", json=body)).status_code == 422
    body["settings"] = {"limited_data_use": "california"}
    put = await api.call("PUT", "/api/v1/connections/meta", json=body)
    assert put.json()["settings"] == {"limited_data_use": "california"}
    body["settings"] = {"consent_ad_user_data": "granted"}  # a Google setting on Meta
    assert (await api.call("PUT", "/api/v1/connections/meta", json=body)).status_code == 422
