"""Each connector against `audience-sync sandbox` over a real socket (uvicorn in a thread)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from audience_sync.config import Settings
from audience_sync.connectors import Credentials, RateLimiters, connector_for
from audience_sync.domain.models import AudienceConfig
from audience_sync.testing import PREFIXES, expected_identifiers, make_users, sandbox_server


@pytest.fixture(scope="module")
def base_url() -> Iterator[str]:
    with sandbox_server() as url:
        yield url


CASES: list[tuple[str, dict[str, Any]]] = [
    ("meta", {}),
    ("google", {"connection": {"customer_match_terms_accepted": True}}),
    ("google", {"google_api": "ads", "connection": {"customer_match_terms_accepted": True}}),
    ("tiktok", {}),
    ("snapchat", {}),
]


@pytest.mark.parametrize(
    ("platform", "options"), CASES, ids=["meta", "google", "googleads", "tiktok", "snapchat"]
)
async def test_a_connector_creates_fills_reads_and_deletes_an_audience_over_http(
    base_url: str, platform: str, options: dict[str, Any]
) -> None:
    family = "googleads" if options.get("google_api") else platform
    credentials = Credentials(
        access_token="sandbox-token",
        refresh_token="sandbox-refresh-token",
        client_id="e2e",
        client_secret="e2e-secret",
        developer_token="e2e-developer-token",
    )
    connector = connector_for(
        platform,
        Settings(max_batch_size=50),
        credentials,
        ad_account_id="1234567890",
        options=options,
        base_url=base_url + PREFIXES[family],
        limiters=RateLimiters(),
        poll_interval=0.05,
        timeout=10,
    )
    async with connector, httpx.AsyncClient(base_url=base_url) as control:
        await control.post("/_sandbox/reset")
        config = AudienceConfig(name="E2E", ad_account_id="1234567890", options=options)
        created = await connector.create_audience(config, make_users(0, 80))
        audience_id = created.platform_audience_id
        assert audience_id is not None
        added = await connector.add_users(audience_id, make_users(80, 120))
        assert (created.accepted, added.accepted) == (80, 40)
        held = (await control.get("/_sandbox/audiences")).json()
        [audience] = [a for a in held if a["audience_id"] == audience_id]
        assert audience["identifiers"] == expected_identifiers(family, make_users(0, 120))
        if family == "snapchat":
            # Snap's size counts people found, not identifiers: with every identifier
            # matching, as many as the schema holding the most values.
            await control.patch(
                f"/_sandbox/audiences/snapchat/{audience_id}", json={"match_rate": 1}
            )
            found = max(len(values) for values in audience["identifiers"].values())
            assert (await connector.get_audience_info(audience_id))["size"] == found
        else:
            info = await connector.get_audience_info(audience_id)
            assert info["size"] == audience["matched"]
        await connector.delete_audience(audience_id)
        assert (await control.get("/_sandbox/audiences")).json() == []
