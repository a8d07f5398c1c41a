"""One error tree for Audience Sync, grouped by what the caller should do next.

    AudienceSyncError                  root: anything this package raises on purpose
    ├── RetryableError                 try again later (carries `retry_after` seconds)
    │   ├── RateLimitError             the platform said slow down (429, throttling codes)
    │   ├── PlatformTimeoutError       the request timed out or the connection dropped
    │   ├── PlatformConnectError       no connection at all (refused, host unknown): not a timeout
    │   └── PlatformServerError        the platform failed (5xx): retry
    ├── NonRetryableError              retrying will not help: fail now, tell a human
    │   ├── AuthExpiredError           token missing, invalid or expired: reconnect the account
    │   ├── ValidationError            the request or configuration is wrong (bad name, bad key)
    │   │   ├── InvalidRecordsError    a batch refused because of records in it (split to isolate)
    │   │   ├── FieldError             one input breaks a rule that needs settings or the database
    │   │   ├── ConflictError          refused by the object's state (a job running, a name taken)
    │   │   └── FeatureDisabledError   a feature flag is off for the tenant
    │   ├── PlatformRequestError       the platform refused the request (other 4xx)
    │   └── NotFoundError              the object does not exist (or belongs to another tenant)
    └── ConfigurationError             the service itself is misconfigured (refuses to start)
        └── UnknownPlatformError       no platform of that name is registered

Skippable data errors (a bad email, an unreadable import row) are counted, not raised.

Messages are shown to users and written to logs: they never contain a token or a raw identifier.
Context (platform, audience, batch) travels in attributes, not only in the text.
"""

from __future__ import annotations

from typing import Any


class AudienceSyncError(Exception):
    """Root of every error Audience Sync raises on purpose."""

    retryable: bool = False

    def __init__(
        self,
        message: str,
        *,
        platform: str | None = None,
        audience_id: str | None = None,
        batch: int | None = None,
        status_code: int | None = None,
        details: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.platform = platform
        self.audience_id = audience_id
        self.batch = batch
        self.status_code = status_code
        self.details = details or {}

    def __str__(self) -> str:
        context = [
            f"{name}={value}"
            for name, value in (
                ("platform", self.platform),
                ("audience", self.audience_id),
                ("batch", self.batch),
                ("status", self.status_code),
            )
            if value is not None
        ]
        return f"{self.message} ({', '.join(context)})" if context else self.message


class RetryableError(AudienceSyncError):
    """A transient failure: the same request may succeed later."""

    retryable = True

    def __init__(self, message: str, *, retry_after: float | None = None, **kwargs: Any) -> None:
        super().__init__(message, **kwargs)
        self.retry_after = retry_after


class RateLimitError(RetryableError):
    """The platform asked us to slow down; wait `retry_after` seconds when it says."""


class PlatformTimeoutError(RetryableError):
    """The request timed out or the connection dropped before an answer."""


class PlatformConnectError(RetryableError):
    """No connection could be made: nothing listens there, or the host name does not resolve.

    Retried like a dropped connection (the platform may be restarting), but reported as what it
    is, with the host in `details["host"]`: a wrong base URL shows up here, not as a timeout.
    """


class PlatformServerError(RetryableError):
    """The platform failed on its side (HTTP 5xx or an equivalent error code)."""


class NonRetryableError(AudienceSyncError):
    """Retrying will not help: the job fails now and a person must act."""


class AuthExpiredError(NonRetryableError):
    """The access token is missing, invalid or expired: the account must be reconnected."""


class ValidationError(NonRetryableError):
    """The request or the audience configuration is invalid."""


class InvalidRecordsError(ValidationError):
    """The platform refused a whole batch because some records in it are invalid.

    Connectors split such a batch in halves until the bad records are isolated; only a batch of
    one record surfaces as a failure, counted in the result rather than raised.
    """


class FieldError(ValidationError):
    """One input breaks a rule checked outside the request's schema (it needs the settings or
    the database): `field` names it as the API's body does, `rule` which rule."""

    def __init__(self, field: str, rule: str, message: str) -> None:
        super().__init__(message)
        self.field = field
        self.rule = rule


class ConflictError(ValidationError):
    """Refused by the object's present state (a job in progress, a name taken, not deleted
    yet); `code` says which, for the API's 409 and for scripts."""

    def __init__(self, code: str, message: str, **details: Any) -> None:
        super().__init__(message, details=details)
        self.code = code


class FeatureDisabledError(ValidationError):
    """A feature flag the request needs is off for the tenant: `by_operator` when the
    operator's settings turned it off (a tenant cannot turn it back on)."""

    def __init__(self, flag: str, *, by_operator: bool) -> None:
        who = (
            f"the operator (AUDIENCE_SYNC_FEATURE_FLAGS__{flag.upper()}=false)"
            if by_operator
            else "this tenant's override"
        )
        super().__init__(f"Feature flag {flag!r} is turned off by {who}.")
        self.flag = flag
        self.by_operator = by_operator


class PlatformRequestError(NonRetryableError):
    """The platform refused the request for a reason retrying will not fix (other 4xx)."""


class NotFoundError(NonRetryableError):
    """The object does not exist, or belongs to another tenant (never say which)."""


class ConfigurationError(AudienceSyncError):
    """The service is misconfigured (missing secret key in production, bad database URL)."""


class UnknownPlatformError(ConfigurationError, ValueError):
    """No platform of that name is registered (`connectors.registry`): never a fallback to
    another platform's behaviour. A `ValueError` too, as enum lookups raise."""


def platform_error_for_status(status_code: int, message: str, **kwargs: Any) -> AudienceSyncError:
    """A platform error, retryable or not, decided by the HTTP status code."""
    if status_code == 429:
        return RateLimitError(message, status_code=status_code, **kwargs)
    if status_code in (408, 504):
        return PlatformTimeoutError(message, status_code=status_code, **kwargs)
    if status_code >= 500:
        return PlatformServerError(message, status_code=status_code, **kwargs)
    if status_code == 401:
        return AuthExpiredError(message, status_code=status_code, **kwargs)
    if status_code == 404:
        return NotFoundError(message, status_code=status_code, **kwargs)
    return PlatformRequestError(message, status_code=status_code, **kwargs)
