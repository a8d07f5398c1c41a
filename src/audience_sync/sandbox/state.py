"""The sandbox's in-memory world: a settable clock, audiences, tokens, and per-platform extras."""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass, field
from enum import Enum
from typing import Any, TypeVar

from audience_sync.sandbox.faults import FaultBook
from audience_sync.sandbox.members import KeySpace, MemberStore
from audience_sync.sandbox.ratelimit import RateLimiter
from audience_sync.sandbox.requestlog import RequestLog
from audience_sync.sandbox.settings import SANDBOX_REFRESH_TOKEN, SANDBOX_TOKEN, SandboxSettings

T = TypeVar("T")

# First ids handed out per platform, shaped like the real ones (numeric strings). [INFER]
_ID_BASES = {
    "meta": 23_850_000_000_000_000,
    "google": 9_100_000_000,
    "tiktok": 7_400_000_000_000_000_000,
    "snapchat": 5_715_031_928_864_768,
}


# Where a platform documents that members leave an audience some time after their last upload:
# the audience attribute holding the days, and the value that means "never".
# [SEEN: Google Data Manager "Create a Customer Match audience", membershipDuration: "The duration
# an audience member remains in the list after added" (Ads API: membership_life_span);
# Snap Marketing API "Customer Lists", retention_in_days: "# of days to retain audience members",
# "Default retention is lifetime represented as 9999"]. Meta customer lists and TikTok customer
# files document no member lifetime (docs/freshness.md).
MEMBER_LIFETIMES: dict[str, tuple[str, int | None]] = {
    "google": ("membership_days", None),
    "snapchat": ("retention_in_days", 9999),
}
DAY = 86400.0


class Clock:
    """Wall-clock time plus an offset that `/_sandbox/clock` can move forward."""

    def __init__(self) -> None:
        self.offset = 0.0

    def now(self) -> float:
        return time.time() + self.offset

    def advance(self, seconds: float) -> None:
        self.offset += seconds


@dataclass
class Audience:
    """One platform audience: who owns it, what it is called, and the rows it holds."""

    platform: str
    audience_id: str
    name: str
    ad_account_id: str
    members: MemberStore
    created_at: float
    updated_at: float
    description: str = ""
    attributes: dict[str, Any] = field(default_factory=dict)
    """Platform-specific settings (subtype, retention, calculate type, key type, ...)."""
    last_upload_at: float | None = None
    last_replace_at: float | None = None
    expired: int = 0  # members dropped because their membership lifetime ran out

    @property
    def size(self) -> int:
        return len(self.members)

    def touch(self, now: float, *, upload: bool = False) -> None:
        self.updated_at = now
        if upload:
            self.last_upload_at = now


class AuthFailure(Enum):
    """Why a request's token was refused; each platform words these its own way."""

    MISSING = "missing"
    INVALID = "invalid"
    EXPIRED = "expired"


@dataclass
class IssuedToken:
    """What the sandbox remembers of an access or refresh token it issued."""

    platform: str | None  # None: valid for every platform (the fixed sandbox tokens)
    expires_at: float | None
    client_id: str | None = None
    """The OAuth app it was issued to; None for the fixed tokens and `/_sandbox/tokens` ones,
    which any client credentials may refresh (so scripts and the suite keep working)."""
    scopes: tuple[str, ...] = ()
    refresh_token: str | None = None
    """For an access token, the refresh token it was minted from (revoked with it)."""


