"""Connectors: adding N pre-hashed members to each platform's in-process sandbox.

The time of one `add_users` call is split three ways: inside the sandbox app (the emulated
platform: parsing, validating, storing), waiting on our own client-side rate limiter (the
platform's documented budget, e.g. Snapchat's 10 requests/s), and the rest, which is ours
(normalizing and hashing, building payloads, JSON, the HTTP layer). Members/s are given over the
whole call and over our time alone. One timed run per platform (each run is ~100 requests).
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from typing import Any

import httpx

from audience_sync.config import Settings
from audience_sync.connectors import Credentials, RateLimiters, connector_for
from audience_sync.domain.models import AudienceConfig, AudienceUser, IdentifierType, UserIdentifier
from audience_sync.sandbox import SandboxSettings, create_app
from audience_sync.testing import PREFIXES, SANDBOX_URL
from benchmarks import BenchOptions, Table, register

PLATFORMS = ("meta", "google", "tiktok", "snapchat")


class TimedApp:
    """An ASGI wrapper adding up the time spent inside the app (the sandbox's share)."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.seconds = 0.0
        self.cpu_seconds = 0.0  # the calling thread's CPU time inside the app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        started, cpu = time.perf_counter(), time.thread_time()
        try:
            await self.app(scope, receive, send)
        finally:
            self.seconds += time.perf_counter() - started
            self.cpu_seconds += time.thread_time() - cpu


def prehashed_users(rows: int) -> list[AudienceUser]:
    return [
        AudienceUser(
            f"p{i}",
            (
                UserIdentifier(
                    IdentifierType.EMAIL,
                    hashlib.sha256(f"user{i}@example.com".encode()).hexdigest(),
                ),
            ),
        )
        for i in range(rows)
    ]


async def run_one(platform: str, users: list[AudienceUser]) -> dict[str, float]:
    app = create_app(SandboxSettings(processing_seconds=0))
    timed = TimedApp(app)
    credentials = Credentials(access_token="sandbox-token", developer_token="bench")
    connector = connector_for(
        platform,
        Settings(),
        credentials,
        ad_account_id="1234567890",
        options={"connection": {"customer_match_terms_accepted": True}},  # Google's terms
        base_url=SANDBOX_URL + PREFIXES[platform],
        transport=httpx.ASGITransport(app=timed),
        limiters=RateLimiters(),
        poll_interval=0.01,
    )
    async with connector:
        config = AudienceConfig(name="Bench", ad_account_id="1234567890")
        audience_id = await connector.create_audience(config)
        assert audience_id.platform_audience_id
        timed.seconds = 0.0
        started = time.perf_counter()
        result = await connector.add_users(audience_id.platform_audience_id, users)
        wall = time.perf_counter() - started
        waited = connector.http.waited
    assert result.accepted == len(users), result
    held = app.state.sandbox.audiences.popitem()[1].size
    assert held == len(users), held
    return {
        "wall": wall,
        "sandbox": timed.seconds,
        "waited": waited,
        "ours": wall - timed.seconds - waited,
        "requests": float(len(result.details["batches"])),
    }


# Rates, not totals: 200,000 members a platform (20 requests of 10,000; TikTok's 200 of 1,000 at
# its rate limit) measure them as well as a million did, in a fifth of the time.
ROWS = 200_000


@register("connectors")
def bench_connectors(options: BenchOptions) -> None:
    rows = options.rows_or(ROWS)
    users = prehashed_users(rows)
    print(f"add_users of {rows:,} pre-hashed emails, batches of 10,000, in-process sandbox\n")
    table = Table(
        [
            "platform",
            "members",
            "requests",
            "wall s",
            "ours s",
            "sandbox s",
            "rate-limit wait s",
            "members/s (wall)",
            "members/s (ours)",
        ]
    )
    for platform in PLATFORMS:
        figures = asyncio.run(run_one(platform, users))
        table.row(
            [
                platform,
                f"{rows:,}",
                f"{figures['requests']:.0f}",
                f"{figures['wall']:.2f}",
                f"{figures['ours']:.2f}",
                f"{figures['sandbox']:.2f}",
                f"{figures['waited']:.2f}",
                f"{rows / figures['wall']:,.0f}",
                f"{rows / figures['ours']:,.0f}",
            ]
        )
