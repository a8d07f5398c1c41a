"""Two workers refreshing one connection's token at the same moment, each with its own engine,
event loop and thread, against the sandbox over a real socket: one valid token, nothing lost."""

from __future__ import annotations

import asyncio
import shutil
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from cryptography.fernet import Fernet
from sqlalchemy import Engine, text

from audience_sync.config import Settings
from audience_sync.connectors import BaseAudienceConnector, Credentials, connector_for
from audience_sync.crypto import CredentialCipher
from audience_sync.domain.models import SyncPlatform
from audience_sync.sandbox import SandboxSettings
from audience_sync.store import db
from audience_sync.store.db import transaction
from audience_sync.store.repositories import ConnectionRepository, TenantRepository
from audience_sync.store.tables import Base
from audience_sync.sync.context import SyncService, Target
from audience_sync.sync.tokens import open_connector
from audience_sync.testing.support import sandbox_server

SNAP = SyncPlatform.SNAPCHAT
TTL = 1800.0  # Snapchat's access tokens in the sandbox
TOKEN_PATH = "/snapchat/login/oauth2/access_token"
KEY = Fernet.generate_key()


@dataclass
class Seeded:
    url: str  # the database
    sandbox: str
    tenant_id: int
    refresh_token: str
    now: datetime  # the workers' clock, moved past the token's expiry


@pytest.fixture
def postgres_url(postgres_engine: Engine) -> str:
    tables = ", ".join(f'"{t.name}"' for t in Base.metadata.sorted_tables)
    with postgres_engine.begin() as connection:
        connection.execute(text(f"TRUNCATE {tables} RESTART IDENTITY CASCADE"))
    return postgres_engine.url.render_as_string(hide_password=False)


@pytest.fixture
def sqlite_url(sqlite_template: Path, tmp_path: Path) -> str:
    path = tmp_path / "race.db"
    shutil.copy(sqlite_template, path)
    return f"sqlite:///{path}"


@pytest.fixture
def rotating_sandbox() -> Iterator[str]:
    settings = SandboxSettings(processing_seconds=0, rotate_refresh_tokens=("snapchat",))
    with sandbox_server(settings) as url:
        yield url


@pytest.fixture
def sandbox() -> Iterator[str]:
    with sandbox_server() as url:
        yield url


def seed(url: str, sandbox: str) -> Seeded:
    """A Snapchat connection whose token has just expired, on the sandbox's clock and ours; the
    token endpoint answers after a second, so both workers are in the middle of it at once."""
    with httpx.Client(base_url=sandbox) as control:
        issued = control.post("/_sandbox/tokens", json={"platform": "snapchat", "ttl_seconds": TTL})
        tokens = issued.json()
        slow = {"kind": "latency", "platform": "snapchat", "path": "access_token", "count": 2}
        assert control.post("/_sandbox/faults", json={**slow, "delay_seconds": 1.0}).is_success
        control.post("/_sandbox/clock", json={"advance_seconds": TTL + 5})
    now = datetime.now(UTC)
    engine = db.make_engine(url)
    try:
        with transaction(db.session_factory(engine)) as session:
            tenant = TenantRepository(session).create("race")
            connection = ConnectionRepository(session, tenant.id, CredentialCipher([KEY])).put(
                SNAP,
                "1234567890",
                {
                    "access_token": tokens["access_token"],
                    "refresh_token": tokens["refresh_token"],
                    "client_id": "c",
                    "client_secret": "s",
                },
                base_url=f"{sandbox}/snapchat/v1",
            )
            connection.token_expires_at = now + timedelta(seconds=5)
            tenant_id = tenant.id
    finally:
        engine.dispose()
    return Seeded(
        url, sandbox, tenant_id, tokens["refresh_token"], now + timedelta(seconds=TTL + 5)
    )


