"""`audience-sync serve` as a real process on a free port, driven over a socket like a client."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from audience_sync.store import db
from audience_sync.store.db import transaction
from audience_sync.store.repositories import ApiKeyRepository, TenantRepository
from audience_sync.testing import PREFIXES, sandbox_server

from .conftest import TOKEN, profile_rows

# The command is registered by importing its module (cli/__init__.py will import it too).
LAUNCH = "import audience_sync.cli.serve; from audience_sync.cli import app; app()"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[str, str, Path]]:
    """A migrated SQLite file, a tenant's key, and `serve` running on it."""
    url = f"sqlite:///{tmp_path}/serve.db"
    engine = db.make_engine(url)
    db.upgrade(engine)
    with transaction(db.session_factory(engine)) as session:
        tenant = TenantRepository(session).create("acme")
        key = ApiKeyRepository(session).issue(tenant.id)
    engine.dispose()
    port = free_port()
    env = {
        **os.environ,
        "AUDIENCE_SYNC_DATABASE_URL": url,
        "AUDIENCE_SYNC_VAR_DIR": str(tmp_path / "var"),
        "AUDIENCE_SYNC_ENVIRONMENT": "test",
        "AUDIENCE_SYNC_ALLOW_CONNECTION_BASE_URL": "true",  # connections point at the sandbox
    }
    log = tmp_path / "serve.log"
    with log.open("wb") as sink:
        process = subprocess.Popen(
            [sys.executable, "-c", LAUNCH, "serve", "--port", str(port)],
            env=env,
            cwd=tmp_path,
            stdout=sink,
            stderr=subprocess.STDOUT,
        )
        base = f"http://127.0.0.1:{port}"
        try:
            wait_until_up(base, process)
            yield base, key, log
        finally:
            process.send_signal(signal.SIGINT)
            process.wait(timeout=20)
    assert process.returncode == 0, log.read_text()


def wait_until_up(base: str, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        assert process.poll() is None, "serve exited early"
        try:
            if httpx.get(f"{base}/healthz").status_code == 200:
                return
        except httpx.TransportError:
            time.sleep(0.1)
    pytest.fail("serve did not answer /healthz within 20 s")


def test_serve_runs_a_sync_for_a_client(served: tuple[str, str, Path]) -> None:
    base, key, log = served
    with (
        sandbox_server() as sandbox,
        httpx.Client(
            base_url=base + "/api/v1", headers={"Authorization": f"Bearer {key}"}, timeout=10
        ) as api,
    ):
        segment = api.post("/segments", json={"name": "VIP"}).json()["id"]
        loaded = api.post(
            "/profiles:batch", json={"profiles": profile_rows(5), "segment_id": segment}
        )
        assert loaded.json()["created"] == 5
        connection = {
            "ad_account_id": "acc1",
            "credentials": {"access_token": TOKEN},
            "base_url": sandbox + PREFIXES["snapchat"],
        }
        assert api.put("/connections/snapchat", json=connection).status_code == 200
        audience = api.post(
            "/audiences",
            json={
                "segment_id": segment,
                "platform": "snapchat",
                "platform_audience_name": "VIP",
                "ad_account_id": "acc1",
            },
        ).json()
        job = audience["sync_job"]
        deadline = time.monotonic() + 30
        while job["status"] in ("pending", "running") and time.monotonic() < deadline:
            time.sleep(0.2)
            job = api.get(f"/sync-jobs/{job['id']}").json()
        assert job["status"] == "completed", job
        health = api.get(f"/audiences/{audience['id']}/health").json()
        assert health["sync_success_rate"] == 1.0
        assert httpx.get(base + "/api/v1/segments").status_code == 401
    logged = log.read_text()
    assert TOKEN not in logged
    assert key not in logged
    assert "example.com" not in logged.lower()
