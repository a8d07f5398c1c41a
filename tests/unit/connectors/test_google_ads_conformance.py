"""The Google Ads API (OfflineUserDataJob) path passes the conformance suite too."""

from audience_sync.testing import ConnectorConformance


class TestGoogleAdsConformance(ConnectorConformance):
    platform = "google"
    options = {  # noqa: RUF012 - a class-level setting of the suite
        "google_api": "ads",
        "connection": {"customer_match_terms_accepted": True},
    }
