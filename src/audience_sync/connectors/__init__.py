"""Connectors for Meta, Google, TikTok and Snapchat over one HTTP layer (see docs/connectors.md).

connector = connector_for(SyncPlatform.META, settings, Credentials(access_token=...),
                          ad_account_id="act_1")
async with connector:
    created = await connector.create_audience(config, users)
    await connector.add_users(created.platform_audience_id, more_users)
"""

from __future__ import annotations

from typing import Any

from audience_sync.config import Settings
from audience_sync.connectors.base import (
    BaseAudienceConnector,
    Capabilities,
    Operation,
)
from audience_sync.connectors.google import GoogleAudienceConnector
from audience_sync.connectors.google_ads import GoogleAdsAudienceConnector
from audience_sync.connectors.http import Credentials, RateLimit, RateLimiters, RetryPolicy
from audience_sync.connectors.meta import MetaAudienceConnector
from audience_sync.connectors.snapchat import SnapchatAudienceConnector
from audience_sync.connectors.tiktok import TikTokAudienceConnector
from audience_sync.domain.models import SyncPlatform
from audience_sync.exceptions import ConfigurationError

__all__ = [
    "CONNECTORS",
    "BaseAudienceConnector",
    "Capabilities",
    "Credentials",
    "GoogleAdsAudienceConnector",
    "GoogleAudienceConnector",
    "MetaAudienceConnector",
    "Operation",
    "RateLimit",
    "RateLimiters",
    "RetryPolicy",
    "SnapchatAudienceConnector",
    "TikTokAudienceConnector",
    "connector_class",
    "connector_for",
]

CONNECTORS: dict[SyncPlatform, type[BaseAudienceConnector]] = {
    SyncPlatform.META: MetaAudienceConnector,
    SyncPlatform.GOOGLE: GoogleAudienceConnector,
    SyncPlatform.TIKTOK: TikTokAudienceConnector,
    SyncPlatform.SNAPCHAT: SnapchatAudienceConnector,
}


def connector_class(
    platform: SyncPlatform | str, options: dict[str, Any] | None = None
) -> type[BaseAudienceConnector]:
    """The connector class for a platform; Google's Ads API path with `google_api="ads"`."""
    try:
        target = SyncPlatform(str(platform))
    except ValueError:
        raise ConfigurationError(f"No connector for platform {platform!r}") from None
    if target is SyncPlatform.GOOGLE and (options or {}).get("google_api") == "ads":
        return GoogleAdsAudienceConnector
    return CONNECTORS[target]


def connector_for(
    platform: SyncPlatform | str,
    settings: Settings,
    credentials: Credentials,
    *,
    ad_account_id: str | None = None,
    options: dict[str, Any] | None = None,
    base_url: str | None = None,
    **kwargs: Any,
) -> BaseAudienceConnector:
    """Build the connector of one platform connection.

    `ad_account_id` is the connection's account (Meta ad account, Google customer, TikTok
    advertiser, Snapchat ad account); `options` the audience's configuration (Google consent,
    terms of service, list type, `google_api`; Snapchat retention; Meta customer_file_source);
    `base_url` overrides the settings' URL (a connection pointed at the sandbox). Other keyword
    arguments (`transport`, `retry`, `timeout`, `sleep`, `clock`, `limiters`, `poll_interval`,
    `poll_timeout`) go to `BaseAudienceConnector`.
    """
    cls = connector_class(platform, options)
    return cls(
        settings,
        credentials,
        ad_account_id=ad_account_id,
        options=options,
        base_url=base_url,
        **kwargs,
    )
