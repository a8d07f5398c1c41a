"""A bound on the dashboard's request bodies: its forms are small, so a large body is refused
before it is read (the API's own gate covers only `/api/v1`)."""

from __future__ import annotations

from collections.abc import Callable

from starlette.responses import PlainTextResponse
from starlette.types import ASGIApp, Receive, Scope, Send

from audience_sync.api.limits import BodyTooLargeError, read_bounded, replay, route_path

# The largest dashboard form (a connection's credentials) is a few kilobytes.
MAX_FORM_BYTES = 64 * 1024


class FormLimit:
    def __init__(self, app: ASGIApp, applies: Callable[[str], bool]) -> None:
        self.app = app
        self.applies = applies

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            scope["type"] != "http"
            or scope["method"] in ("GET", "HEAD", "OPTIONS")
            or not self.applies(route_path(scope))
        ):
            await self.app(scope, receive, send)
            return
        try:
            body = await read_bounded(scope, receive, MAX_FORM_BYTES)
        except BodyTooLargeError:
            await _too_large(scope, receive, send)
            return
        if body is None:  # the client went away while sending
            return
        await self.app(scope, replay(body, receive), send)


async def _too_large(scope: Scope, receive: Receive, send: Send) -> None:
    answer = PlainTextResponse(
        f"This form is larger than {MAX_FORM_BYTES // 1024} KiB; nothing was saved.",
        status_code=413,
    )
    await answer(scope, receive, send)
