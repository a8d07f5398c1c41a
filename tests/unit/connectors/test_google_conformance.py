"""The Google connector passes the conformance suite against the in-process sandbox."""

from audience_sync.testing import ConnectorConformance


class TestGoogleConformance(ConnectorConformance):
    platform = "google"
