"""The shared HTTP layer: retries, Retry-After, idempotency, rate limiting, refresh, redaction."""

from __future__ import annotations

import gc
import random
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from audience_sync.connectors.http import (
    Credentials,
    HttpClient,
    RateLimit,
    RateLimiters,
    RetryPolicy,
    TokenBucket,
    retry_after_seconds,
    scrub,
)
from audience_sync.connectors.tokens import IssuedTokens, RefreshGrant, expires_soon, margin
from audience_sync.exceptions import (
    AudienceSyncError,
    AuthExpiredError,
    PlatformServerError,
    PlatformTimeoutError,
    RateLimitError,
    platform_error_for_status,
)
from audience_sync.testing import FakeTime

Handler = Callable[[httpx.Request], httpx.Response]


def by_status(status: int, body: Any, headers: httpx.Headers) -> AudienceSyncError | None:
    return None if status < 400 else platform_error_for_status(status, f"HTTP {status}")


def client(
    handler: Handler, time: FakeTime, credentials: Credentials | None = None, **kwargs: Any
) -> HttpClient:
    return HttpClient(
        platform="test",
        base_url="http://platform/v1",
        credentials=credentials or Credentials(access_token="tok-123"),
        auth_headers=lambda token: {"Authorization": f"Bearer {token}"},
        translate=by_status,
        transport=httpx.MockTransport(handler),
        sleep=time.sleep,
        clock=time.clock,
        limiters=RateLimiters(),
        rng=random.Random(7),
        **kwargs,
    )


def answers(*responses: httpx.Response) -> tuple[Handler, list[httpx.Request]]:
    seen: list[httpx.Request] = []
    queue = list(responses)

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return queue.pop(0) if len(queue) > 1 else queue[0]

    return handler, seen


async def test_retry_after_is_waited_exactly_before_the_retry() -> None:
    time = FakeTime()
    handler, seen = answers(
        httpx.Response(429, headers={"Retry-After": "12"}), httpx.Response(200, json={"ok": 1})
    )
    http = client(handler, time)
    assert await http.request("POST", "things") == {"ok": 1}
    assert time.sleeps == [12.0]
    assert len(seen) == 2
    await http.aclose()


async def test_a_sent_body_is_freed_with_its_answer_without_the_garbage_collector() -> None:
    # httpx ties each response and its stream in a cycle (encode/httpx#3733): without
    # `unbind` a batch's body lived until the cyclic collector ran.
    http = client(lambda request: httpx.Response(200, json={"ok": 1}), FakeTime())
    gc.collect()
    gc.disable()
    try:
        assert await http.request("POST", "things", json={"data": ["x" * 1000]}) == {"ok": 1}
        alive = [o for o in gc.get_objects() if isinstance(o, httpx.Request | httpx.Response)]
    finally:
        gc.enable()
    assert alive == []
    await http.aclose()


async def test_retries_are_bounded_and_back_off_with_jitter_under_an_exponential_cap() -> None:
    time = FakeTime()
    handler, seen = answers(httpx.Response(503))
    policy = RetryPolicy(attempts=4, base_delay=1.0, max_delay=30.0)
    http = client(handler, time, retry=policy)
    with pytest.raises(PlatformServerError):
        await http.request("GET", "things")
    assert len(seen) == 4
    assert len(time.sleeps) == 3
    assert all(0 <= s <= 2**n for n, s in enumerate(time.sleeps))
    await http.aclose()


async def test_a_retry_after_beyond_the_cap_goes_to_the_caller_with_its_delay() -> None:
    time = FakeTime()
    handler, seen = answers(httpx.Response(429, headers={"Retry-After": "3600"}))
    http = client(handler, time)
    with pytest.raises(RateLimitError) as caught:
        await http.request("GET", "things")
    assert caught.value.retry_after == 3600
    assert len(seen) == 1
    assert time.sleeps == []
    await http.aclose()


async def test_a_call_that_is_not_idempotent_is_not_retried_after_a_timeout() -> None:
    time = FakeTime()

    def slow(request: httpx.Request) -> httpx.Response:
        raise httpx.ReadTimeout("no answer", request=request)

    http = client(slow, time)
    with pytest.raises(PlatformTimeoutError):
        await http.request("POST", "audiences", idempotent=False)
    assert http.calls == 1
    with pytest.raises(PlatformTimeoutError):
        await http.request("POST", "members")
    assert http.calls == 1 + 5
    await http.aclose()


async def test_an_expired_token_is_refreshed_once_then_the_call_repeated() -> None:
    time = FakeTime()
    seen: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/token":
            assert b"refresh_token=refresh-1" in request.content
            return httpx.Response(200, json={"access_token": "tok-new"})
        seen.append(request.headers["Authorization"])
        if request.headers["Authorization"] == "Bearer tok-123":
            return httpx.Response(401)
        return httpx.Response(200, json={})

    credentials = Credentials(
        access_token="tok-123", refresh_token="refresh-1", client_id="c", client_secret="s"
    )
    http = client(handler, time, credentials, token_url="http://platform/token")
    await http.request("GET", "things")
    assert seen == ["Bearer tok-123", "Bearer tok-new"]
    await http.aclose()


async def test_a_refused_refresh_is_an_auth_error_that_names_no_secret() -> None:
    time = FakeTime()

    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/token":
            return httpx.Response(400, json={"error": "invalid_grant"})
        return httpx.Response(401)

    credentials = Credentials(
        access_token="tok-123", refresh_token="refresh-1", client_id="c", client_secret="s3cr3t"
    )
    http = client(handler, time, credentials, token_url="http://platform/token")
    with pytest.raises(AuthExpiredError) as caught:
        await http.request("GET", "things")
    text = f"{caught.value} {caught.value!r} {caught.value.details}"
    assert "tok-123" not in text
    assert "refresh-1" not in text
    assert "s3cr3t" not in text
    await http.aclose()


