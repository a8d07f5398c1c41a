"""Fixtures for API tests: the app over ASGI, two tenants with keys, the sandbox in process."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography.fernet import Fernet
from fastapi import FastAPI
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from audience_sync.api.state import ApiContext
from audience_sync.config import Settings
from audience_sync.connectors import BaseAudienceConnector, Credentials, RateLimiters, connector_for
from audience_sync.crypto import CredentialCipher
from audience_sync.dashboard.site import create_site
from audience_sync.sandbox import SandboxSettings
from audience_sync.sandbox import create_app as create_sandbox
from audience_sync.store.db import transaction
from audience_sync.store.repositories import ApiKeyRepository, TenantRepository
from audience_sync.sync.runner import SyncService, Target
from audience_sync.sync.service import connector_options
from audience_sync.testing.support import PREFIXES, SANDBOX_URL, FakeTime

TOKEN = "sandbox-token"
REFRESH = "sandbox-refresh-token"


@dataclass
class Tenant:
    id: int
    key: str

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.key}"}


def make_tenant(factory: sessionmaker[Session], slug: str) -> Tenant:
    with transaction(factory) as session:
        tenant = TenantRepository(session).create(slug)
        return Tenant(tenant.id, ApiKeyRepository(session).issue(tenant.id))


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(
        environment="test",
        var_dir=tmp_path,
        secret_key=Fernet.generate_key().decode(),
        max_removal_share=1.0,
        # The tests point connections at the in-process sandbox through the API.
        allow_connection_base_url=True,
    )


@pytest.fixture
async def sandbox() -> FastAPI:
    app = create_sandbox(SandboxSettings(processing_seconds=0))
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url=SANDBOX_URL) as client:
        for family in PREFIXES:
            await client.put("/_sandbox/rate_limits", json={"family": family, "limit": None})
    return app


@pytest.fixture
def service(
    settings: Settings, engine: Engine, factory: sessionmaker[Session], sandbox: FastAPI
) -> SyncService:
    time = FakeTime()
    cipher = CredentialCipher([settings.secret_key.get_secret_value().encode()])  # type: ignore[union-attr]

    def connect(target: Target) -> BaseAudienceConnector:
        return connector_for(
            target.platform,
            settings,
            Credentials(**cipher.decrypt(target.sealed_credentials)),
            ad_account_id=target.ad_account_id,
            options=connector_options(target),
            base_url=target.base_url,
            transport=httpx.ASGITransport(app=sandbox),
            sleep=time.sleep,
            clock=time.clock,
            limiters=RateLimiters(),
            poll_interval=0.5,
            poll_timeout=30,
        )

    return SyncService(factory, engine, settings, cipher, connect, clock=lambda: datetime.now(UTC))


@pytest.fixture
def app(settings: Settings, engine: Engine, service: SyncService) -> FastAPI:
    return create_site(settings, engine, service)


@pytest.fixture
async def client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://api") as client:
        yield client
    await context(app).launcher.drain()


def context(app: FastAPI) -> ApiContext:
    found: ApiContext = app.state.context
    return found


@pytest.fixture
def alice(factory: sessionmaker[Session]) -> Tenant:
    return make_tenant(factory, "alice")


@pytest.fixture
def bob(factory: sessionmaker[Session]) -> Tenant:
    return make_tenant(factory, "bob")


def connection_body(platform: str, ad_account: str = "1234567890") -> dict[str, Any]:
    settings = {"settings": {"customer_match_terms_accepted": True}} if platform == "google" else {}
    return {
        **settings,
        "ad_account_id": ad_account,
        "credentials": {
            "access_token": TOKEN,
            "refresh_token": REFRESH,
            "client_id": "c",
            "client_secret": "s",
            "developer_token": "d",
        },
        "base_url": SANDBOX_URL + PREFIXES[platform],
    }


def profile_rows(count: int, start: int = 0) -> list[dict[str, Any]]:
    return [
        {
            "profile_id": f"P{i}",
            "email": f"  Person.{i}@Example.COM ",
            "phone": f"(650) 555-{i:04d}" if i % 3 == 0 else None,
            "first_name": "Mary",
            "country": "US",
        }
        for i in range(start, start + count)
    ]


class Api:
    """A tenant's view of the API with the steps most tests need."""

    def __init__(self, client: httpx.AsyncClient, tenant: Tenant) -> None:
        self.client = client
        self.tenant = tenant

    async def call(self, method: str, url: str, **kw: Any) -> httpx.Response:
        return await self.client.request(method, url, headers=self.tenant.headers, **kw)

    async def segment(self, name: str = "VIP", profiles: int = 20) -> str:
        made = await self.call("POST", "/api/v1/segments", json={"name": name})
        assert made.status_code == 201, made.text
        segment_id: str = made.json()["id"]
        rows = profile_rows(profiles)
        loaded = await self.call(
            "POST", "/api/v1/profiles:batch", json={"profiles": rows, "segment_id": segment_id}
        )
        assert loaded.status_code == 200, loaded.text
        return segment_id

    async def connect(self, platform: str = "meta") -> None:
        put = await self.call(
            "PUT", f"/api/v1/connections/{platform}", json=connection_body(platform)
        )
        assert put.status_code == 200, put.text

    async def audience(
        self, segment_id: str, platform: str = "meta", **fields: Any
    ) -> dict[str, Any]:
        body = {
            "segment_id": segment_id,
            "platform": platform,
            "platform_audience_name": "VIP",
            "ad_account_id": "1234567890",
            **fields,
        }
        made = await self.call("POST", "/api/v1/audiences", json=body)
        assert made.status_code == 201, made.text
        found: dict[str, Any] = made.json()
        return found
