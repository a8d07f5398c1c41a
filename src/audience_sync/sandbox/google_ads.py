"""Google Ads API emulator (legacy Customer Match path): user lists, OfflineUserDataJobs, search.

Mounted at `/googleads/{version}` (docs/platforms/google.md §2.3b). A job is PENDING while
operations are added; `:run` applies them and it reads RUNNING for `google_processing_seconds`,
then SUCCESS.
Running a job while another job on the same list is RUNNING fails with `CONCURRENT_MODIFICATION`.
"""

from __future__ import annotations

import json
import re
from typing import Any

from fastapi import APIRouter, Request
from starlette.responses import Response

from audience_sync.sandbox.dialect import (
    SandboxError,
    authorize,
    bearer,
    is_hex_digest,
    json_object,
    json_response,
    sandbox_state,
    throttle,
)
from audience_sync.sandbox.google_ads_model import (
    ADS_ID_KEYS,
    DIALECT,
    FAILURE_TYPE,
    MAX_IDENTIFIERS_PER_OPERATION,
    MAX_IDENTIFIERS_PER_REQUEST,
    TOO_MANY,
    VERSIONS,
    AdsJob,
    ads_error,
    ads_failure,
    fail,
    job_of,
    job_row,
    list_row,
)
from audience_sync.sandbox.google_ads_model import (
    search as run_query,
)
from audience_sync.sandbox.google_common import (
    ADS_SCOPE,
    GOOGLE_KEYS,
    KEY_TYPE_OF_WIRE_KEY,
    KEY_TYPES_ADS_TO_DM,
    KEY_TYPES_DM_TO_ADS,
    UNAUTHENTICATED_MESSAGE,
    google_state,
    list_key_type,
    require_scope,
)
from audience_sync.sandbox.members import Row
from audience_sync.sandbox.state import Audience, SandboxState


def open_call(request: Request, version: str) -> SandboxState:
    state = sandbox_state(request)
    if version not in VERSIONS:
        raise SandboxError(DIALECT.not_found(request.method, request.url.path))
    token = authorize(state, DIALECT, bearer(request), "google")
    require_scope(state, token, ADS_SCOPE, "googleads.googleapis.com")
    if not request.headers.get("developer-token"):
        raise SandboxError(
            ads_failure(
                401,
                UNAUTHENTICATED_MESSAGE,
                [ads_error("authenticationError", "DEVELOPER_TOKEN_INVALID", "Missing header.")],
            )
        )
    throttle(state, DIALECT, token)
    return state


def _list_of(state: SandboxState, customer_id: str, resource: Any, index: int | None) -> Audience:
    match = re.fullmatch(r"customers/(\d+)/userLists/(\d+)", str(resource))
    audience = state.audience("google", match.group(2)) if match else None
    if audience is None or audience.ad_account_id != customer_id or match is None:
        raise fail("offlineUserDataJobError", "INVALID_USER_LIST_ID", "Unknown user list.", index)
    return audience


def _identifier(ident: Any, where: int) -> tuple[str, str]:
    """One `UserIdentifier` → (Data Manager wire key, stored value)."""
    if not isinstance(ident, dict) or len(ident) != 1:
        raise ValueError("set exactly one identifier")
    ((key, value),) = ident.items()
    if key in ADS_ID_KEYS:
        if not is_hex_digest(value):
            raise LookupError("INVALID_SHA256_FORMAT")
        return ADS_ID_KEYS[key], value.lower()
    if key == "addressInfo" and isinstance(value, dict):
        first, last = value.get("hashedFirstName"), value.get("hashedLastName")
        country, postal = value.get("countryCode"), value.get("postalCode")
        if not (is_hex_digest(first) and is_hex_digest(last)):
            raise LookupError("INVALID_SHA256_FORMAT")
        if not (isinstance(country, str) and re.fullmatch(r"[A-Z]{2}", country) and postal):
            raise ValueError("addressInfo needs countryCode and postalCode")
        return "address", f"{str(first).lower()}|{str(last).lower()}|{country}|{postal}"
    if key in ("mobileId", "thirdPartyUserId") and isinstance(value, str) and value:
        return ("mobileId" if key == "mobileId" else "userId"), value
    raise ValueError(f"unknown identifier {key}")