async def test_the_rate_limiter_spaces_calls_per_token_and_not_across_tokens() -> None:
    time = FakeTime()
    limiters = RateLimiters()
    limit = RateLimit(requests=10, per_seconds=1)
    first = limiters.bucket("snapchat", "token-a", limit, time.clock)
    assert limiters.bucket("snapchat", "token-a", limit, time.clock) is first
    waited = [await first.acquire(time.sleep) for _ in range(25)]
    # A burst of 9, then 16 at 9 a second: 10 a second less the safety margin.
    assert sum(waited) == pytest.approx(16 / 9)
    other = limiters.bucket("snapchat", "token-b", limit, time.clock)
    assert await other.acquire(time.sleep) == 0.0


async def test_a_bucket_refills_while_nobody_calls() -> None:
    time = FakeTime()
    bucket = TokenBucket(RateLimit(requests=3, per_seconds=1), time.clock)
    for _ in range(2):
        await bucket.acquire(time.sleep)
    time.now += 1.2
    assert await bucket.acquire(time.sleep) == 0.0


def test_scrub_takes_out_tokens_emails_and_mobile_ids() -> None:
    text = "token tok-9 for Jane.Doe@Example.com on 6D92078A-8246-4BA4-AE5B-76104861E7DC"
    assert scrub(text, ["tok-9"]) == "token <redacted> for <email> on <id>"


def test_credentials_never_show_a_secret_in_their_repr() -> None:
    credentials = Credentials(access_token="tok-1", client_secret="s", app_secret="a")
    assert "tok-1" not in repr(credentials)
    assert "tok-1" not in str(credentials)


def test_retry_after_is_read_as_seconds_or_an_http_date() -> None:
    assert retry_after_seconds(httpx.Headers({"Retry-After": "30"}), 0) == 30
    date = httpx.Headers({"Retry-After": "Thu, 01 Jan 1970 00:01:40 GMT"})
    assert retry_after_seconds(date, 40.0) == 60
    assert retry_after_seconds(httpx.Headers({"Retry-After": "soon"}), 0) is None
    assert retry_after_seconds(httpx.Headers(), 0) is None


class MemoryStore:
    """A `TokenStore` in memory: counts refreshes, as the connection row would keep them."""

    def __init__(self) -> None:
        self.refreshes: list[str | None] = []

    async def refresh(self, grant: RefreshGrant, refresh_token: str | None) -> IssuedTokens:
        self.refreshes.append(refresh_token)
        return await grant(refresh_token or "")


NOW = datetime(2026, 12, 1, tzinfo=UTC)
OAUTH = Credentials(
    access_token="tok-123", refresh_token="refresh-1", client_id="c", client_secret="s"
)


def refreshing(time: FakeTime, seen: list[str], token_status: int = 200) -> HttpClient:
    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request.url.path)
        if request.url.path == "/token":
            body = {"access_token": "tok-new", "expires_in": 3600}
            return httpx.Response(token_status, json=body if token_status == 200 else {})
        return httpx.Response(200, json={})

    return client(handler, time, Credentials(**vars(OAUTH)), token_url="http://platform/token")


async def test_a_token_expiring_within_the_margin_is_refreshed_before_the_call() -> None:
    seen: list[str] = []
    http = refreshing(FakeTime(), seen)
    store = MemoryStore()
    http.tokens.keep_in(store, NOW + timedelta(minutes=4), lambda: NOW)
    await http.request("GET", "things")
    assert seen == ["/token", "/v1/things"]
    assert store.refreshes == ["refresh-1"]
    assert http.tokens.expires_at == NOW + timedelta(hours=1)
    await http.request("GET", "things")  # an hour left now: no second refresh
    assert seen == ["/token", "/v1/things", "/v1/things"]
    await http.aclose()


async def test_a_failing_token_endpoint_keeps_a_token_that_still_works() -> None:
    seen: list[str] = []
    http = refreshing(FakeTime(), seen, token_status=503)
    http.tokens.keep_in(MemoryStore(), NOW + timedelta(minutes=4), lambda: NOW)
    await http.request("GET", "things")
    assert seen == ["/token", "/v1/things"]
    assert http.tokens.token == "tok-123"
    await http.aclose()


async def test_an_expired_token_with_no_refresh_grant_fails_before_any_call() -> None:
    seen: list[str] = []
    http = refreshing(FakeTime(), seen)
    http.tokens.credentials.refresh_token = None  # Meta's long-lived token
    http.tokens.keep_in(MemoryStore(), NOW - timedelta(seconds=1), lambda: NOW)
    with pytest.raises(AuthExpiredError) as caught:
        await http.request("GET", "things", audience_id="a1")
    assert seen == []
    assert caught.value.details["expired_at"] == (NOW - timedelta(seconds=1)).isoformat()
    assert caught.value.audience_id == "a1"
    await http.aclose()


def test_a_short_lived_token_is_refreshed_a_quarter_of_its_life_early() -> None:
    assert margin(None) == timedelta(minutes=5)
    assert margin(8.0) == timedelta(seconds=2)
    assert not expires_soon(NOW + timedelta(seconds=3), NOW, 8.0)
    assert expires_soon(NOW + timedelta(minutes=5), NOW)
