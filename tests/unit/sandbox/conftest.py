"""An in-process sandbox per test, reached through httpx's ASGI transport."""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator

import httpx
import pytest
from fastapi import FastAPI

from audience_sync.sandbox import SandboxSettings, create_app


def sha(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


def digests(n: int, prefix: str = "user") -> list[str]:
    return [sha(f"{prefix}{i}@example.com") for i in range(n)]


@pytest.fixture
def app() -> FastAPI:
    return create_app(SandboxSettings(processing_seconds=60))


@pytest.fixture
async def client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://sandbox") as c:
        yield c


async def audiences(client: httpx.AsyncClient, platform: str) -> list[dict[str, object]]:
    response = await client.get("/_sandbox/audiences", params={"platform": platform})
    return list(response.json())
