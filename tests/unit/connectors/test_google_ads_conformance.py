"""The Google Ads API (OfflineUserDataJob) path passes the conformance suite too."""

from audience_sync.testing import ConnectorConformance


class TestGoogleAdsConformance(ConnectorConformance):
    platform = "google"
    options = {"google_api": "ads"}  # noqa: RUF012 - a class-level setting of the suite
