"""Ad account ids go into platform URL paths: the rule every entry point applies."""

from __future__ import annotations

import asyncio

import httpx
import pytest

from audience_sync.connectors.http import Credentials, HttpClient
from audience_sync.domain.accounts import ad_account_problem
from audience_sync.exceptions import ValidationError


@pytest.mark.parametrize(
    "value",
    ["act_1234567890", "1234567890", "123-456-7890", "6f1c6a62-3f0e-4a36-9b8e-2d1c1e4f9a10", "a"],
)
def test_every_platforms_ids_pass(value: str) -> None:
    assert ad_account_problem(value) is None


@pytest.mark.parametrize(
    "value", ["", "act_1/../me", "act 1", "act_1?x=1", "a#b", "act_\x19", "-1", "x" * 129, "é1"]
)
def test_what_would_change_a_url_path_is_refused_without_echoing_it(value: str) -> None:
    problem = ad_account_problem(value)
    assert problem is not None


def test_an_unbuildable_url_is_a_validation_error_not_a_crash() -> None:
    """An id stored before ids were checked: the call is refused with a clear error."""

    async def call() -> None:
        transport = httpx.MockTransport(lambda request: httpx.Response(200, json={}))
        client = HttpClient(
            platform="meta",
            base_url="http://platform.test/v1",
            credentials=Credentials(access_token="token-123"),
            auth_headers=lambda token: {"Authorization": f"Bearer {token}"},
            translate=lambda status, body, headers: None,
            transport=transport,
        )
        try:
            await client.request("GET", "act_\x19x/customaudiences")
        finally:
            await client.aclose()

    with pytest.raises(ValidationError, match="ad account id"):
        asyncio.run(call())
