"""A bounded log of the requests the platform emulators answered (`GET /_sandbox/requests`)."""

from __future__ import annotations

from collections import deque
from typing import Any


class RequestLog:
    """The newest `size` entries, oldest first."""

    def __init__(self, size: int) -> None:
        self._entries: deque[dict[str, Any]] = deque(maxlen=size)
        self._seq = 0

    def record(
        self,
        *,
        at: float,
        platform: str,
        method: str,
        path: str,
        query: str,
        status: int | None,
        duration_ms: float,
        fault: str | None,
    ) -> None:
        self._seq += 1
        self._entries.append(
            {
                "seq": self._seq,
                "at": at,
                "platform": platform,
                "method": method,
                "path": path,
                "query": query,
                "status": status,
                "duration_ms": round(duration_ms, 3),
                "fault": fault,
            }
        )

    def entries(
        self, platform: str | None = None, limit: int | None = None
    ) -> list[dict[str, Any]]:
        rows = [e for e in self._entries if platform is None or e["platform"] == platform]
        return rows[-limit:] if limit else rows
