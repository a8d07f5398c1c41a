"""Google Ads API emulator, shared parts: errors, offline user data jobs, the GAQL reads."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from starlette.responses import Response

from audience_sync.sandbox.dialect import Dialect, SandboxError
from audience_sync.sandbox.google_common import (
    KEY_TYPES_DM_TO_ADS,
    MATCH_RANGES,
    UNAUTHENTICATED_MESSAGE,
    WWW_AUTHENTICATE,
    google_state,
    list_key_type,
    match_rate_percentage,
    new_request_id,
    rpc_error,
)
from audience_sync.sandbox.members import Row
from audience_sync.sandbox.state import Audience, AuthFailure, SandboxState

VERSIONS = (
    "v23",
    "v24",
    "v25",
    "v26",
)  # what google-ads 34.0.0 ships (docs/platforms/google.md §2.1)
MAX_IDENTIFIERS_PER_REQUEST = 100_000
MAX_IDENTIFIERS_PER_OPERATION = 20
TOO_MANY = (
    "Maximum number of user identifiers allowed per request is 100,000 and per operation is 20"
)
FAILURE_TYPE = "type.googleapis.com/google.ads.googleads.v26.errors.GoogleAdsFailure"
ADS_ID_KEYS = {"hashedEmail": "emailAddress", "hashedPhoneNumber": "phoneNumber"}


def ads_failure(
    code: int, message: str, errors: list[dict[str, Any]], headers: dict[str, str] | None = None
) -> Response:
    """google.rpc.Status with a GoogleAdsFailure detail (docs/platforms/google.md §2.6).
    [INFER: envelope]"""
    detail = {
        "@type": FAILURE_TYPE,
        "errors": errors,
        "requestId": new_request_id(),
    }
    return rpc_error(code, message, [detail], headers)


def ads_error(kind: str, value: str, message: str, index: int | None = None) -> dict[str, Any]:
    error: dict[str, Any] = {"errorCode": {kind: value}, "message": message}
    if index is not None:
        error["location"] = {"fieldPathElements": [{"fieldName": "operations", "index": index}]}
    return error


def fail(kind: str, value: str, message: str, index: int | None = None) -> SandboxError:
    return SandboxError(
        ads_failure(
            400, "Request contains an invalid argument.", [ads_error(kind, value, message, index)]
        )
    )


class GoogleAdsDialect(Dialect):
    family = "googleads"

    def auth_error(self, failure: AuthFailure) -> Response:
        value = "OAUTH_TOKEN_EXPIRED" if failure is AuthFailure.EXPIRED else "OAUTH_TOKEN_INVALID"
        error = ads_error("authenticationError", value, "Authentication of the request failed.")
        return ads_failure(401, UNAUTHENTICATED_MESSAGE, [error], WWW_AUTHENTICATE)

    def rate_limited(self, retry_after: float | None) -> Response:
        error = ads_error(
            "quotaError", "RESOURCE_TEMPORARILY_EXHAUSTED", "Too many requests. Retry later."
        )
        return ads_failure(429, "Resource has been exhausted (e.g. check quota).", [error])

    def server_error(self, status: int) -> Response:
        value = "TRANSIENT_ERROR" if status == 503 else "INTERNAL_ERROR"
        error = ads_error("internalError", value, "An internal error has occurred.")
        return ads_failure(status, "Internal error encountered.", [error])

    def not_found(self, method: str, path: str) -> Response:
        return rpc_error(404, f"Method not found: {method} {path}", [])

    def bad_request(self, message: str) -> Response:
        return ads_failure(400, message, [ads_error("requestError", "INVALID_INPUT", message)])


DIALECT = GoogleAdsDialect()


@dataclass
class AdsJob:
    job_id: str
    customer_id: str
    list_id: str
    status: str = "PENDING"
    operations: list[tuple[str, list[Row]]] = field(default_factory=list)
    run_at: float | None = None
    records: int = 0
    matched: int = 0
    failure_reason: str = "UNSPECIFIED"


def job_of(state: SandboxState, customer_id: str, job_id: str) -> AdsJob:
    job = google_state(state).jobs.get(job_id)
    if not isinstance(job, AdsJob) or job.customer_id != customer_id:
        raise SandboxError(rpc_error(404, f"Job {job_id} was not found.", []))
    return refresh(state, job)


def refresh(state: SandboxState, job: object) -> AdsJob:
    """Move a RUNNING job to SUCCESS once `google_processing_seconds` have passed since `:run`."""
    assert isinstance(job, AdsJob)
    done_at = (job.run_at or 0.0) + state.settings.google_processing_seconds
    if job.status == "RUNNING" and state.now() >= done_at:
        job.status = "SUCCESS"
    return job


def _match_range(job: AdsJob) -> str:
    if not job.records:
        return "UNSPECIFIED"
    pct = 100 * job.matched / job.records
    return next(
        (f"MATCH_RANGE_{n}" for upper, n in MATCH_RANGES if pct < upper), "MATCH_RANGE_91_TO_100"
    )


def list_row(audience: Audience) -> dict[str, Any]:
    matched = str(audience.members.matched)
    key_type = KEY_TYPES_DM_TO_ADS[list_key_type(audience) or "CONTACT_ID"]
    return {
        "resourceName": f"customers/{audience.ad_account_id}/userLists/{audience.audience_id}",
        "id": audience.audience_id,
        "name": audience.name,
        "description": audience.description,
        "sizeForDisplay": matched,
        "sizeForSearch": matched,
        "matchRatePercentage": match_rate_percentage(audience),
        "membershipLifeSpan": str(audience.attributes.get("membership_days", 540)),
        "crmBasedUserList": {"uploadKeyType": key_type, "dataSourceType": "FIRST_PARTY"},
    }


def job_row(job: AdsJob) -> dict[str, Any]:
    return {
        "resourceName": f"customers/{job.customer_id}/offlineUserDataJobs/{job.job_id}",
        "id": job.job_id,
        "type": "CUSTOMER_MATCH_USER_LIST",
        "status": job.status,
        "failureReason": job.failure_reason,
        "operationMetadata": {"matchRateRange": _match_range(job)},
    }


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part.title() for part in rest)


QUERY = re.compile(
    r"\s*SELECT\s+(?P<fields>.+?)\s+FROM\s+(?P<resource>\w+)"
    r"(?:\s+WHERE\s+(?P<field>[\w.]+)\s*=\s*'?(?P<value>[^']*)'?)?\s*",
    re.IGNORECASE | re.DOTALL,
)


def search(state: SandboxState, customer_id: str, query: str) -> dict[str, Any]:
    """A small GAQL: `SELECT f, ... FROM user_list|offline_user_data_job [WHERE f = 'v']`."""
    parsed = QUERY.fullmatch(query)
    if parsed is None or parsed["resource"] not in ("user_list", "offline_user_data_job"):
        raise fail("queryError", "UNEXPECTED_INPUT", "The sandbox reads user_list and jobs only.")
    resource = parsed["resource"]
    jobs = [refresh(state, j) for j in google_state(state).jobs.values()]
    if resource == "user_list":
        rows = [list_row(a) for a in state.audiences_of("google", customer_id)]
    else:
        rows = [job_row(j) for j in jobs if j.customer_id == customer_id]
    fields = [f.strip() for f in parsed["fields"].split(",")]
    results = []
    for row in rows:
        if parsed["field"]:
            key = _camel(parsed["field"].split(".", 1)[1])
            if str(row.get(key)) != parsed["value"]:
                continue
        out: dict[str, Any] = {}
        for name in fields:
            res, _, path = name.partition(".")
            if res != resource:
                raise fail("queryError", "UNRECOGNIZED_FIELD", f"Unrecognized field {name}.")
            value: Any = row
            for part in path.split("."):
                if not isinstance(value, dict) or _camel(part) not in value:
                    raise fail("queryError", "UNRECOGNIZED_FIELD", f"Unrecognized field {name}.")
                value = value[_camel(part)]
            node = out.setdefault(_camel(resource), {})
            parts = [_camel(p) for p in path.split(".")]
            for part in parts[:-1]:
                node = node.setdefault(part, {})
            node[parts[-1]] = value
        results.append(out)
    mask = ",".join(".".join(_camel(p) for p in f.split(".")) for f in fields)
    return {"results": results, "fieldMask": mask}
