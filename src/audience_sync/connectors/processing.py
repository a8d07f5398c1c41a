"""What a platform reports, later, of a request it accepted at once and processes afterwards.

Google processes Data Manager requests and Google Ads jobs asynchronously: an upload is
accepted in seconds and processed in 30 minutes to 24 hours. A sync ends at acceptance; the
scheduler's confirmation step (`sync.confirm`) reads each request's status later with
`check_request`, one read a request.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

PROCESSING = "PROCESSING"
FAILED = "FAILED"


@dataclass
class RequestCheck:
    """One status read of one request: still processing, or how it ended."""

    request_id: str
    status: str  # the platform's word: PROCESSING, SUCCESS, PARTIAL_SUCCESS, FAILED
    refused: int = 0  # members refused while processing (no per-member detail)
    errors: dict[str, int] = field(default_factory=dict)  # reason → records
    warnings: dict[str, int] = field(default_factory=dict)  # reason → records
    match_range: str | None = None  # the platform's match-rate bucket, when it gives one

    @property
    def done(self) -> bool:
        return self.status != PROCESSING

    @property
    def failed(self) -> bool:
        """The request failed as a whole: whatever its counts say, nothing is confirmed."""
        return self.status == FAILED


@runtime_checkable
class ProcessingConnector(Protocol):
    """A connector whose uploads finish after the sync: their statuses are read later."""

    async def check_request(self, request_id: str, audience_id: str) -> RequestCheck:
        """One status read of the request (never waits)."""
        ...

    async def remove_all_as_of(self, audience_id: str, as_of: str) -> str | None:
        """The second half of a replace (None: the platform's replace has none); the id of
        the request that does it."""
        ...
