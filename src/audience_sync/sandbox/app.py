"""The sandbox ASGI app: platform routers behind a middleware that logs and injects faults."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from fastapi import FastAPI, Request
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from audience_sync.sandbox import (
    controls,
    google_ads,
    google_ads_model,
    google_common,
    google_dm,
    meta,
    oauth,
    oauth_google,
    oauth_meta,
    oauth_snapchat,
    oauth_tiktok,
    snapchat,
    tiktok,
)
from audience_sync.sandbox.dialect import Dialect, SandboxError, platform_of
from audience_sync.sandbox.faults import FaultKind, FaultRule
from audience_sync.sandbox.settings import SandboxSettings
from audience_sync.sandbox.state import AuthFailure, SandboxState

DIALECTS: dict[str, Dialect] = {
    "meta": meta.DIALECT,
    "google": google_common.DIALECT,
    "googleads": google_ads_model.DIALECT,
    "tiktok": tiktok.DIALECT,
    "snapchat": snapchat.DIALECT,
}


class ConnectionDroppedError(ConnectionResetError):
    """Raised in-process (no socket to close) where a dropped connection was injected."""


class SandboxMiddleware:
    """Times and logs every platform request, and applies injected faults before routing."""

    def __init__(self, app: ASGIApp, state: SandboxState) -> None:
        self.app = app
        self.state = state

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        # Mounted under a path (`serve --demo`: /sandbox), Starlette keeps the full path in
        # `path` and the mount point in `root_path`: the platform's path is what follows it.
        path = _below_mount(scope) if scope["type"] == "http" else ""
        platform = platform_of(path) if path else None
        if platform is None:
            await self.app(scope, receive, send)
            return
        state, method = self.state, scope["method"]
        started, at = time.perf_counter(), state.now()
        status: list[int | None] = [None]

        async def logged_send(message: Message) -> None:
            if message["type"] == "http.response.start":
                status[0] = message["status"]
            await send(message)

        latency, rule = state.faults.take(platform, method, path)
        try:
            if latency:
                await asyncio.sleep(latency)
            if rule is None:
                await self.app(scope, receive, logged_send)
            else:
                await self._fault(rule, DIALECTS[platform], scope, receive, logged_send, send)
        finally:
            state.log.record(
                at=at,
                platform=platform,
                method=method,
                path=path,
                query=scope.get("query_string", b"").decode("latin-1"),
                status=status[0],
                duration_ms=(time.perf_counter() - started) * 1000,
                fault=rule.kind.value if rule else ("latency" if latency else None),
            )

    async def _fault(
        self,
        rule: FaultRule,
        dialect: Dialect,
        scope: Scope,
        receive: Receive,
        send: Send,
        raw_send: Send,
    ) -> None:
        if rule.kind is FaultKind.SERVER_ERROR:
            await dialect.server_error(rule.status)(scope, receive, send)
        elif rule.kind is FaultKind.RATE_LIMIT:
            response = dialect.rate_limited(rule.retry_after)
            response.headers["Retry-After"] = str(max(0, round(rule.retry_after)))
            await response(scope, receive, send)
        elif rule.kind is FaultKind.EXPIRED_TOKEN:
            await dialect.auth_error(AuthFailure.EXPIRED)(scope, receive, send)
        elif rule.kind is FaultKind.PLATFORM_ERROR:
            assert rule.code is not None
            await dialect.coded_error(rule.code, rule.subcode)(scope, receive, send)
        elif rule.kind is FaultKind.TIMEOUT:
            held: list[Message] = []

            async def hold(message: Message) -> None:
                held.append(message)

            if rule.process:
                await self.app(scope, receive, hold)
            await asyncio.sleep(rule.delay_seconds)
            if not held:  # not processed: the client has long given up; answer a 504
                await dialect.server_error(504)(scope, receive, send)
            for message in held:
                await send(message)
        else:  # DROP_CONNECTION
            if rule.process:

                async def discard(message: Message) -> None:
                    return None

                await self.app(scope, receive, discard)
            await _drop(scope.get(RAW_SEND_KEY, raw_send))


RAW_SEND_KEY = "audience_sync.sandbox.raw_send"


def _below_mount(scope: Scope) -> str:
    """The request's path after the mount point (`root_path`), as the routes see it."""
    path: str = scope["path"]
    root: str = scope.get("root_path", "")
    return path[len(root) :] if root and path.startswith(root + "/") else path


class SandboxApp(FastAPI):
    """FastAPI, keeping the server's own `send` in the scope so a fault can drop the socket."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        scope[RAW_SEND_KEY] = send
        await super().__call__(scope, receive, send)


async def _drop(send: Send) -> None:
    """Close the socket without an answer. Uvicorn's `send` is a bound method of the request
    cycle, which holds the transport: aborting it is the only way ASGI offers to drop a
    connection. In-process (no transport) the app raises instead."""
    cycle: Any = getattr(send, "__self__", None)
    transport = getattr(cycle, "transport", None)
    if transport is None:
        raise ConnectionDroppedError("sandbox fault: connection dropped")
    transport.abort()
    for _ in range(10):  # let uvicorn see the disconnect, so it sends no 500 of its own
        if getattr(cycle, "disconnected", True):
            break
        await asyncio.sleep(0)


def create_app(settings: SandboxSettings | None = None) -> FastAPI:
    """The sandbox as one ASGI app; mount it in-process with `httpx.ASGITransport(app=...)`."""
    settings = settings or SandboxSettings()
    state = SandboxState(settings)
    app = SandboxApp(
        title="Audience Sync platform sandbox",
        description="Emulators of the Meta, Google, TikTok and Snapchat audience APIs.",
        docs_url="/_sandbox/docs",
        openapi_url="/_sandbox/openapi.json",
        redoc_url=None,
    )
    app.state.sandbox = state
    app.include_router(controls.build_router())
    # Before the platform routers: `/meta/v26.0/me` must not be read as an audience id.
    app.include_router(oauth.control_router())
    app.include_router(oauth_meta.build_router())
    app.include_router(oauth_google.build_router())
    app.include_router(oauth_tiktok.build_router())
    app.include_router(oauth_snapchat.build_router())
    app.include_router(meta.build_router())
    app.include_router(google_dm.build_router())
    app.include_router(google_ads.build_router())
    app.include_router(tiktok.build_router())
    app.include_router(snapchat.build_router())

    @app.exception_handler(SandboxError)
    async def platform_error(request: Request, exc: SandboxError) -> Response:
        return exc.response

    @app.api_route(
        "/{prefix:path}", methods=["GET", "POST", "PUT", "PATCH", "DELETE"], include_in_schema=False
    )
    async def unknown(request: Request, prefix: str) -> Response:
        """Paths no emulator knows get the owning platform's not-found answer."""
        platform = platform_of(request.url.path)
        if platform is None:
            return Response(status_code=404)
        return DIALECTS[platform].not_found(request.method, request.url.path)

    app.add_middleware(SandboxMiddleware, state=state)
    return app
