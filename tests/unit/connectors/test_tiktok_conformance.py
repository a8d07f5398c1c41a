"""The TikTok connector passes the conformance suite against the in-process sandbox."""

from audience_sync.testing import ConnectorConformance


class TestTikTokConformance(ConnectorConformance):
    platform = "tiktok"