class TokenRegistry:
    """Access and refresh tokens the sandbox issued; `sandbox-token` is always valid."""

    def __init__(self) -> None:
        self._access: dict[str, IssuedToken] = {SANDBOX_TOKEN: IssuedToken(None, None)}
        self._refresh: dict[str, IssuedToken] = {SANDBOX_REFRESH_TOKEN: IssuedToken(None, None)}
        self._rotated: dict[str, str] = {}  # a rotated-out refresh token → its successor

    def issue(
        self,
        platform: str,
        ttl_seconds: float | None,
        now: float,
        *,
        client_id: str | None = None,
        scopes: tuple[str, ...] = (),
        refresh_token: str | None = None,
    ) -> str:
        token = f"sbx-{platform}-{secrets.token_urlsafe(18)}"
        expires = None if ttl_seconds is None else now + ttl_seconds
        self._access[token] = IssuedToken(platform, expires, client_id, scopes, refresh_token)
        return token

    def issue_refresh(
        self, platform: str, *, client_id: str | None = None, scopes: tuple[str, ...] = ()
    ) -> str:
        token = f"sbx-{platform}-refresh-{secrets.token_urlsafe(18)}"
        self._refresh[token] = IssuedToken(platform, None, client_id, scopes)
        return token

    def rotate(self, platform: str, token: str) -> str:
        """A new refresh token in place of `token`, which stops working (rotation)."""
        grant = self._refresh.pop(token)
        successor = self.issue_refresh(platform, client_id=grant.client_id, scopes=grant.scopes)
        self._rotated[token] = successor
        return successor

    def reused(self, platform: str, token: str) -> bool:
        """Whether `token` was rotated out; if so its live successors are revoked (RFC 9700
        §4.14.2: the server cannot tell which party presented it, so neither keeps the grant)."""
        successor = self._rotated.get(token)
        if successor is None:
            return False
        while successor is not None:
            self.revoke(platform, successor)
            successor = self._rotated.get(successor)
        return True

    def knows_refresh(self, platform: str, token: str) -> bool:
        return self.refresh_grant(platform, token) is not None

    def refresh_grant(self, platform: str, token: str) -> IssuedToken | None:
        """The refresh token's record if it is live for `platform`."""
        known = self._refresh.get(token)
        if known is None or known.platform not in (None, platform):
            return None
        return known

    def access(self, platform: str, token: str | None) -> IssuedToken | None:
        """The access token's record if it is known for `platform` (expired or not)."""
        known = self._access.get(token or "")
        if known is None or known.platform not in (None, platform):
            return None
        return known

    def revoke(self, platform: str, token: str) -> bool:
        """Forget an access token and the refresh token it came from, or a refresh token and
        every access token minted from it. The fixed tokens cannot be revoked (the whole suite
        relies on them)."""
        if token in (SANDBOX_TOKEN, SANDBOX_REFRESH_TOKEN):
            return False
        if self.refresh_grant(platform, token) is not None:
            del self._refresh[token]
            for value in [t for t, v in self._access.items() if v.refresh_token == token]:
                del self._access[value]
            return True
        known = self.access(platform, token)
        if known is not None:
            del self._access[token]
            if known.refresh_token:  # the grant goes with it (Google's revoke endpoint)
                self.revoke(platform, known.refresh_token)
            return True
        return False

    def revoke_client(self, platform: str, client_id: str) -> None:
        """Forget every token `client_id` holds on `platform` (a user removing the app)."""
        for tokens in (self._access, self._refresh):
            for value in [
                t for t, v in tokens.items() if (v.platform, v.client_id) == (platform, client_id)
            ]:
                del tokens[value]

    def check(self, platform: str, token: str | None, now: float) -> AuthFailure | None:
        if not token:
            return AuthFailure.MISSING
        known = self.access(platform, token)
        if known is None:
            return AuthFailure.INVALID
        if known.expires_at is not None and now >= known.expires_at:
            return AuthFailure.EXPIRED
        return None


class SandboxState:
    """Everything the emulators remember; `reset()` returns it to a fresh start."""

    def __init__(self, settings: SandboxSettings) -> None:
        self.settings = settings
        self.clock = Clock()
        self.faults = FaultBook()
        self.limiter = RateLimiter(settings.rate_limits)
        self.log = RequestLog(settings.request_log_size)
        self.tokens = TokenRegistry()
        self.audiences: dict[tuple[str, str], Audience] = {}
        self.extras: dict[str, object] = {}
        self._next_id = dict(_ID_BASES)

    def reset(self) -> None:
        self.__init__(self.settings)  # type: ignore[misc]

    def now(self) -> float:
        return self.clock.now()

    def new_id(self, platform: str) -> str:
        self._next_id[platform] += 1
        return str(self._next_id[platform])

    def create_audience(
        self, platform: str, keyspace: KeySpace, name: str, ad_account_id: str, **attributes: Any
    ) -> Audience:
        now = self.now()
        audience = Audience(
            platform=platform,
            audience_id=self.new_id(platform),
            name=name,
            ad_account_id=ad_account_id,
            members=MemberStore(keyspace, self.settings.default_match_rate),
            created_at=now,
            updated_at=now,
            attributes=attributes,
        )
        self.audiences[(platform, audience.audience_id)] = audience
        return audience

    def audience(self, platform: str, audience_id: str) -> Audience | None:
        found = self.audiences.get((platform, audience_id))
        if found is not None:
            self.expire_members(found)
        return found

    def expire_members(self, audience: Audience) -> int:
        """Drop the members whose last upload is older than the audience's membership lifetime
        on the sandbox clock (`MEMBER_LIFETIMES`); lazily, whenever the audience is looked up."""
        lifetime = MEMBER_LIFETIMES.get(audience.platform)
        if lifetime is None:
            return 0
        attribute, forever = lifetime
        days = audience.attributes.get(attribute)
        if not isinstance(days, int) or (forever is not None and days >= forever):
            return 0
        gone = audience.members.expire(self.now() - days * DAY)
        audience.expired += gone
        return gone

    def delete_audience(self, platform: str, audience_id: str) -> bool:
        return self.audiences.pop((platform, audience_id), None) is not None

    def audiences_of(self, platform: str, ad_account_id: str | None = None) -> list[Audience]:
        found = [
            a
            for (p, _), a in self.audiences.items()
            if p == platform and (ad_account_id is None or a.ad_account_id == ad_account_id)
        ]
        for audience in found:
            self.expire_members(audience)
        return found

    def platform_state(self, platform: str, factory: type[T]) -> T:
        """The platform module's own state object (created on first use, dropped on reset)."""
        value = self.extras.get(platform)
        if value is None:
            value = factory()
            self.extras[platform] = value
        if not isinstance(value, factory):
            raise TypeError(f"sandbox extras for {platform} hold {type(value).__name__}")
        return value
