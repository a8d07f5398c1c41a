"""Fixtures for dashboard tests: a browser-like client signed in with a tenant's API key.

The app, tenants (`alice`, `bob`) and the in-process sandbox come from the API tests' conftest."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator

import httpx
import pytest
from fastapi import FastAPI

from ..conftest import Tenant, context

CSRF_FIELD = re.compile(r'name="csrf_token" value="([^"]+)"')


class Browser:
    """A signed-in browser: cookies kept, the CSRF token read from the pages like a form does."""

    def __init__(self, client: httpx.AsyncClient) -> None:
        self.client = client
        self.csrf = ""

    async def sign_in(self, key: str) -> httpx.Response:
        page = await self.client.get("/login")
        token = csrf_of(page.text)
        answer = await self.client.post(
            "/login", data={"api_key": key, "csrf_token": token, "next": "/audiences"}
        )
        if answer.status_code == 303:
            self.csrf = csrf_of((await self.client.get("/audiences")).text)
        return answer

    async def get(self, url: str, **kw: object) -> httpx.Response:
        return await self.client.get(url, **kw)  # type: ignore[arg-type]

    async def post(
        self, url: str, data: dict[str, str] | None = None, **kw: object
    ) -> httpx.Response:
        """A form POST carrying the session's CSRF token (as a page's form does)."""
        return await self.client.post(
            url,
            data={"csrf_token": self.csrf, **(data or {})},
            **kw,  # type: ignore[arg-type]
        )


def csrf_of(html: str) -> str:
    found = CSRF_FIELD.search(html)
    assert found is not None, "no csrf_token field in the page"
    return found.group(1)


async def browser_for(app: FastAPI, tenant: Tenant) -> AsyncIterator[Browser]:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://dash") as client:
        browser = Browser(client)
        signed = await browser.sign_in(tenant.key)
        assert signed.status_code == 303, signed.text
        yield browser
    await context(app).launcher.drain()


@pytest.fixture
async def alice_browser(app: FastAPI, alice: Tenant) -> AsyncIterator[Browser]:
    async for browser in browser_for(app, alice):
        yield browser


@pytest.fixture
async def bob_browser(app: FastAPI, bob: Tenant) -> AsyncIterator[Browser]:
    async for browser in browser_for(app, bob):
        yield browser
