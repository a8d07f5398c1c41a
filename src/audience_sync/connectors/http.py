"""The one HTTP layer every connector uses: timeouts, retries, rate limits, token refresh, errors.

`HttpClient.request` sends one platform call and either returns the parsed JSON body or raises
an error of our tree (`audience_sync.exceptions`), never an httpx error or platform JSON:

- a whole-call deadline (`asyncio.timeout`, so it holds for in-process transports too);
- the platform's `translate` hook turns an answer into our error, or None for success (TikTok
  answers errors with HTTP 200 and a `code`, so the status alone never decides);
- transient failures (rate limit, 5xx, timeout, dropped or refused connection) are retried a
  bounded number of times with exponential backoff and full jitter, honouring `Retry-After`; a
  call that is not idempotent (creating an audience) is not retried once it may have reached the
  platform; a connection that could not be made at all is "could not connect to <platform> at
  <host>" (`PlatformConnectError`), never a timeout;
- a token about to expire is refreshed before the call, and an expired one (a 401) once, through
  the OAuth refresh grant where the platform has one, then the call is repeated; a token past
  its known expiry with no refresh grant fails at once (`connectors.tokens`);
- a client-side token bucket per platform and access token keeps us under the documented rate;
- error messages are scrubbed of tokens, secrets, emails and mobile ids before they are raised.

Sleeping and the clock are injectable so tests never really wait.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import random
import re
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from typing import Any

import httpx
import orjson

from audience_sync.connectors.tokens import IssuedTokens, TokenStore, expires_soon
from audience_sync.exceptions import (
    AudienceSyncError,
    AuthExpiredError,
    PlatformConnectError,
    PlatformServerError,
    PlatformTimeoutError,
    RetryableError,
    ValidationError,
)

log = logging.getLogger(__name__)

Sleep = Callable[[float], Awaitable[None]]
Clock = Callable[[], float]
Translate = Callable[[int, Any, httpx.Headers], AudienceSyncError | None]
"""(HTTP status, parsed body or None, headers) → our error, or None when the call succeeded."""

SAFETY = 0.9
"""Share of a documented request rate the client-side limiter allows itself."""
_EMAIL = re.compile(r"[^\s@\"'<>()]+@[^\s@\"'<>()]+\.[A-Za-z]{2,}")
_UUID = re.compile(
    r"\b[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}\b"
)


@dataclass(frozen=True, slots=True)
class RateLimit:
    """`requests` calls per `per_seconds` seconds, with bursts up to `requests`."""

    requests: int
    per_seconds: float


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """Bounded in-request retries: `attempts` tries in all, full-jitter exponential backoff.

    A `Retry-After` longer than `max_retry_after` is not slept through: the error goes to the
    caller (the sync engine schedules a durable retry instead of holding a worker).
    """

    attempts: int = 5
    base_delay: float = 0.5
    max_delay: float = 30.0
    max_retry_after: float = 120.0

    def backoff(self, attempt: int, rng: random.Random) -> float:
        return rng.uniform(0, min(self.max_delay, self.base_delay * 2**attempt))


@dataclass(repr=False)
class Credentials:
    """What a connector authenticates with; `repr` never shows a secret.

    `access_token` is required; the refresh fields are used by platforms with a refresh grant
    (Google, Snapchat); `app_secret` adds Meta's `appsecret_proof`; `developer_token` and
    `login_customer_id` are the Google Ads API headers; `token_url` overrides the token endpoint.
    """

    access_token: str
    refresh_token: str | None = None
    client_id: str | None = None
    client_secret: str | None = None
    app_secret: str | None = None
    developer_token: str | None = None
    login_customer_id: str | None = None
    token_url: str | None = None

    def __repr__(self) -> str:
        return "Credentials(<redacted>)"

    def secrets(self) -> list[str]:
        values = (self.access_token, self.refresh_token, self.client_secret, self.app_secret)
        return [v for v in (*values, self.developer_token) if v]


class TokenBucket:
    """A token bucket: `acquire` waits (with the injected sleep) until a call is allowed."""

    def __init__(self, limit: RateLimit, clock: Clock) -> None:
        # Aim a little under the documented budget, burst and rate: the platform counts a call
        # when it arrives, a little after we do, and a call at the budget's edge is refused.
        self.capacity = float(max(1, int(SAFETY * limit.requests)))
        self.rate = SAFETY * limit.requests / limit.per_seconds
        self.tokens = self.capacity
        self.clock = clock
        self.last = clock()
        self.lock = asyncio.Lock()

    async def acquire(self, sleep: Sleep) -> float:
        """Take one call; return how long we waited for it."""
        async with self.lock:
            now = self.clock()
            self.tokens = min(self.capacity, self.tokens + (now - self.last) * self.rate)
            self.last = now
            if self.tokens >= 1.0:
                self.tokens -= 1.0
                return 0.0
            wait = (1.0 - self.tokens) / self.rate
            await sleep(wait)
            # The call takes the token that refilled while we slept (no float re-check loop).
            self.tokens = 0.0
            self.last = max(self.clock(), now + wait)
            return wait


@dataclass
class RateLimiters:
    """The buckets of one process, one per (platform, access token): shared by connectors."""

    buckets: dict[tuple[str, str], TokenBucket] = field(default_factory=dict)

    def bucket(self, platform: str, token: str, limit: RateLimit, clock: Clock) -> TokenBucket:
        key = (platform, hashlib.sha256(token.encode()).hexdigest()[:16])
        found = self.buckets.get(key)
        if found is None:
            found = self.buckets[key] = TokenBucket(limit, clock)
        return found


SHARED_LIMITERS = RateLimiters()


class TokenSource:
    """The current access token, its expiry, and its OAuth refresh (`grant_type=refresh_token`).

    `fresh` runs before every call: a token about to expire is refreshed first (a token that
    expired and has no refresh grant, Meta's long-lived one, is `AuthExpiredError` at once).
    `refresh` runs after a 401. With a `TokenStore` (`keep_in`), refreshes go through it: under
    its lock, written back at once; otherwise they live in memory only."""

    def __init__(self, credentials: Credentials, token_url: str | None) -> None:
        self.credentials = credentials
        self.token = credentials.access_token
        self.token_url = credentials.token_url or token_url
        self.lock = asyncio.Lock()
        self.refreshed = False
        self.expires_at: datetime | None = None
        self.lifetime: float | None = None
        self.store: TokenStore | None = None
        self.now: Callable[[], datetime] = lambda: datetime.now(UTC)

    def keep_in(
        self, store: TokenStore, expires_at: datetime | None, now: Callable[[], datetime]
    ) -> None:
        """Refresh through `store` from now on; `expires_at` is the stored token's expiry."""
        self.store, self.expires_at, self.now = store, expires_at, now

    @property
    def can_refresh(self) -> bool:
        c = self.credentials
        return bool(self.token_url and c.refresh_token and c.client_id and c.client_secret)

    async def fresh(self, client: httpx.AsyncClient, platform: str) -> None:
        """Before a call: refresh a token that expires within the margin (`tokens.margin`)."""
        now = self.now()
        if self.expires_at is None or not expires_soon(self.expires_at, now, self.lifetime):
            return
        if not self.can_refresh:
            if self.expires_at <= now:
                raise expired_for_good(platform, self.expires_at)
            return  # still valid: the connection shows its days left
        try:
            await self.refresh(client, platform, self.token)
        except RetryableError:
            if self.expires_at <= self.now():
                raise
            # The token still works a little longer: the next call tries the refresh again.
            log.warning(
                "token refresh failed, the token is still valid", extra={"platform": platform}
            )

    async def refresh(self, client: httpx.AsyncClient, platform: str, stale: str) -> None:
        async with self.lock:
            if self.token != stale:  # another call refreshed it meanwhile
                return

            async def grant(refresh_token: str) -> IssuedTokens:
                return await self._grant(client, platform, refresh_token)

            held = self.credentials.refresh_token
            if self.store is not None:
                issued = await self.store.refresh(grant, held)
            else:
                issued = await grant(held or "")
            self.token = issued.access_token
            if issued.refresh_token:  # a grant may issue a new refresh token
                self.credentials.refresh_token = issued.refresh_token
            self.expires_at, self.lifetime = issued.expires_at, issued.lifetime
            self.refreshed = True

    async def _grant(
        self, client: httpx.AsyncClient, platform: str, refresh_token: str
    ) -> IssuedTokens:
        """One refresh grant (RFC 6749 §6). Refused (4xx): `AuthExpiredError`, reconnect; the
        platform failing (5xx, 429, no answer): retryable, the refresh token is still good."""
        c = self.credentials
        form = {
            "grant_type": "refresh_token",
            "client_id": c.client_id or "",
            "client_secret": c.client_secret or "",
            "refresh_token": refresh_token,
        }
        try:
            response = await client.post(str(self.token_url), data=form)
        except httpx.ConnectError as exc:
            raise unreachable(platform, str(self.token_url)) from exc
        except (httpx.HTTPError, OSError) as exc:
            raise PlatformTimeoutError(
                "The token endpoint did not answer the refresh", platform=platform
            ) from exc
        if response.status_code == 429 or response.status_code >= 500:
            raise PlatformServerError(
                "The token endpoint failed to refresh the access token",
                platform=platform,
                status_code=response.status_code,
            )
        try:
            body = response.json() if response.is_success else {}
        except ValueError:
            body = {}
        token = body.get("access_token") if isinstance(body, dict) else None
        if not isinstance(token, str) or not token:
            raise AuthExpiredError(
                "The access token expired and the refresh grant was refused: reconnect the account",
                platform=platform,
                status_code=response.status_code,
                details={"refresh_refused": True},
            )
        log.info("connector token refreshed", extra={"platform": platform})
        return issued_tokens(body, token, self.now())


def issued_tokens(body: dict[str, Any], token: str, now: datetime) -> IssuedTokens:
    """A token endpoint's answer (`access_token`, `refresh_token`, `expires_in`, `scope`)."""
    rotated = body.get("refresh_token")
    lifetime = body.get("expires_in")
    seconds = float(lifetime) if isinstance(lifetime, int | float) and lifetime > 0 else None
    scope = body.get("scope")
    return IssuedTokens(
        access_token=token,
        refresh_token=rotated if isinstance(rotated, str) and rotated else None,
        expires_at=now + timedelta(seconds=seconds) if seconds else None,
        lifetime=seconds,
        scopes=scope if isinstance(scope, str) and scope else None,
    )


def expired_for_good(platform: str, expires_at: datetime) -> AuthExpiredError:
    """A token past its expiry with no refresh grant (Meta's long-lived token): reconnect."""
    return AuthExpiredError(
        f"The access token expired on {expires_at:%Y-%m-%d %H:%M} UTC and cannot be refreshed",
        platform=platform,
        details={"expired_at": expires_at.isoformat()},
    )


def scrub(message: str, secrets: list[str]) -> str:
    """The message without tokens, secrets, emails or mobile ids (I5: never in errors or logs)."""
    for secret in secrets:
        if secret:
            message = message.replace(secret, "<redacted>")
    return _UUID.sub("<id>", _EMAIL.sub("<email>", message))


def unreachable(platform: str, url: str) -> PlatformConnectError:
    """ "Could not connect to <platform> at <host[:port]>" (the host only: no path, no query)."""
    host = httpx.URL(url).netloc.decode("ascii", "replace")
    return PlatformConnectError(
        f"Could not connect to {platform} at {host}", platform=platform, details={"host": host}
    )


def retry_after_seconds(headers: httpx.Headers, now: float) -> float | None:
    """`Retry-After` as seconds (delta-seconds or an HTTP date), None when absent or unreadable."""
    raw = headers.get("retry-after")
    if raw is None:
        return None
    try:
        return max(0.0, float(raw))
    except ValueError:
        pass
    try:
        return max(0.0, parsedate_to_datetime(raw).timestamp() - now)
    except (TypeError, ValueError):
        return None


def unbind(response: httpx.Response) -> None:
    """Break the reference cycle httpx 0.28 makes of each response and its stream
    (`response.stream` wraps the body in a `BoundAsyncStream` that points back at the response,
    encode/httpx#3733), once the body is read: else the response, and the request it holds —
    a batch's body, up to several MB — lives until the cyclic garbage collector runs. A run
    that makes few Python objects (batches kept in columns) ran it seldom, and a Snapchat
    create held ~480 MB of sent bodies at its peak."""
    response.stream = httpx.ByteStream(b"")


def json_bytes(body: Any) -> bytes:
    """A request body as compact UTF-8 JSON, as httpx's `json=` writes it, ~25× faster (orjson:
    1.1 ms against 27.5 ms for a 10,000-row Meta body). Unlike `json.dumps` it writes NaN as
    null; no request of ours carries a float."""
    return orjson.dumps(body)


class HttpClient:
    """One platform's calls: auth headers, deadline, translation, retries, rate limit, refresh."""

    def __init__(
        self,
        *,
        platform: str,
        base_url: str,
        credentials: Credentials,
        auth_headers: Callable[[str], dict[str, str]],
        translate: Translate,
        rate_limit: RateLimit | None = None,
        token_url: str | None = None,
        retry: RetryPolicy | None = None,
        timeout: float = 60.0,
        transport: httpx.AsyncBaseTransport | None = None,
        sleep: Sleep | None = None,
        clock: Clock | None = None,
        limiters: RateLimiters | None = None,
        rng: random.Random | None = None,
    ) -> None:
        self.platform = platform
        self.base_url = base_url.rstrip("/")
        self.tokens = TokenSource(credentials, token_url)
        self.auth_headers = auth_headers
        self.translate = translate
        self.rate_limit = rate_limit
        self.retry = retry or RetryPolicy()
        self.timeout = timeout
        self.sleep: Sleep = sleep or asyncio.sleep
        self.clock: Clock = clock or time.monotonic
        self.limiters = limiters if limiters is not None else SHARED_LIMITERS
        self.rng = rng or random.Random()
        self.client = httpx.AsyncClient(
            transport=transport, timeout=httpx.Timeout(timeout, connect=min(timeout, 10.0))
        )
        self.calls = 0
        self.waited = 0.0  # seconds spent waiting on our own rate limiter

    async def aclose(self) -> None:
        await self.client.aclose()

    def url(self, path: str) -> str:
        return path if path.startswith(("http://", "https://")) else f"{self.base_url}/{path}"

    async def request(
        self,
        method: str,
        path: str,
        *,
        idempotent: bool = True,
        audience_id: str | None = None,
        batch: int | None = None,
        headers: Mapping[str, str] | None = None,
        **kwargs: Any,
    ) -> Any:
        """Send one call; return its JSON body (None when empty) or raise our error.

        `kwargs` go to `httpx.AsyncClient.request` (`json`, `data`, `params`, `files`); a `json`
        body is encoded once, with orjson, and re-sent as it is by every retry.
        """
        if "json" in kwargs:
            kwargs["content"] = json_bytes(kwargs.pop("json"))
            headers = {"Content-Type": "application/json", **(headers or {})}
        refreshed = False
        attempt = 0
        try:
            await self.tokens.fresh(self.client, self.platform)
        except AudienceSyncError as stopped:
            stopped.audience_id, stopped.batch = audience_id, batch
            raise
        while True:
            error, may_have_landed, body, cause = await self._attempt(method, path, headers, kwargs)
            if error is None:
                return body
            error.platform, error.audience_id, error.batch = self.platform, audience_id, batch
            error.message = scrub(error.message, self.tokens.credentials.secrets())
            error.args = (error.message,)
            if isinstance(error, AuthExpiredError) and self.tokens.can_refresh and not refreshed:
                refreshed = True
                await self.tokens.refresh(self.client, self.platform, self.tokens.token)
                continue
            attempt += 1
            if (
                not isinstance(error, RetryableError)
                or attempt >= self.retry.attempts
                or (may_have_landed and not idempotent)
            ):
                raise error from cause
            delay = error.retry_after
            if delay is None:
                delay = self.retry.backoff(attempt - 1, self.rng)
            elif delay > self.retry.max_retry_after:
                raise error from cause
            log.warning(
                "platform call failed, retrying",
                extra={
                    "platform": self.platform,
                    "error": type(error).__name__,
                    "status": error.status_code,
                    "attempt": attempt,
                    "delay": round(delay, 3),
                },
            )
            await self.sleep(delay)

    async def _attempt(
        self, method: str, path: str, headers: Mapping[str, str] | None, kwargs: dict[str, Any]
    ) -> tuple[AudienceSyncError | None, bool, Any, BaseException | None]:
        """One try: (error or None, may the call have landed, body, the httpx cause)."""
        token = self.tokens.token
        if self.rate_limit is not None:
            bucket = self.limiters.bucket(self.platform, token, self.rate_limit, self.clock)
            self.waited += await bucket.acquire(self.sleep)
        self.calls += 1
        sent = {**self.auth_headers(token), **(headers or {})}
        try:
            url = httpx.URL(self.url(path))
        except httpx.InvalidURL as exc:  # an id stored before ids were checked (domain.accounts)
            refused = ValidationError(
                "The platform URL built from this audience's ids is not valid; check the "
                "connection's ad account id and the audience's platform id."
            )
            return refused, False, None, exc
        try:
            async with asyncio.timeout(self.timeout):
                response = await self.client.request(method, url, headers=sent, **kwargs)
                content = await response.aread()
                unbind(response)
        except (TimeoutError, httpx.TimeoutException) as exc:
            late = PlatformTimeoutError(f"The platform did not answer within {self.timeout}s")
            return late, True, None, exc
        except httpx.ConnectError as exc:  # refused, or the host name does not resolve
            return unreachable(self.platform, self.url(path)), False, None, exc
        except (httpx.TransportError, OSError) as exc:
            dropped = PlatformTimeoutError("The connection dropped before an answer")
            return dropped, True, None, exc
        try:
            body: Any = response.json() if content.strip() else None
        except ValueError:
            body = None
        error = self.translate(response.status_code, body, response.headers)
        if error is None:
            return None, False, body, None
        if isinstance(error, RetryableError) and error.retry_after is None:
            error.retry_after = retry_after_seconds(response.headers, time.time())
        return error, False, body, None
