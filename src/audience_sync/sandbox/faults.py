"""Fault injection: rules that make the next N matching requests fail the way platforms fail."""

from __future__ import annotations

import itertools
import re
from dataclasses import asdict, dataclass, field
from enum import StrEnum
from typing import Any


class FaultKind(StrEnum):
    SERVER_ERROR = "server_error"  # the platform's 5xx answer
    RATE_LIMIT = "rate_limit"  # the platform's throttling answer, with Retry-After
    TIMEOUT = "timeout"  # the request is processed, the answer is held for `delay_seconds`
    DROP_CONNECTION = "drop_connection"  # the connection closes without an answer
    EXPIRED_TOKEN = "expired_token"  # noqa: S105 - the platform's expired-token answer
    LATENCY = "latency"  # a fixed delay before the request is handled
    PLATFORM_ERROR = "platform_error"  # the platform's answer for error `code` (and `subcode`)


_ids = itertools.count(1)


@dataclass
class FaultRule:
    """One injected fault. `count=None` means until cleared; `path` is a regex searched in the path.

    `process` says whether the platform handles the request before the fault shows: true by
    default for `timeout` (the write lands, the answer is lost), false for the others.
    """

    kind: FaultKind
    count: int | None = 1
    platform: str | None = None
    path: str | None = None
    method: str | None = None
    status: int = 500
    retry_after: float = 1.0
    delay_seconds: float = 30.0
    process: bool | None = None
    code: int | None = None
    subcode: int | None = None
    id: int = field(default_factory=lambda: next(_ids))
    hits: int = 0

    def __post_init__(self) -> None:
        if self.process is None:
            self.process = self.kind is FaultKind.TIMEOUT
        if self.kind is FaultKind.PLATFORM_ERROR and self.code is None:
            raise ValueError("a platform_error fault needs a code")
        if self.path is not None:
            re.compile(self.path)  # raise early on a bad pattern

    def matches(self, platform: str, method: str, path: str) -> bool:
        return (
            (self.count is None or self.count > 0)
            and (self.platform is None or self.platform == platform)
            and (self.method is None or self.method.upper() == method)
            and (self.path is None or re.search(self.path, path) is not None)
        )

    def spend(self) -> None:
        self.hits += 1
        if self.count is not None:
            self.count -= 1

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["kind"] = self.kind.value
        return data


class FaultBook:
    """The active fault rules, in the order they were added."""

    def __init__(self) -> None:
        self.rules: list[FaultRule] = []

    def add(self, rule: FaultRule) -> FaultRule:
        self.rules.append(rule)
        return rule

    def clear(self) -> None:
        self.rules.clear()

    def take(self, platform: str, method: str, path: str) -> tuple[float, FaultRule | None]:
        """Spend the matching rules: total extra latency, and the first non-latency fault."""
        latency, fault = 0.0, None
        for rule in self.rules:
            if not rule.matches(platform, method, path):
                continue
            if rule.kind is FaultKind.LATENCY:
                latency += rule.delay_seconds
                rule.spend()
            elif fault is None:
                fault = rule
                rule.spend()
        self.rules = [r for r in self.rules if r.count is None or r.count > 0]
        return latency, fault
