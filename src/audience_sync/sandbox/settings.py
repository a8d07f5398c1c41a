"""Settings of the platform sandbox: match rate, processing delays, rate limits, fixed tokens,
OAuth apps."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

SANDBOX_TOKEN = "sandbox-token"  # noqa: S105 - a documented public token, not a secret
"""The fixed access token every platform accepts, for quick starts and curl examples."""

SANDBOX_REFRESH_TOKEN = "sandbox-refresh-token"  # noqa: S105 - documented, not a secret
"""The fixed refresh token the Google and Snapchat token endpoints accept."""


class RateLimit(BaseModel):
    """`requests` calls per `per_seconds` seconds, as a token bucket (bursts up to `requests`).

    `per_audience` adds that many calls per live audience of the key, for Meta's
    business-use-case budget (`5000 + 40 x active custom audiences` an hour).
    """

    model_config = ConfigDict(frozen=True)

    requests: int = Field(gt=0)
    per_seconds: float = Field(gt=0)
    per_audience: int = Field(default=0, ge=0)


class OAuthApp(BaseModel):
    """An app registered with a platform's OAuth server: who may ask for a user's consent, with
    which secret, and where the platform may send the user back."""

    model_config = ConfigDict(frozen=True)

    client_id: str = Field(min_length=1)
    """Meta's app id, Google's and Snapchat's client id, TikTok's `app_id`."""
    client_secret: str = Field(min_length=1)
    name: str = "Audience Sync"
    """Shown on the consent page."""
    redirect_uris: tuple[str, ...] = ()
    """Exact redirect URIs allowed, as each platform matches them."""
    allow_loopback: bool = True
    """Also allow any `http://127.0.0.1:PORT/...` or `http://localhost:PORT/...` URI, so a local
    server on any port works out of the box (the demo apps). A sandbox convenience: the real
    platforms match registered URIs. [INFER]"""


def default_oauth_apps() -> dict[str, OAuthApp]:
    """One demo app per platform, so `serve --demo` can run every flow without setup."""
    return {
        platform: OAuthApp(
            client_id=f"sandbox-{platform}-app",
            client_secret=f"sandbox-{platform}-secret",
            name="Audience Sync (sandbox demo)",
        )
        for platform in ("meta", "google", "tiktok", "snapchat")
    }


def default_oauth_accounts() -> dict[str, tuple[str, ...]]:
    """The ad accounts the sandbox's signed-in user reaches on each platform (what the
    discovery reads list). The first is the demo's account on every platform."""
    return {
        "meta": ("act_1234567890", "act_2345678901"),
        "google": ("1234567890", "2345678901"),
        "tiktok": ("1234567890", "7400000000000000002"),
        "snapchat": ("1234567890", "8b5a3c1e-0000-4000-8000-000000000002"),
    }


def default_rate_limits() -> dict[str, RateLimit | None]:
    """The documented budgets, one per rate-limit family (see `ratelimit.FAMILIES`)."""
    return {
        # Meta custom-audience BUC, Limited tier: 5000 + 40 x active CAs per hour per ad account
        # (docs/platforms/meta.md §1.5).
        "meta": RateLimit(requests=5000, per_seconds=3600, per_audience=40),
        # Data Manager: 300 requests/min per Cloud project (docs/platforms/google.md §2.5). The
        # sandbox has no projects, so the access token stands in for one. [INFER]
        "google": RateLimit(requests=300, per_seconds=60),
        # Google Ads API: no per-minute figure documented for addOperations
        # (docs/platforms/google.md §2.5).
        "googleads": None,
        # TikTok: "QPS per app / advertiser", no figure in our sources; 10/s per token. [INFER]
        "tiktok": RateLimit(requests=10, per_seconds=1),
        # Snapchat: each access token averages 10 requests/s (docs/platforms/snapchat.md §4.5).
        "snapchat": RateLimit(requests=10, per_seconds=1),
    }


class SandboxSettings(BaseModel):
    """Everything about the sandbox that a test or an operator may want to change at start."""

    model_config = ConfigDict(frozen=True)

    default_match_rate: float = Field(default=0.7, ge=0.0, le=1.0)
    """Share of identifiers that "match" a platform user unless an audience says otherwise."""

    processing_seconds: float = Field(default=2.0, ge=0.0)
    """How long Snapchat's `upload_status=PROCESSING` lasts (the sandbox shortens the wait)."""

    google_processing_seconds: float = Field(default=30 * 60, ge=0.0)
    """How long a Data Manager request reads `PROCESSING` and a Google Ads job `RUNNING`. Google
    processes in "30 minutes to 24 hours" and says to wait 30 minutes before the first status
    read [SEEN: https://developers.google.com/data-manager/api/devguides/diagnostics]; the
    default is the shortest of that, so a test moves `POST /_sandbox/clock` past it."""

    meta_replace_session_seconds: float = Field(default=90 * 60, gt=0)
    """A Meta `usersreplace` session not finished within this time is abandoned. [INFER]"""

    tiktok_replace_interval_seconds: float = Field(default=24 * 3600, gt=0)
    """TikTok accepts one `REPLACE` update per audience in this interval. [INFER]"""

    google_token_ttl_seconds: float = Field(default=3600, gt=0)
    snapchat_token_ttl_seconds: float = Field(default=1800, gt=0)
    meta_token_ttl_seconds: float = Field(default=60 * 24 * 3600, gt=0)
    """Meta's long-lived user token: "about 60 days" (docs/connections.md)."""
    meta_short_token_ttl_seconds: float = Field(default=2 * 3600, gt=0)
    """Meta's short-lived user token from the code exchange: "an hour or two"."""
    oauth_code_ttl_seconds: dict[str, float] = Field(
        default_factory=lambda: {
            "meta": 600.0,
            "google": 600.0,
            "tiktok": 3600.0,
            "snapchat": 600.0,
        }
    )
    """How long an authorization code can be exchanged. TikTok's hour is documented; the
    others are not, 10 minutes is RFC 6749's recommended maximum (docs/connections.md)."""
    rotate_refresh_tokens: tuple[str, ...] = ()
    """Platforms whose refresh grant rotates the refresh token: each refresh answers a new one
    and the old one stops working; presenting a rotated-out one again revokes its successor
    too (reuse detection, RFC 9700 §4.14.2). Neither Google nor Snapchat documents rotation;
    this lets tests check a client never spends a refresh token twice. [INFER]"""
    oauth_apps: dict[str, OAuthApp] = Field(default_factory=default_oauth_apps)
    """Registered apps by platform at start; `/_sandbox/oauth/apps` adds more."""
    oauth_accounts: dict[str, tuple[str, ...]] = Field(default_factory=default_oauth_accounts)

    request_log_size: int = Field(default=10_000, gt=0)
    rate_limits: dict[str, RateLimit | None] = Field(default_factory=default_rate_limits)
