"""Error messages a marketer understands, from our error tree (never a token or an identifier)."""

from __future__ import annotations

from audience_sync.connectors.registry import platform_spec
from audience_sync.domain.models import SyncPlatform
from audience_sync.exceptions import (
    AudienceSyncError,
    AuthExpiredError,
    NotFoundError,
    PlatformConnectError,
    PlatformRequestError,
    PlatformServerError,
    PlatformTimeoutError,
    RateLimitError,
    ValidationError,
)


def describe(error: AudienceSyncError, platform: SyncPlatform) -> str:
    """One sentence saying what went wrong and what to do about it, in the platform's name
    (`PlatformSpec.display_name`); an unknown platform is an `UnknownPlatformError`."""
    name = platform_spec(platform).display_name
    detail = error.message
    if isinstance(error, AuthExpiredError):
        how = (
            f"reconnect the {name} account (`audience-sync connections set {platform.value} …` "
            f"or `PUT /api/v1/connections/{platform.value}`)."
        )
        expired = error.details.get("expired_at")
        if isinstance(expired, str):  # a token with no refresh grant reached its expiry
            return f"{name} access token expired on {expired[:10]} and cannot be renewed — {how}"
        if error.details.get("refresh_refused"):
            return f"{name} refused to renew the access token (the grant was revoked) — {how}"
        return f"{name} access token expired or was revoked — {how}"
    if isinstance(error, RateLimitError):
        return f"{name} is rate limiting requests; the sync will retry automatically."
    if isinstance(error, PlatformConnectError):
        host = error.details.get("host") or "its address"
        return (
            f"Could not connect to {name} at {host}: check the connection's base URL and this "
            "server's network; the sync will retry automatically."
        )
    if isinstance(error, PlatformTimeoutError):
        return f"{name} did not answer in time; the sync will retry automatically."
    if isinstance(error, PlatformServerError):
        return f"{name} had a server error; the sync will retry automatically."
    if isinstance(error, NotFoundError):
        return f"{detail} If the audience was deleted on {name}, delete it here or recreate it."
    if isinstance(error, ValidationError | PlatformRequestError):
        return f"{name} refused the request: {detail}"
    return detail
