"""What every platform emulator shares: its error dialect, token and rate-limit checks, bodies."""

from __future__ import annotations

import json
import re
from abc import ABC, abstractmethod
from typing import Any

from fastapi import Request
from starlette.responses import JSONResponse, Response

from audience_sync.sandbox.state import AuthFailure, SandboxState

HEX64 = re.compile(r"[0-9a-fA-F]{64}")
HEX32 = re.compile(r"[0-9a-fA-F]{32}")

PREFIXES: dict[str, str] = {
    "/meta/": "meta",
    "/googleads/": "googleads",
    "/google/": "google",
    "/tiktok/": "tiktok",
    "/snapchat/": "snapchat",
}
"""Path prefix → platform family (Google's Data Manager and Ads APIs answer differently)."""


def platform_of(path: str) -> str | None:
    for prefix, family in PREFIXES.items():
        if path.startswith(prefix):
            return family
    return None


class SandboxError(Exception):
    """Raised by an emulator to answer with a ready platform-shaped error response."""

    def __init__(self, response: Response) -> None:
        super().__init__(response.status_code)
        self.response = response


class Dialect(ABC):
    """How one platform words the failures every platform has."""

    family: str

    @abstractmethod
    def auth_error(self, failure: AuthFailure) -> Response: ...

    @abstractmethod
    def rate_limited(self, retry_after: float | None) -> Response: ...

    @abstractmethod
    def server_error(self, status: int) -> Response: ...

    @abstractmethod
    def not_found(self, method: str, path: str) -> Response: ...

    @abstractmethod
    def bad_request(self, message: str) -> Response:
        """A request the platform cannot parse at all (malformed JSON, wrong content type)."""

    def coded_error(self, code: int, subcode: int | None) -> Response:
        """The platform's answer for its error `code` (the `platform_error` fault). A dialect
        without a catalogue of codes answers its bad-request shape."""
        return self.bad_request(f"injected platform error {code}")

    def fail(self, response: Response) -> SandboxError:
        return SandboxError(response)


def sandbox_state(request: Request) -> SandboxState:
    state = request.app.state.sandbox
    assert isinstance(state, SandboxState)
    return state


def authorize(state: SandboxState, dialect: Dialect, token: str | None, platform: str) -> str:
    """Return the token if the sandbox accepts it for `platform`, else raise the auth error."""
    failure = state.tokens.check(platform, token, state.now())
    if failure is not None:
        raise SandboxError(dialect.auth_error(failure))
    assert token is not None
    return token


def throttle(
    state: SandboxState, dialect: Dialect, key: str, audiences: int = 0, family: str | None = None
) -> None:
    """Spend one call of `key`'s budget or raise the platform's rate-limit answer."""
    wait = state.limiter.acquire(family or dialect.family, key, state.now(), audiences)
    if wait is not None:
        raise SandboxError(dialect.rate_limited(wait))


def bearer(request: Request) -> str | None:
    header = request.headers.get("authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() in ("bearer", "oauth") and value.strip():
        return value.strip()
    return None


async def json_object(request: Request, dialect: Dialect) -> dict[str, Any]:
    """The request body as a JSON object, or the platform's bad-request answer."""
    raw = await request.body()
    if not raw.strip():
        return {}
    try:
        body = json.loads(raw)
    except ValueError as exc:
        raise SandboxError(dialect.bad_request(f"Invalid JSON payload received: {exc}")) from exc
    if not isinstance(body, dict):
        raise SandboxError(dialect.bad_request("The request body must be a JSON object."))
    return body


def json_response(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return JSONResponse(body, status_code=status, headers=headers)


def is_hex_digest(value: object, length: int = 64) -> bool:
    """A hex digest of `length` characters (SHA-256: 64, MD5: 32)."""
    if not isinstance(value, str) or len(value) != length:
        return False
    return (HEX64 if length == 64 else HEX32).fullmatch(value) is not None
