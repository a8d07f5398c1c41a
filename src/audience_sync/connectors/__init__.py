"""Connectors for every registered platform over one HTTP layer (see docs/connectors.md).

connector = connector_for("meta", settings, Credentials(access_token=...), ad_account_id="act_1")
async with connector:
    created = await connector.create_audience(config, users)
    await connector.add_users(created.platform_audience_id, more_users)

Each platform is a package here (`meta/`, `google/`, `tiktok/`, `snapchat/`) with a `SPEC`, its
`PlatformSpec`; this module registers the built-in ones (`connectors.registry`). A platform
added later registers its own spec with `register_platform`: nothing here lists it.
"""

from __future__ import annotations

from typing import Any

from audience_sync.config import Settings
from audience_sync.connectors import google, meta, snapchat, tiktok
from audience_sync.connectors.base import (
    BaseAudienceConnector,
    Capabilities,
    Operation,
)
from audience_sync.connectors.google import GoogleAdsAudienceConnector, GoogleAudienceConnector
from audience_sync.connectors.http import Credentials, RateLimit, RateLimiters, RetryPolicy
from audience_sync.connectors.meta import MetaAudienceConnector
from audience_sync.connectors.registry import (
    PlatformSpec,
    platform_names,
    platform_spec,
    platforms,
    register_platform,
)
from audience_sync.connectors.snapchat import SnapchatAudienceConnector
from audience_sync.connectors.tiktok import TikTokAudienceConnector
from audience_sync.domain.models import SyncPlatform

__all__ = [
    "BUILT_IN",
    "BaseAudienceConnector",
    "Capabilities",
    "Credentials",
    "GoogleAdsAudienceConnector",
    "GoogleAudienceConnector",
    "MetaAudienceConnector",
    "Operation",
    "PlatformSpec",
    "RateLimit",
    "RateLimiters",
    "RetryPolicy",
    "SnapchatAudienceConnector",
    "TikTokAudienceConnector",
    "connector_class",
    "connector_for",
    "platform_names",
    "platform_spec",
    "platforms",
    "register_platform",
]

BUILT_IN: tuple[PlatformSpec, ...] = (meta.SPEC, google.SPEC, tiktok.SPEC, snapchat.SPEC)
for _spec in BUILT_IN:
    register_platform(_spec)
# Each built-in is a `SyncPlatform` member and the other way round.
assert {spec.key for spec in BUILT_IN} == set(SyncPlatform)


def connector_class(
    platform: SyncPlatform | str, options: dict[str, Any] | None = None
) -> type[BaseAudienceConnector]:
    """The connector class for a platform (a variant's where the options choose one: Google's
    Ads API path with `google_api="ads"`); `UnknownPlatformError` for an unknown platform."""
    chosen: type[BaseAudienceConnector] = platform_spec(platform).connector_class(options)
    return chosen


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
