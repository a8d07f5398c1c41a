"""The TikTok connector passes the conformance suite against the in-process sandbox."""

from __future__ import annotations

import httpx
import pytest

from audience_sync.exceptions import ValidationError
from audience_sync.testing import ConnectorConformance
from audience_sync.testing.conformance import Make
from audience_sync.testing.support import make_users


class TestTikTokConformance(ConnectorConformance):
    platform = "tiktok"

    async def test_replace_leaves_exactly_the_new_members(
        self, make: Make, control: httpx.AsyncClient
    ) -> None:
        # TikTok's only replace (a customer-file REPLACE) does not take segment-API audiences:
        # the connector refuses, and the audience keeps its members. The sync engine replaces
        # by difference (tests/integration/sync/test_tiktok_replace.py).
        connector = make()
        audience_id = await self.create(connector, make_users(0, 1_200))
        with pytest.raises(ValidationError, match="Customer File"):
            await connector.replace_audience(audience_id, make_users(600, 1_800))
        await self.assert_holds(control, audience_id, make_users(0, 1_200))
