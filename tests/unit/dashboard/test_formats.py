"""How the dashboard writes figures and chart labels."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

from audience_sync.dashboard import formats
from audience_sync.dashboard.pages.audience import labels
from audience_sync.services.history import SyncPoint


def point(at: datetime) -> SyncPoint:
    return SyncPoint(uuid.uuid4(), at, platform_size=1, matched_size=1, match_rate=0.5)


def test_a_change_beside_an_arrow_has_no_sign_of_its_own() -> None:
    assert formats.points(-0.024) == "-2.4 pts"
    assert formats.points(-0.024, signed=False) == "2.4 pts"
    assert formats.points(None) == ""


def test_times_relative_to_now() -> None:
    now = datetime(2026, 12, 5, 12, tzinfo=UTC)
    assert formats.ago(now - timedelta(hours=3), now) == "3 h ago"
    assert formats.ago(now + timedelta(minutes=5), now) == "in 5 min"
    assert formats.ago(None, now) == "—"


def test_chart_labels_show_seconds_only_where_syncs_share_a_minute() -> None:
    start = datetime(2026, 12, 5, 12, 4, 1, tzinfo=UTC)
    found = labels(
        [point(start), point(start + timedelta(seconds=20)), point(start + timedelta(hours=1))]
    )
    assert found == ["Dec 05 12:04:01", "Dec 05 12:04:21", "Dec 05 13:04"]
