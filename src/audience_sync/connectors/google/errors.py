"""Google Data Manager and Ads API answers read as ours: the error envelope of each API, the
request statuses of Data Manager's asynchronous processing, and the Customer Match terms
(docs/platforms/google.md §2.5, §2.6)."""

from __future__ import annotations

from collections import Counter
from typing import Any
from urllib.parse import urlsplit

from audience_sync.connectors.processing import PROCESSING, RequestCheck
from audience_sync.exceptions import (
    AudienceSyncError,
    InvalidRecordsError,
    PlatformRequestError,
    ValidationError,
    platform_error_for_status,
)

TOKEN_URL = "https://oauth2.googleapis.com/token"  # noqa: S105 - a URL
TERMS_URL = "https://support.google.com/adspolicy/answer/6299717"
TERMS_ADVICE = (
    "Google Customer Match uploads need the Customer Match terms accepted ({url}). Once the "
    "account's owner has read and accepted them, record it on the connection: "
    "`audience-sync connections set google --ad-account ACCOUNT --accept-customer-match-terms`, "
    "or PUT /api/v1/connections/google with "
    '`"settings": {{"customer_match_terms_accepted": true}}`.'
)
# Reasons a Data Manager 400 gives for one member's content (DM types/error.py). [INFER: which
# of them reject the whole request rather than only the member]
RECORD_REASONS = {
    "INVALID_SHA256_FORMAT",
    "INVALID_HEX_ENCODING",
    "INVALID_BASE64_ENCODING",
    "INVALID_FORMAT",
    "INVALID_COUNTRY_CODE",
    "REQUIRED_FIELD_MISSING",
    "TOO_MANY_USER_IDENTIFIERS",
    "INVALID_ARGUMENT",
}


def google_token_url(base_url: str) -> str:
    """Google's token endpoint, or the sandbox's when the API is the sandbox's."""
    parts = urlsplit(base_url)
    if parts.path.startswith(("/google/", "/googleads/")):
        return f"{parts.scheme}://{parts.netloc}/google/token"
    return TOKEN_URL


def google_error(status: int, body: Any, api: str) -> AudienceSyncError:
    """A `google.rpc.Status` answer as our error, by HTTP status and the detail reasons."""
    error = body.get("error") if isinstance(body, dict) else None
    error = error if isinstance(error, dict) else {}
    reasons: list[str] = []
    violations: list[dict[str, Any]] = []
    texts: list[str] = []
    for detail in error.get("details") or []:
        if not isinstance(detail, dict):
            continue
        if detail.get("reason"):
            reasons.append(str(detail["reason"]))
        violations += [v for v in detail.get("fieldViolations") or [] if isinstance(v, dict)]
        for item in detail.get("errors") or []:  # Google Ads: GoogleAdsFailure.errors
            reasons += [str(v) for v in (item.get("errorCode") or {}).values()]
            texts.append(str(item.get("message", "")))  # never `trigger`: it holds values
    message = f"{api} {error.get('status', status)}: {error.get('message', '')}".strip()
    if reasons:
        message += f" ({', '.join(dict.fromkeys(reasons))})"
    if texts:
        message += f" {' '.join(texts[:3])}"
    if violations:  # field paths and reasons only: Google never echoes the values here
        named = [f"{v.get('field')}: {v.get('reason')}" for v in violations[:3]]
        message += f" [{'; '.join(named)}]"
    kwargs: dict[str, Any] = {"details": {"reasons": reasons}}
    if status == 400:
        per_member = [
            v for v in violations if str(v.get("field", "")).startswith("audience_members[")
        ]
        if per_member and all(v.get("reason") in RECORD_REASONS for v in per_member):
            return InvalidRecordsError(message, status_code=status, **kwargs)
        if "CONCURRENT_MODIFICATION" in reasons:
            # retried (docs/platforms/google.md §2.5)
            return platform_error_for_status(503, message, **kwargs)
        return ValidationError(message, status_code=status, **kwargs)
    if status == 409:
        return ValidationError(message, status_code=status, **kwargs)
    if status == 429 and api == "Google Ads" and "RESOURCE_EXHAUSTED" in reasons:
        # The Ads API's daily quota (QuotaError.RESOURCE_EXHAUSTED): wait for the reset, not a
        # retry; Data Manager's per-minute RESOURCE_EXHAUSTED is retried
        # (docs/platforms/google.md §2.6).
        return PlatformRequestError(message, status_code=status, **kwargs)
    return platform_error_for_status(status, message, **kwargs)


def percent_to_fraction(value: object) -> float | None:
    """Google reports match rates in percent (0-100); our results carry a fraction (0-1)."""
    try:
        return None if value is None else float(str(value)) / 100
    except ValueError:
        return None


def status_check(request_id: str, status: dict[str, Any]) -> RequestCheck:
    """A `RequestStatusPerDestination` as our check. A status Google leaves unset
    (`REQUEST_STATUS_UNKNOWN`) is read as still processing. [INFER: the reference gives no
    meaning to it; asking again later is the safe reading]"""
    word = str(status.get("requestStatus") or PROCESSING)
    if word == "REQUEST_STATUS_UNKNOWN":
        word = PROCESSING
    errors = _reason_counts((status.get("errorInfo") or {}).get("errorCounts"))
    warnings = _reason_counts((status.get("warningInfo") or {}).get("warningCounts"))
    ingested = status.get("audienceMembersIngestionStatus") or {}
    user_data = ingested.get("userDataIngestionStatus") or {}
    return RequestCheck(
        request_id=request_id,
        status=word,
        refused=sum(errors.values()),
        errors=errors,
        warnings=warnings,
        match_range=user_data.get("uploadMatchRateRange"),
    )


def _reason_counts(counts: Any) -> dict[str, int]:
    """`[{"reason": R, "recordCount": "N"}, ...]` (int64 as JSON strings) as `{R: N}`."""
    found: Counter[str] = Counter()
    for count in counts or []:
        if isinstance(count, dict):
            found[str(count.get("reason", "UNSPECIFIED"))] += int(count.get("recordCount") or 0)
    return dict(found)
