"""Keeping an access token valid: what a refresh gives, and where refreshed tokens are kept.

A connector holds its tokens in `http.TokenSource`. Before a call it refreshes a token about to
expire (`expires_soon`), and after a 401 it refreshes once. Without a `TokenStore` a refresh
lives in memory only (scripts, the conformance suite); the sync engine attaches one
(`sync.tokens`) that refreshes under a lock on the connection's row and writes the new tokens
back at once, so two workers never both spend a refresh token (docs/connections.md, "Keeping
tokens valid"). The connectors layer defines the seam; it never imports the store.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Protocol

REFRESH_MARGIN = timedelta(minutes=5)
"""A token expiring within this is refreshed before the next call (capped by `margin`)."""


@dataclass(frozen=True, slots=True)
class IssuedTokens:
    """An access token, the refresh token that goes with it (None: keep the one we have), when
    the access token expires (None: unknown or never) and how long it was issued for."""

    access_token: str
    refresh_token: str | None = None
    expires_at: datetime | None = None
    lifetime: float | None = None  # seconds, as the grant said (`expires_in`)
    scopes: str | None = None  # space-separated, as the grant said

    def __repr__(self) -> str:
        return "IssuedTokens(<redacted>)"


RefreshGrant = Callable[[str], Awaitable[IssuedTokens]]
"""Calls the platform's refresh grant with this refresh token; raises our errors
(`AuthExpiredError` when refused, `RetryableError` when the platform failed)."""


class TokenStore(Protocol):
    """Where a connection's tokens are kept between runs (the sync engine's connection row)."""

    async def refresh(self, grant: RefreshGrant, refresh_token: str | None) -> IssuedTokens:
        """The tokens to use from now on. Guarded against other workers: when the stored tokens
        changed since this store last read them and are not about to expire, they are returned
        and `grant` is not called; otherwise `grant` is called with the stored refresh token
        (`refresh_token`, ours, when nothing is stored any more) and its answer kept."""
        ...


def margin(lifetime: float | None) -> timedelta:
    """How early to refresh: `REFRESH_MARGIN`, or a quarter of a shorter token's lifetime (a
    five-second token would otherwise be refreshed before every call)."""
    if lifetime is None:
        return REFRESH_MARGIN
    return min(REFRESH_MARGIN, timedelta(seconds=lifetime / 4))


def expires_soon(expires_at: datetime | None, now: datetime, lifetime: float | None = None) -> bool:
    """Whether a token expiring at `expires_at` should be refreshed before a call at `now`."""
    return expires_at is not None and expires_at - now <= margin(lifetime)
