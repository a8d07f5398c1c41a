"""The Google connector passes the conformance suite against the in-process sandbox."""

from audience_sync.testing import ConnectorConformance


class TestGoogleConformance(ConnectorConformance):
    platform = "google"
    # The connection records the Customer Match terms accepted (docs/connectors.md).
    options = {"connection": {"customer_match_terms_accepted": True}}  # noqa: RUF012
