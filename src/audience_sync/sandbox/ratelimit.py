"""Token-bucket rate limiting per (family, key), with limits that `/_sandbox` can tighten."""

from __future__ import annotations

from audience_sync.sandbox.settings import RateLimit

FAMILIES = ("meta", "google", "googleads", "tiktok", "snapchat")
"""Rate-limit families: one per API (Google's two APIs have separate budgets)."""


class RateLimiter:
    """`requests` per `per_seconds` with bursts up to `requests`, refilled continuously."""

    def __init__(self, limits: dict[str, RateLimit | None]) -> None:
        self.limits: dict[str, RateLimit | None] = dict.fromkeys(FAMILIES)
        self.limits.update(limits)
        self._buckets: dict[tuple[str, str], tuple[float, float]] = {}

    def configure(self, family: str, limit: RateLimit | None) -> None:
        self.limits[family] = limit
        self._buckets = {k: v for k, v in self._buckets.items() if k[0] != family}

    def acquire(self, family: str, key: str, now: float, audiences: int = 0) -> float | None:
        """Spend one call; return None when allowed, else seconds until one is available."""
        limit = self.limits.get(family)
        if limit is None:
            return None
        capacity = float(limit.requests + limit.per_audience * audiences)
        rate = capacity / limit.per_seconds
        tokens, last = self._buckets.get((family, key), (capacity, now))
        tokens = min(capacity, tokens + (now - last) * rate)
        if tokens < 1.0:
            self._buckets[(family, key)] = (tokens, now)
            return (1.0 - tokens) / rate
        self._buckets[(family, key)] = (tokens - 1.0, now)
        return None

    def usage(self, family: str, key: str, now: float, audiences: int = 0) -> float:
        """Share of the budget in use, 0..100 (Meta's `call_count` header figure)."""
        limit = self.limits.get(family)
        if limit is None:
            return 0.0
        capacity = float(limit.requests + limit.per_audience * audiences)
        tokens, last = self._buckets.get((family, key), (capacity, now))
        tokens = min(capacity, tokens + (now - last) * capacity / limit.per_seconds)
        return round(100.0 * (1.0 - tokens / capacity), 1)
