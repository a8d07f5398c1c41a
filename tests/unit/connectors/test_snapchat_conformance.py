"""The Snapchat connector passes the conformance suite against the in-process sandbox."""

from __future__ import annotations

import httpx

from audience_sync.testing import ConnectorConformance
from audience_sync.testing.conformance import Make
from audience_sync.testing.support import held_identifiers, make_users


class TestSnapchatConformance(ConnectorConformance):
    platform = "snapchat"

    async def test_create_then_add_then_info_shows_the_members(
        self, make: Make, control: httpx.AsyncClient
    ) -> None:
        # Snap's size counts the people it found, not the identifiers: every identifier
        # matching, the sandbox finds as many people as the schema holding the most values.
        connector = make()
        audience_id = await self.create(connector, make_users(0, 40))
        added = await connector.add_users(audience_id, make_users(40, 60))
        assert (added.sent, added.accepted, added.failed) == (20, 20, 0)
        await self.assert_holds(control, audience_id, make_users(0, 60))
        patch = {"match_rate": 1.0}
        await control.patch(f"/_sandbox/audiences/snapchat/{audience_id}", json=patch)
        info = await connector.get_audience_info(audience_id)
        held = await held_identifiers(control, "snapchat", audience_id)
        assert info["size"] == max(len(values) for values in held.values())
        assert info["size"] <= 60
