"""Fixtures for sync tests."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from audience_sync.sandbox import SandboxSettings, create_app
from audience_sync.testing.support import PREFIXES, SANDBOX_URL

from .world import World


@pytest.fixture
async def world(engine: Engine, factory: sessionmaker[Session], tmp_path: Path) -> World:
    sandbox = create_app(SandboxSettings(processing_seconds=0))
    transport = httpx.ASGITransport(app=sandbox)
    async with httpx.AsyncClient(transport=transport, base_url=SANDBOX_URL) as client:
        for family in PREFIXES:
            await client.put("/_sandbox/rate_limits", json={"family": family, "limit": None})
    return World(engine, factory, sandbox, tmp_path)
