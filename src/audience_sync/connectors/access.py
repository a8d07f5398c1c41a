"""What a connection test and account discovery answer: the ad accounts a token reaches, and a
test's verdict in plain words (never a token), with a reason a program can branch on."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from audience_sync.exceptions import (
    AudienceSyncError,
    AuthExpiredError,
    NotFoundError,
    RetryableError,
    ValidationError,
)


@dataclass(frozen=True, slots=True)
class AdAccount:
    """An ad account (Meta ad account, Google customer, TikTok advertiser, Snapchat ad
    account) as the platform lists it: its id as a connection stores it, and its name."""

    id: str
    name: str | None = None


class Reason(StrEnum):
    OK = "ok"
    BAD_TOKEN = "bad_token"  # noqa: S105 - a reason's name, not a token
    EXPIRED = "expired"
    MISSING_SCOPE = "missing_scope"
    UNKNOWN_AD_ACCOUNT = "unknown_ad_account"
    REFUSED = "refused"  # another refusal by the platform: its words are in the message
    UNREACHABLE = "unreachable"  # no answer (timeout, connection refused, 5xx)
    NOT_SUPPORTED = "not_supported"  # the connector has no cheap read to try


@dataclass(frozen=True, slots=True)
class AccessCheck:
    """A connection test's verdict: `reason` (`ok` when the platform answered the read),
    `message` in our words, and the ad account's name when the platform gave one."""

    reason: Reason
    message: str
    account_name: str | None = None

    @property
    def ok(self) -> bool:
        return self.reason is Reason.OK


class NotSupportedError(ValidationError):
    """The connector has no such call (a platform without account discovery, say)."""


def passed(platform: str, account: str, name: str | None) -> AccessCheck:
    named = f" ({name})" if name else ""
    return AccessCheck(
        Reason.OK, f"{platform} answered: the token reaches ad account {account}{named}.", name
    )


def verdict(
    platform: str,
    account: str,
    error: AudienceSyncError,
    *,
    expired: bool = False,
    missing_scope: str | None = None,
    unknown_account: bool = False,
) -> AccessCheck:
    """A refused test read as a reason. The connector says what its platform's answer meant
    (`expired`, `missing_scope`, `unknown_account`); the error type says the rest."""
    if missing_scope:
        return AccessCheck(
            Reason.MISSING_SCOPE,
            f"{platform} refused: the token lacks the permission {missing_scope}. Connect "
            "again and allow it.",
        )
    if unknown_account or isinstance(error, NotFoundError):
        return AccessCheck(
            Reason.UNKNOWN_AD_ACCOUNT,
            f"{platform} does not know ad account {account}, or this token cannot reach it: "
            "pick one of the accounts the token reaches.",
        )
    if expired:
        return AccessCheck(
            Reason.EXPIRED, f"{platform} says the token has expired: connect the account again."
        )
    if isinstance(error, AuthExpiredError):
        return AccessCheck(
            Reason.BAD_TOKEN,
            f"{platform} refused the token (invalid or revoked): connect the account again.",
        )
    if isinstance(error, RetryableError):
        return AccessCheck(
            Reason.UNREACHABLE, f"{platform} did not answer the test read: {error.message}"
        )
    return AccessCheck(Reason.REFUSED, f"{platform} refused the test read: {error.message}")
