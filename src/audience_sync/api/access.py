"""The access log: method, path, status and duration — never the query string.

Replaces uvicorn's access log, which prints the query string: a download link's signature is a
credential and must not reach a log file. The path is the client's (percent-decoded): its control
characters are escaped, or `GET /x%0a…` would write a forged line of its own.
"""

from __future__ import annotations

import logging
import time

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from audience_sync.log import escape_control

log = logging.getLogger("audience_sync.api.access")


class AccessLog:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def record(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, record)
        finally:
            log.info(
                "%s %s %d %.0f ms",
                escape_control(str(scope["method"])),
                escape_control(str(scope["path"])),
                status,
                (time.perf_counter() - started) * 1000,
            )
