"""TikTok custom audiences: the connector, its record shape, and its registry entry."""

from __future__ import annotations

from audience_sync.config import FeatureFlag
from audience_sync.connectors.registry import PlatformSpec
from audience_sync.connectors.tiktok.connector import TikTokAudienceConnector
from audience_sync.connectors.tiktok.records import SCHEMA, mobile_id_schema
from audience_sync.domain.models import SyncPlatform
from audience_sync.identifiers import platforms as rules

__all__ = ["SCHEMA", "SPEC", "TikTokAudienceConnector", "mobile_id_schema"]

SPEC = PlatformSpec(
    key=SyncPlatform.TIKTOK,
    display_name="TikTok",
    connector=TikTokAudienceConnector,
    rules=rules.TIKTOK,
    base_url_setting="tiktok_base_url",
    flag=FeatureFlag.AUDIENCE_SYNC_TIKTOK,
    # [SEEN, third-party only: KrishnaMehta123/Suggestedits tiktok-remarketing-faqs.md, sizes
    # update 24-48 hours after an upload; mParticle/docs TikTok audience page, 1,000 users
    # before an audience is reflected] [INFER: removals are counted on the same delay]
    size_note="TikTok updates cover_num 24 to 48 hours after an upload",
)