def _operation(op: Any, index: int, key_type: str) -> tuple[str, list[Row], int]:
    """Validate one operation → (kind, rows, identifiers); raise the error for its index."""
    if not isinstance(op, dict) or len(op) != 1:
        raise fail(
            "requestError", "INVALID_INPUT", "Set exactly one of create, remove, removeAll.", index
        )
    ((kind, body),) = op.items()
    if kind == "removeAll":
        return "removeAll", [], 0
    if kind not in ("create", "remove") or not isinstance(body, dict):
        raise fail("requestError", "INVALID_INPUT", f"Unknown operation {kind}.", index)
    idents = body.get("userIdentifiers")
    if not isinstance(idents, list) or not idents:
        raise fail("requestError", "REQUIRED_FIELD_MISSING", "userIdentifiers is required.", index)
    if len(idents) > MAX_IDENTIFIERS_PER_OPERATION:
        raise fail("offlineUserDataJobError", "TOO_MANY_USER_IDENTIFIERS", TOO_MANY, index)
    pairs = []
    for ident in idents:
        try:
            pair = _identifier(ident, index)
        except LookupError as exc:
            raise fail(
                "offlineUserDataJobError", str(exc), "Not a SHA-256 hex digest.", index
            ) from exc
        except ValueError as exc:
            raise fail("requestError", "INVALID_INPUT", str(exc), index) from exc
        if KEY_TYPE_OF_WIRE_KEY[pair[0]] != key_type:
            raise fail(
                "offlineUserDataJobError",
                "INCOMPATIBLE_UPLOAD_KEY_TYPE",
                f"The list's upload key type is {KEY_TYPES_DM_TO_ADS[key_type]}.",
                index,
            )
        pairs.append(pair)
    return kind, [GOOGLE_KEYS.encode(pairs)], len(pairs)


