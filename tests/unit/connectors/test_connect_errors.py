"""A platform that cannot be reached is reported as such, never as a timeout, on every platform."""

from __future__ import annotations

import socket

import pytest

from audience_sync.config import Settings
from audience_sync.connectors import Credentials, RateLimiters, connector_for
from audience_sync.domain.models import SyncPlatform
from audience_sync.exceptions import PlatformConnectError, PlatformTimeoutError
from audience_sync.sync.messages import describe
from audience_sync.testing import FakeTime

CREDENTIALS = Credentials(access_token="sandbox-token", developer_token="dev")


def closed_port() -> int:
    """A local port nothing listens on (bound, read, released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.mark.parametrize("platform", list(SyncPlatform))
async def test_a_refused_connection_says_it_could_not_connect_to_the_platform_at_its_host(
    platform: SyncPlatform,
) -> None:
    host = f"127.0.0.1:{closed_port()}"
    time = FakeTime()
    connector = connector_for(
        platform,
        Settings(),
        CREDENTIALS,
        ad_account_id="42",
        base_url=f"http://{host}/api",
        sleep=time.sleep,
        clock=time.clock,
        limiters=RateLimiters(),
    )
    with pytest.raises(PlatformConnectError) as caught:
        await connector.info("1")
    await connector.aclose()
    error = caught.value
    assert not isinstance(error, PlatformTimeoutError)
    assert error.message == f"Could not connect to {platform.value} at {host}"
    assert error.retryable
    message = describe(error, platform)
    assert message.startswith(f"Could not connect to {describe_name(platform)} at {host}")
    assert "in time" not in message


def describe_name(platform: SyncPlatform) -> str:
    return {"meta": "Meta", "google": "Google", "tiktok": "TikTok", "snapchat": "Snapchat"}[
        platform.value
    ]


async def test_a_host_that_does_not_resolve_is_a_connection_error_too() -> None:
    time = FakeTime()
    connector = connector_for(
        SyncPlatform.META,
        Settings(),
        CREDENTIALS,
        base_url="http://graph.example.invalid/v26.0",
        sleep=time.sleep,
        clock=time.clock,
        limiters=RateLimiters(),
        timeout=5,
    )
    with pytest.raises(PlatformConnectError) as caught:
        await connector.info("1")
    await connector.aclose()
    assert caught.value.message == "Could not connect to meta at graph.example.invalid"
