"""Test support shipped with the package: the connector conformance suite.

from audience_sync.testing import ConnectorConformance

class TestSnapchatConformance(ConnectorConformance):
    platform = "snapchat"
"""

from __future__ import annotations

from audience_sync.testing.conformance import ConnectorConformance, corrupt
from audience_sync.testing.support import (
    PREFIXES,
    SANDBOX_URL,
    UPLOAD_PATHS,
    FakeTime,
    expected_identifiers,
    held_identifiers,
    make_users,
    register_family,
    sandbox_server,
    sent_value,
)

__all__ = [
    "PREFIXES",
    "SANDBOX_URL",
    "UPLOAD_PATHS",
    "ConnectorConformance",
    "FakeTime",
    "corrupt",
    "expected_identifiers",
    "held_identifiers",
    "make_users",
    "register_family",
    "sandbox_server",
    "sent_value",
]
