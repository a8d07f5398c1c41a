"""A fresh in-process sandbox per connector test, with a client for its controls."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
from fastapi import FastAPI

from audience_sync.sandbox import SandboxSettings, create_app
from audience_sync.testing import SANDBOX_URL


@pytest.fixture
def sandbox() -> FastAPI:
    return create_app(SandboxSettings(processing_seconds=0))


@pytest.fixture
async def control(sandbox: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=sandbox)
    async with httpx.AsyncClient(transport=transport, base_url=SANDBOX_URL) as client:
        yield client
