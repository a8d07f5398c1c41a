"""Meta Custom Audiences: the connector, its record shape, and its registry entry."""

from __future__ import annotations

from datetime import timedelta

from audience_sync.config import FeatureFlag
from audience_sync.connectors.meta.connector import (
    POLICY_BLOCK,
    REPLACE_RESTART_SUBCODE,
    MetaAudienceConnector,
    wire_rows,
)
from audience_sync.connectors.meta.records import KEYS, LDU_KEYS, ldu_values
from audience_sync.connectors.registry import InactivityRule, PlatformSpec
from audience_sync.domain.models import SyncPlatform
from audience_sync.identifiers import platforms as rules

__all__ = [
    "KEYS",
    "LDU_KEYS",
    "POLICY_BLOCK",
    "REPLACE_RESTART_SUBCODE",
    "SPEC",
    "MetaAudienceConnector",
    "ldu_values",
    "wire_rows",
]

SPEC = PlatformSpec(
    key=SyncPlatform.META,
    display_name="Meta",
    connector=MetaAudienceConnector,
    rules=rules.META,
    base_url_setting="meta_base_url",
    flag=FeatureFlag.AUDIENCE_SYNC_META,
    connection_settings=frozenset({"limited_data_use"}),
    # [SEEN: facebook-python-business-sdk CustomAudience fields] only approximate bounds exist.
    size_note="Meta reports an approximate count (approximate_count_lower_bound), not an exact one",
    # [SEEN: Marketing API Custom Audience reference: "custom audiences that have not been used
    # in any active ad sets in over two years will be deleted on a rolling basis automatically"]
    # Customer-list members do not expire: no membership lifetime is documented.
    inactivity=InactivityRule(
        after=timedelta(days=730),
        what="not used in any active ad set",
        source="https://developers.facebook.com/docs/marketing-api/reference/custom-audience",
    ),
)
