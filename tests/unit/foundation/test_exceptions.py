"""The error tree: what the caller does next is decided by the class."""

from __future__ import annotations

import pytest

from audience_sync.exceptions import (
    AuthExpiredError,
    NonRetryableError,
    NotFoundError,
    PlatformRequestError,
    PlatformServerError,
    PlatformTimeoutError,
    RateLimitError,
    RetryableError,
    ValidationError,
    platform_error_for_status,
)


@pytest.mark.parametrize(
    ("status", "cls", "retryable"),
    [
        (429, RateLimitError, True),
        (408, PlatformTimeoutError, True),
        (504, PlatformTimeoutError, True),
        (500, PlatformServerError, True),
        (503, PlatformServerError, True),
        (401, AuthExpiredError, False),
        (403, PlatformRequestError, False),
        (404, NotFoundError, False),
        (400, PlatformRequestError, False),
    ],
)
def test_platform_errors_are_retryable_by_status(status: int, cls: type, retryable: bool) -> None:
    error = platform_error_for_status(status, "boom", platform="meta")
    assert type(error) is cls
    assert error.retryable is retryable
    assert isinstance(error, RetryableError if retryable else NonRetryableError)


def test_the_spec_categories_sit_on_the_right_side() -> None:
    assert issubclass(RateLimitError, RetryableError)
    assert issubclass(PlatformTimeoutError, RetryableError)
    assert issubclass(AuthExpiredError, NonRetryableError)
    assert issubclass(ValidationError, NonRetryableError)


def test_a_rate_limit_carries_retry_after_and_context() -> None:
    error = RateLimitError("slow down", retry_after=30, platform="snapchat", batch=3)
    assert error.retry_after == 30
    assert str(error) == "slow down (platform=snapchat, batch=3)"
