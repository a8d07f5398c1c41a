"""Google Customer Match (Data Manager API; the Google Ads API path with `google_api="ads"`):
the connectors, their record shape, and the registry entry."""

from __future__ import annotations

from audience_sync.config import FeatureFlag
from audience_sync.connectors.google.ads import GoogleAdsAudienceConnector
from audience_sync.connectors.google.connector import GoogleAudienceConnector
from audience_sync.connectors.google.errors import google_error, google_token_url, status_check
from audience_sync.connectors.google.records import (
    ADDRESS_FIELDS,
    CONTACT_FIELDS,
    CONTACT_KEYS,
    MAX_IDENTIFIERS,
)
from audience_sync.connectors.registry import MembershipLifetime, PlatformSpec
from audience_sync.domain.models import SyncPlatform
from audience_sync.identifiers import platforms as rules

__all__ = [
    "ADDRESS_FIELDS",
    "CONTACT_FIELDS",
    "CONTACT_KEYS",
    "MAX_IDENTIFIERS",
    "SPEC",
    "GoogleAdsAudienceConnector",
    "GoogleAudienceConnector",
    "google_error",
    "google_token_url",
    "status_check",
]

SPEC = PlatformSpec(
    key=SyncPlatform.GOOGLE,
    display_name="Google",
    connector=GoogleAudienceConnector,
    rules=rules.GOOGLE,
    base_url_setting="google_base_url",
    flag=FeatureFlag.AUDIENCE_SYNC_GOOGLE,
    connection_settings=frozenset(
        {
            "login_account_id",
            "customer_match_terms_accepted",
            "consent_ad_user_data",
            "consent_ad_personalization",
        }
    ),
    # [SEEN: googleapis user_list.proto size_for_display "Estimated number of users"; Google's
    # Customer Match example: "It may take several hours for the user list to be populated"]
    size_note="Google's size is an estimate of users, populated over several hours",
    variants={"google_api": {"ads": GoogleAdsAudienceConnector}},
    # [SEEN: Data Manager "Create a Customer Match audience": membershipDuration, "The duration
    # an audience member remains in the list after added ... If not set, defaults to the
    # maximum"; Google Ads blog 2025-02-12 "Update to Customer Match membership expiration":
    # maximum 540 days, membership_life_span > 540 is RangeError.TOO_HIGH]
    membership=MembershipLifetime(
        option="membership_days",
        default_days=540,
        max_days=540,
        source="https://developers.google.com/ads/blog/posts/2025/02/update-to-customer-match-membership",
    ),
)