def build_router() -> APIRouter:
    router = APIRouter(prefix="/googleads/{version}/customers/{customer_id}")

    @router.post("/userLists:mutate")
    async def mutate_lists(request: Request, version: str, customer_id: str) -> Response:
        state = open_call(request, version)
        body = await json_object(request, DIALECT)
        results = []
        for i, op in enumerate(body.get("operations") or []):
            if isinstance(op, dict) and "remove" in op:
                audience = _list_of(state, customer_id, op["remove"], i)
                state.delete_audience("google", audience.audience_id)
                results.append({"resourceName": op["remove"]})
                continue
            create = op.get("create") if isinstance(op, dict) else None
            if not isinstance(create, dict) or not create.get("name"):
                raise fail("requestError", "REQUIRED_FIELD_MISSING", "name is required.", i)
            if any(a.name == create["name"] for a in state.audiences_of("google", customer_id)):
                raise fail("userListError", "NAME_ALREADY_USED", "Name already used.", i)
            crm = create.get("crmBasedUserList") or {}
            key_type = crm.get("uploadKeyType", "CONTACT_INFO")
            if key_type not in KEY_TYPES_ADS_TO_DM:
                raise fail("userListError", "INVALID_UPLOAD_KEY_TYPE", "Unknown key type.", i)
            if key_type == "MOBILE_ADVERTISING_ID" and not crm.get("appId"):
                raise fail("userListError", "APP_ID_NOT_SET", "appId is required.", i)
            audience = state.create_audience(
                "google",
                GOOGLE_KEYS,
                str(create["name"]),
                customer_id,
                upload_key_type=KEY_TYPES_ADS_TO_DM[key_type],
                membership_days=life_span(create.get("membershipLifeSpan", 540), i),
            )
            audience.description = str(create.get("description", ""))
            results.append({"resourceName": list_row(audience)["resourceName"]})
        return json_response({"results": results})

    @router.post("/offlineUserDataJobs:create")
    async def create_job(request: Request, version: str, customer_id: str) -> Response:
        state = open_call(request, version)
        job_body = (await json_object(request, DIALECT)).get("job") or {}
        if job_body.get("type") != "CUSTOMER_MATCH_USER_LIST":
            raise fail("offlineUserDataJobError", "INVALID_JOB_TYPE", "Customer Match only.")
        meta = job_body.get("customerMatchUserListMetadata") or {}
        audience = _list_of(state, customer_id, meta.get("userList"), None)
        job = AdsJob(state.new_id("google"), customer_id, audience.audience_id)
        google_state(state).jobs[job.job_id] = job
        return json_response({"resourceName": job_row(job)["resourceName"]})

    @router.post("/offlineUserDataJobs/{job_id}:addOperations")
    async def add_operations(
        request: Request, version: str, customer_id: str, job_id: str
    ) -> Response:
        state = open_call(request, version)
        job = job_of(state, customer_id, job_id)
        body = await json_object(request, DIALECT)
        if job.status != "PENDING":
            raise fail("offlineUserDataJobError", "JOB_ALREADY_STARTED", "The job has run.")
        audience = _list_of(
            state, customer_id, f"customers/{customer_id}/userLists/{job.list_id}", None
        )
        key_type = list_key_type(audience) or "CONTACT_ID"
        operations = body.get("operations")
        if not isinstance(operations, list) or not operations:
            raise fail("requestError", "REQUIRED_FIELD_MISSING", "operations is required.")
        staged: list[tuple[str, list[Row]]] = []
        errors: list[dict[str, Any]] = []
        total = 0
        for i, op in enumerate(operations):
            try:
                kind, rows, count = _operation(op, i, key_type)
                if kind == "removeAll" and (job.operations or staged):
                    # removeAll must open the job (docs/platforms/google.md §2.3b).
                    raise fail(
                        "offlineUserDataJobError", "INVALID_OPERATION_ORDER", "removeAll first.", i
                    )
            except SandboxError as exc:
                if not body.get("enablePartialFailure"):
                    raise
                errors.extend(_errors_of(exc))
                continue
            total += count
            staged.append((kind, rows))
        if total > MAX_IDENTIFIERS_PER_REQUEST:
            raise fail("offlineUserDataJobError", "TOO_MANY_USER_IDENTIFIERS", TOO_MANY)
        job.operations.extend(staged)
        answer: dict[str, Any] = {}
        if errors:
            answer["partialFailureError"] = {
                "code": 3,
                "message": f"{len(errors)} operation(s) failed.",
                "details": [
                    {
                        "@type": FAILURE_TYPE,
                        "errors": errors,
                    }
                ],
            }
        return json_response(answer)

    @router.post("/offlineUserDataJobs/{job_id}:run")
    async def run_job(request: Request, version: str, customer_id: str, job_id: str) -> Response:
        state = open_call(request, version)
        job = job_of(state, customer_id, job_id)
        if job.status != "PENDING":
            raise fail("offlineUserDataJobError", "JOB_ALREADY_STARTED", "The job has run.")
        audience = state.audience("google", job.list_id)
        others = [
            j
            for j in google_state(state).jobs.values()
            if isinstance(j, AdsJob) and j is not job and j.list_id == job.list_id
        ]
        if any(job_of(state, customer_id, j.job_id).status == "RUNNING" for j in others):
            raise fail(
                "databaseError",
                "CONCURRENT_MODIFICATION",
                "Another job is modifying this user list; retry when it has finished.",
            )
        now = state.now()
        job.status, job.run_at = "RUNNING", now
        if audience is None:
            job.status, job.failure_reason = "FAILED", "UNSPECIFIED"
        else:
            for kind, rows in job.operations:
                if kind == "removeAll":
                    audience.members.clear()
                elif kind == "create":
                    audience.members.add(rows, now)
                    job.records += len(rows)
                    job.matched += sum(1 for r in rows if audience.members.row_matches(r))
                else:
                    audience.members.remove(rows)
            audience.touch(now, upload=True)
        return json_response({"name": f"customers/{customer_id}/operations/{job.job_id}"})

    @router.post("/googleAds:search")
    async def search(request: Request, version: str, customer_id: str) -> Response:
        state = open_call(request, version)
        query = (await json_object(request, DIALECT)).get("query")
        return json_response(run_query(state, customer_id, str(query or "")))

    return router


def _errors_of(exc: SandboxError) -> list[dict[str, Any]]:
    body = json.loads(bytes(exc.response.body))
    errors: list[dict[str, Any]] = body["error"]["details"][0]["errors"]
    return errors


def life_span(value: object, index: int) -> int:
    """`membershipLifeSpan` in days, 0 to 540: above is `RangeError.TOO_HIGH` [SEEN: Google Ads
    blog 2025-02-12 "Update to Customer Match membership expiration": "requests to set the
    UserList.membership_life_span field in the Google Ads API to greater than 540 will return a
    RangeError.TOO_HIGH error"; googleapis user_list.proto membership_life_span]."""
    try:
        days = int(str(value))
    except ValueError:
        raise fail(
            "requestError", "INVALID_INPUT", "membershipLifeSpan is not a number.", index
        ) from None
    if days > 540:
        raise fail("rangeError", "TOO_HIGH", "Too high.", index)
    if days < 0:
        raise fail("rangeError", "TOO_LOW", "Too low.", index)
    return days
