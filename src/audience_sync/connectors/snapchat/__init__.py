"""Snapchat Customer Lists: the connector, its record shape, and its registry entry."""

from __future__ import annotations

from audience_sync.config import FeatureFlag
from audience_sync.connectors.registry import MembershipLifetime, PlatformSpec
from audience_sync.connectors.snapchat.connector import (
    DEFAULT_RETENTION_DAYS,
    SnapchatAudienceConnector,
    snapchat_token_url,
)
from audience_sync.connectors.snapchat.records import SCHEMAS
from audience_sync.domain.models import SyncPlatform
from audience_sync.identifiers import platforms as rules

__all__ = [
    "DEFAULT_RETENTION_DAYS",
    "SCHEMAS",
    "SPEC",
    "SnapchatAudienceConnector",
    "snapchat_token_url",
]

SPEC = PlatformSpec(
    key=SyncPlatform.SNAPCHAT,
    display_name="Snapchat",
    connector=SnapchatAudienceConnector,
    rules=rules.SNAPCHAT,
    base_url_setting="snapchat_base_url",
    flag=FeatureFlag.AUDIENCE_SYNC_SNAPCHAT,
    # [SEEN: Snap Customer Lists API, read-only approximate_number_users]
    size_note="Snapchat reports approximate_number_users, an approximation",
    # [SEEN: Snap Marketing API "Customer Lists": retention_in_days "# of days to retain
    # audience members", "Default retention is lifetime represented as 9999"]
    membership=MembershipLifetime(
        option="retention_in_days",
        default_days=DEFAULT_RETENTION_DAYS,
        forever=DEFAULT_RETENTION_DAYS,
        source="https://developers.snap.com/api/marketing-api/Ads-API/customer-lists",
    ),
)