def worker(seeded: Seeded, start: threading.Barrier) -> str:
    """One worker: its own engine and event loop; builds the connection's connector, makes one
    authenticated call (refreshing first), and returns the token it ended up with."""
    engine = db.make_engine(seeded.url)
    cipher = CredentialCipher([KEY])

    def connect(target: Target) -> BaseAudienceConnector:
        stored = cipher.decrypt(target.sealed_credentials)
        return connector_for(
            SNAP, Settings(), Credentials(**stored), base_url=target.base_url, timeout=30
        )

    service = SyncService(
        db.session_factory(engine), engine, Settings(), cipher, connect, clock=lambda: seeded.now
    )

    async def run() -> str:
        with transaction(service.factory) as session:
            row = ConnectionRepository(session, seeded.tenant_id, cipher).get(SNAP)
            target = Target(
                tenant_id=seeded.tenant_id,
                audience_id=None,  # type: ignore[arg-type]
                segment_id=None,  # type: ignore[arg-type]
                platform=SNAP,
                platform_audience_id=None,
                name="",
                ad_account_id=row.ad_account_id,
                description=None,
                config={},
                sealed_credentials=row.credentials_encrypted,
                base_url=row.base_url,
                region="US",
                credentials_version=row.credentials_version,
                token_expires_at=row.token_expires_at,
            )
        start.wait(timeout=10)  # both have read the expiring token: go
        async with open_connector(service, target) as connector:
            await connector.http.request("GET", "me")
            return connector.http.tokens.token

    try:
        return asyncio.run(run())
    finally:
        engine.dispose()


def race(seeded: Seeded) -> list[str]:
    start = threading.Barrier(2)
    results: list[str] = []
    errors: list[BaseException] = []

    def go() -> None:
        try:
            results.append(worker(seeded, start))
        except BaseException as exc:  # reported by the test, not lost in the thread
            errors.append(exc)

    threads = [threading.Thread(target=go) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not errors, errors
    return results


def stored(seeded: Seeded) -> tuple[int, dict[str, str], datetime | None]:
    engine = db.make_engine(seeded.url)
    try:
        with transaction(db.session_factory(engine)) as session:
            row = ConnectionRepository(session, seeded.tenant_id, CredentialCipher([KEY])).get(SNAP)
            credentials = CredentialCipher([KEY]).decrypt(row.credentials_encrypted)
            return row.credentials_version, credentials, row.token_expires_at
    finally:
        engine.dispose()


def refresh_grants(sandbox: str) -> list[int | None]:
    with httpx.Client(base_url=sandbox) as control:
        log = control.get("/_sandbox/requests", params={"platform": "snapchat"}).json()
    entries = log if isinstance(log, list) else log["requests"]
    return [e["status"] for e in entries if e["path"] == TOKEN_PATH]


def works(sandbox: str, access_token: str) -> bool:
    with httpx.Client(base_url=sandbox) as client:
        me = client.get("/snapchat/v1/me", headers={"Authorization": f"Bearer {access_token}"})
    return me.status_code == 200


def still_refreshes(sandbox: str, refresh_token: str) -> bool:
    form = {
        "grant_type": "refresh_token",
        "refresh_token": refresh_token,
        "client_id": "c",
        "client_secret": "s",
    }
    with httpx.Client(base_url=sandbox) as client:
        return client.post(TOKEN_PATH, data=form).status_code == 200


@pytest.mark.postgres
def test_two_workers_on_postgresql_refresh_a_rotating_token_once(
    postgres_url: str, rotating_sandbox: str
) -> None:
    """The row lock: one worker refreshes, the other waits, re-reads and uses its token. The
    refresh token rotates, and the sandbox revokes everything if a rotated-out one is presented
    again: one refresh grant, with the stored refresh token, and both still work after."""
    seeded = seed(postgres_url, rotating_sandbox)
    tokens = race(seeded)
    version, credentials, expires = stored(seeded)
    assert refresh_grants(rotating_sandbox) == [200]  # one refresh, never a stale one
    assert tokens[0] == tokens[1] == credentials["access_token"]
    assert version == 1
    assert expires == seeded.now + timedelta(seconds=TTL)
    assert credentials["refresh_token"] != seeded.refresh_token  # the rotated one is kept
    assert works(rotating_sandbox, credentials["access_token"])
    assert still_refreshes(rotating_sandbox, credentials["refresh_token"])


def test_two_workers_on_sqlite_both_refresh_and_the_swap_keeps_one_token(
    sqlite_url: str, sandbox: str
) -> None:
    """SQLite has no row lock: two processes both refresh (Snapchat keeps its refresh token);
    the compare-and-swap stores the first answer, the loser re-reads and uses it."""
    seeded = seed(sqlite_url, sandbox)
    tokens = race(seeded)
    version, credentials, _ = stored(seeded)
    assert refresh_grants(sandbox) == [200, 200]
    assert tokens[0] == tokens[1] == credentials["access_token"]
    assert version == 1
    assert credentials["refresh_token"] == seeded.refresh_token
    assert works(sandbox, credentials["access_token"])
