"""The Meta connector acts on Meta's published error codes: throttling waits, a block is final."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
from fastapi import FastAPI

from audience_sync.config import Settings
from audience_sync.connectors import Credentials, MetaAudienceConnector
from audience_sync.connectors.http import RateLimiters
from audience_sync.domain.models import AudienceConfig, SyncPlatform
from audience_sync.exceptions import (
    AuthExpiredError,
    PlatformRequestError,
    RateLimitError,
    ValidationError,
)
from audience_sync.sync.messages import describe
from audience_sync.testing import PREFIXES, SANDBOX_URL, FakeTime, make_users


@pytest.fixture
def time() -> FakeTime:
    return FakeTime()


@pytest.fixture
async def meta(sandbox: FastAPI, time: FakeTime) -> AsyncIterator[MetaAudienceConnector]:
    connector = MetaAudienceConnector(
        Settings(),
        Credentials(access_token="sandbox-token"),
        ad_account_id="42",
        base_url=SANDBOX_URL + PREFIXES["meta"],
        transport=httpx.ASGITransport(app=sandbox),
        limiters=RateLimiters(),
        sleep=time.sleep,
        clock=time.clock,
    )
    yield connector
    await connector.aclose()


async def _fault(
    control: httpx.AsyncClient, code: int, subcode: int | None = None, count: int = 1
) -> None:
    fault = {
        "kind": "platform_error",
        "platform": "meta",
        "path": "/users$",
        "code": code,
        "subcode": subcode,
        "count": count,
    }
    assert (await control.post("/_sandbox/faults", json=fault)).status_code == 201


@pytest.mark.parametrize(
    ("code", "subcode"),
    [(80004, None), (80003, None), (613, 1487742), (17, 2446079), (4, None), (32, None),
     (341, None)],
)  # fmt: skip
async def test_a_throttling_code_is_retried_after_backing_off(
    meta: MetaAudienceConnector,
    control: httpx.AsyncClient,
    time: FakeTime,
    code: int,
    subcode: int | None,
) -> None:
    audience_id = await meta.create(AudienceConfig(name="B", ad_account_id="act_42"))
    await _fault(control, code, subcode, count=2)
    result = await meta.add_users(audience_id, make_users(0, 5))
    assert result.success
    assert result.platform_received == 5
    assert len(time.sleeps) == 2
    assert all(s >= 0 for s in time.sleeps)
    assert meta.http.calls == 4  # create, two throttled tries, the one that landed


async def test_a_policy_block_368_is_final_and_says_so(
    meta: MetaAudienceConnector, control: httpx.AsyncClient, time: FakeTime
) -> None:
    audience_id = await meta.create(AudienceConfig(name="B", ad_account_id="act_42"))
    await _fault(control, 368, count=5)
    with pytest.raises(PlatformRequestError) as caught:
        await meta.add_users(audience_id, make_users(0, 5))
    assert not isinstance(caught.value, RateLimitError)
    assert time.sleeps == []
    assert meta.http.calls == 2
    message = describe(caught.value, SyncPlatform.META)
    assert "policy" in message
    assert "will not retry" in message


@pytest.mark.parametrize("subcode", [None, 458, 460, 463, 467])
async def test_a_token_error_190_asks_for_a_reconnect_whatever_its_subcode(
    meta: MetaAudienceConnector, control: httpx.AsyncClient, subcode: int | None
) -> None:
    audience_id = await meta.create(AudienceConfig(name="B", ad_account_id="act_42"))
    await _fault(control, 190, subcode)
    with pytest.raises(AuthExpiredError):
        await meta.add_users(audience_id, make_users(0, 5))


@pytest.mark.parametrize("code", [10, 200, 294])
async def test_a_missing_permission_is_final_and_names_the_permission_problem(
    meta: MetaAudienceConnector, control: httpx.AsyncClient, time: FakeTime, code: int
) -> None:
    audience_id = await meta.create(AudienceConfig(name="B", ad_account_id="act_42"))
    await _fault(control, code)
    with pytest.raises(PlatformRequestError) as caught:
        await meta.add_users(audience_id, make_users(0, 5))
    assert time.sleeps == []
    assert "permission" in describe(caught.value, SyncPlatform.META).lower()


async def test_a_failed_custom_audience_update_2650_is_final(
    meta: MetaAudienceConnector, control: httpx.AsyncClient, time: FakeTime
) -> None:
    audience_id = await meta.create(AudienceConfig(name="B", ad_account_id="act_42"))
    await _fault(control, 2650, 1870034)
    with pytest.raises(ValidationError):
        await meta.add_users(audience_id, make_users(0, 5))
    assert time.sleeps == []
