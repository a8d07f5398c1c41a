"""Google Data Manager API v1 emulator: user lists, ingest/remove/removeAll, request status.

Mounted at `/google/v1` (docs/platforms/google.md §2.3a). Work is applied when the request
arrives; its status reads `PROCESSING` for `google_processing_seconds`, then `SUCCESS`,
`PARTIAL_SUCCESS` or `FAILED`.
`POST /_sandbox/google/outcomes` sets how the next requests end (a `FAILED` with no counts,
processing warnings, `fieldWarnings` on the answer), for tests of what Google may report.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from fastapi import APIRouter, Request
from pydantic import BaseModel, Field
from starlette.responses import Response

from audience_sync.sandbox.dialect import (
    SandboxError,
    authorize,
    bearer,
    json_object,
    json_response,
    sandbox_state,
    throttle,
)
from audience_sync.sandbox.google_common import (
    ACCOUNT_TYPES,
    CONSENT_STATUSES,
    DATA_MANAGER_SCOPE,
    DIALECT,
    DOMAIN,
    ENCODINGS,
    MATCH_RANGES,
    TERMS_STATUSES,
    check_access,
    dm_error,
    enum_name,
    google_state,
    list_key_type,
    name_enums,
    new_request_id,
    require_scope,
)
from audience_sync.sandbox.google_lists import add_list_routes
from audience_sync.sandbox.google_members import (
    MemberProblemError,
    consent_problems,
    parse_members,
)
from audience_sync.sandbox.state import Audience, SandboxState

MAX_MEMBERS = 10_000  # per request (docs/platforms/google.md §2.5)
MAX_DESTINATIONS = 10


def invalid(violations: list[tuple[str, str, str]]) -> SandboxError:
    reason = violations[0][2]
    return SandboxError(dm_error(400, "Request contains an invalid argument.", reason, violations))


@dataclass
class _Outcome:
    """What one request did to one destination, as `requestStatus:retrieve` reports it."""

    destination: dict[str, Any]
    data_type: str  # userData | mobileData | userIdData | removeAll
    records: int = 0
    identifiers: int = 0
    matched: int = 0
    errors: Counter[str] = field(default_factory=Counter)
    warnings: Counter[str] = field(default_factory=Counter)
    failed: bool = False  # FAILED whatever the counts (a set outcome)


@dataclass
class _Request:
    kind: str  # ingest | remove | removeAll
    submitted_at: float
    outcomes: list[_Outcome]


class OutcomeIn(BaseModel):
    """How the next `count` member requests end once processed (a test control)."""

    count: int = Field(default=1, ge=1)
    failed: bool = False  # FAILED, with `errors` as the only counts (none: no errorInfo)
    errors: dict[str, int] = Field(default_factory=dict)  # ProcessingErrorReason → records
    warnings: dict[str, int] = Field(default_factory=dict)  # ProcessingWarningReason → records
    field_warnings: list[dict[str, str]] = Field(default_factory=list)  # on the answer


@dataclass
class _Outcomes:
    """The set outcomes waiting for the next requests, first set first served."""

    waiting: list[OutcomeIn] = field(default_factory=list)

    def take(self) -> OutcomeIn | None:
        if not self.waiting:
            return None
        rule = self.waiting[0]
        rule.count -= 1
        if rule.count <= 0:
            self.waiting.pop(0)
        return rule


def _match_range(matched: int, records: int) -> str:
    if not records:
        return "MATCH_RATE_RANGE_UNKNOWN"
    pct = 100 * matched / records
    for upper, name in MATCH_RANGES:
        if pct < upper:
            return f"MATCH_RATE_RANGE_{name}"
    return "MATCH_RATE_RANGE_91_TO_100"


def _counts(counter: Counter[str]) -> list[dict[str, str]]:
    return [{"recordCount": str(n), "reason": r} for r, n in counter.items()]


def _status_json(req: _Request, outcome: _Outcome, processing: bool) -> dict[str, Any]:
    failed = sum(outcome.errors.values())
    if processing:
        status = "PROCESSING"
    elif outcome.failed or (outcome.records and failed >= outcome.records):
        status = "FAILED"
    elif failed:
        status = "PARTIAL_SUCCESS"
    else:
        status = "SUCCESS"
    body: dict[str, Any] = {"destination": outcome.destination, "requestStatus": status}
    # errorInfo is "only populated if the request_status is FAILED or PARTIAL_SUCCESS"
    # [SEEN: https://docs.cloud.google.com/php/docs/reference/data-manager/latest/V1.RequestStatusPerDestination];
    # warningInfo (field 7) holds `warningCounts` of `recordCount` and `reason`
    # [SEEN: googleapis/googleapis:google/ads/datamanager/v1/processing_errors.proto].
    if outcome.errors and status in ("FAILED", "PARTIAL_SUCCESS"):
        body["errorInfo"] = {"errorCounts": _counts(outcome.errors)}
    if outcome.warnings and not processing:
        body["warningInfo"] = {"warningCounts": _counts(outcome.warnings)}
    if req.kind == "removeAll":
        body["removeAllAudienceMembersStatus"] = {}  # fields not in our sources [INFER]
        return body
    counts: dict[str, Any] = {"recordCount": str(outcome.records)}
    if outcome.data_type == "userData":
        counts["userIdentifierCount"] = str(outcome.identifiers)
        if req.kind == "ingest":
            counts["uploadMatchRateRange"] = (
                "MATCH_RATE_RANGE_UNKNOWN"
                if processing
                else _match_range(outcome.matched, outcome.records - failed)
            )
    elif outcome.data_type == "mobileData":
        counts["mobileIdCount"] = str(outcome.identifiers)
    else:
        counts["userIdCount"] = str(outcome.identifiers)
    prefix = "Ingestion" if req.kind == "ingest" else "Removal"
    wrapper = (
        "audienceMembersIngestionStatus"
        if req.kind == "ingest"
        else ("audienceMembersRemovalStatus")
    )
    body[wrapper] = {f"{outcome.data_type}{prefix}Status": counts}
    return body


def _destinations(
    state: SandboxState, body: dict[str, Any]
) -> list[tuple[dict[str, Any], Audience]]:
    raw = body.get("destinations")
    if not isinstance(raw, list) or not raw:
        raise invalid(
            [("destinations", "At least one destination is required.", "REQUIRED_FIELD_MISSING")]
        )
    if len(raw) > MAX_DESTINATIONS:
        raise invalid([("destinations", "Too many destinations.", "TOO_MANY_DESTINATIONS")])
    found = []
    for i, dest in enumerate(raw):
        operating = _account(dest, "operatingAccount", i)
        if operating is None:
            raise invalid(
                [(f"destinations[{i}].operating_account", "Required.", "REQUIRED_FIELD_MISSING")]
            )
        # The login account travels in the destination on ingest and remove [SEEN:
        # googleapis/googleapis google/ads/datamanager/v1/destination.proto `login_account`].
        check_access(state, operating, _account(dest, "loginAccount", i))
        list_id = str(dest.get("productDestinationId", ""))
        audience = state.audience("google", list_id)
        if audience is None or audience.ad_account_id != operating:
            raise invalid(
                [
                    (
                        f"destinations[{i}].product_destination_id",
                        "The user list does not exist in the operating account.",
                        "INVALID_USER_LIST_ID",
                    )
                ]
            )
        found.append((dest, audience))
    return found


def _account(dest: Any, key: str, i: int) -> str | None:
    """A destination's `ProductAccount` id; only Google Ads accounts are emulated."""
    account = dest.get(key) if isinstance(dest, dict) else None
    if account is None:
        return None
    if not isinstance(account, dict) or not account.get("accountId"):
        return None
    kind = enum_name(account.get("accountType", account.get("product")), ACCOUNT_TYPES)
    if kind != "GOOGLE_ADS":
        # account_type is required [SEEN: destination.proto]; other products not emulated
        raise invalid(
            [
                (
                    f"destinations[{i}].{key}.account_type",
                    "GOOGLE_ADS is the only account type the sandbox emulates.",
                    "INVALID_ARGUMENT",
                )
            ]
        )
    return str(account["accountId"])


def _name_request_enums(body: dict[str, Any]) -> None:
    """The request's enum fields as names (the official client sends numbers)."""
    name_enums(body, ENCODINGS, "encoding")
    name_enums(body.get("termsOfService"), TERMS_STATUSES, "customerMatchTermsOfServiceStatus")
    consents = [body.get("consent")]
    members = body.get("audienceMembers")
    if isinstance(members, list):
        consents += [m.get("consent") for m in members if isinstance(m, dict)]
    for consent in consents:
        name_enums(consent, CONSENT_STATUSES, "adUserData", "adPersonalization")


def _check_terms(body: dict[str, Any], members: list[Any]) -> None:
    """Customer Match terms "must be accepted when ingesting UserData or MobileData" [SEEN:
    googleapis/googleapis google/ads/datamanager/v1/terms_of_service.proto]; missing or
    rejected, the request fails. [INFER: the reason and the 400, by error.proto's
    TERMS_AND_CONDITIONS_NOT_SIGNED "Required terms and conditions are not accepted"]"""
    if not any(isinstance(m, dict) and ("userData" in m or "mobileData" in m) for m in members):
        return
    terms = body.get("termsOfService")
    status = terms.get("customerMatchTermsOfServiceStatus") if isinstance(terms, dict) else None
    if status != "ACCEPTED":
        raise invalid(
            [
                (
                    "terms_of_service.customer_match_terms_of_service_status",
                    "The Customer Match terms of service must be accepted.",
                    "TERMS_AND_CONDITIONS_NOT_SIGNED",
                )
            ]
        )


def _authorize(request: Request) -> SandboxState:
    state = sandbox_state(request)
    token = authorize(state, DIALECT, bearer(request), "google")
    require_scope(state, token, DATA_MANAGER_SCOPE, DOMAIN)
    throttle(state, DIALECT, token)
    return state


def _members_request(state: SandboxState, body: dict[str, Any], kind: str) -> Response:
    _name_request_enums(body)
    targets = _destinations(state, body)
    members = body.get("audienceMembers")
    if not isinstance(members, list) or not members:
        raise invalid([("audience_members", "Required.", "REQUIRED_FIELD_MISSING")])
    if len(members) > MAX_MEMBERS:
        raise invalid(
            [
                (
                    "audience_members",
                    f"At most {MAX_MEMBERS} audience members per request.",
                    "TOO_MANY_AUDIENCE_MEMBERS",
                )
            ]
        )
    if kind == "ingest":
        _check_terms(body, members)
    encoding = body.get("encoding")
    request_consent = body.get("consent")
    if kind == "remove" and request_consent is not None:
        # RemoveAudienceMembersRequest has no `consent` field. [SEEN: googleapis
        # google/ads/datamanager/v1/ingestion_service.proto]
        raise invalid([("consent", "Unknown field.", "INVALID_ARGUMENT")])
    if consent_problems(request_consent, "consent"):
        raise invalid(consent_problems(request_consent, "consent"))
    try:
        parsed = parse_members(
            members, encoding, request_consent=request_consent, ingest=kind == "ingest"
        )
    except MemberProblemError as problem:
        raise invalid(problem.violations) from problem
    for i, (_, audience) in enumerate(targets):
        held = list_key_type(audience)
        if held is not None and held != parsed.key_type:
            raise invalid(
                [
                    (
                        f"destinations[{i}]",
                        f"The list holds {held} members; this request sends {parsed.key_type}.",
                        "MULTIPLE_DATA_TYPES_NOT_ALLOWED",
                    )
                ]
            )
    request_id = new_request_id()
    if body.get("validateOnly"):
        return json_response({"requestId": request_id})
    now = state.now()
    rule = outcomes_of(state).take()
    outcomes = []
    for dest, audience in targets:
        audience.attributes.setdefault("upload_key_type", parsed.key_type)
        outcome = _Outcome(dest, parsed.data_type, len(members), parsed.identifiers)
        if parsed.denied:
            outcome.errors["PROCESSING_ERROR_REASON_DENIED_CONSENT"] = parsed.denied  # [INFER]
        held = audience.attributes.setdefault("data_use", {})
        if kind == "ingest":
            _, outcome.matched = audience.members.add_and_match(parsed.rows, now)
            held.update(zip(parsed.row_labels(), parsed.consents, strict=True))
        else:
            audience.members.remove(parsed.rows)
            for label in parsed.row_labels():
                held.pop(label, None)
        audience.touch(now, upload=True)
        if rule is not None:
            _set_outcome(outcome, rule)
        outcomes.append(outcome)
    google_state(state).requests[request_id] = _Request(kind, now, outcomes)
    answer: dict[str, Any] = {"requestId": request_id}
    if rule is not None and rule.field_warnings and kind == "ingest":
        # IngestAudienceMembersResponse.field_warnings: reason, description, field
        # [SEEN: googleapis/googleapis:google/ads/datamanager/v1/ingestion_service.proto]
        answer["fieldWarnings"] = rule.field_warnings
    return json_response(answer)


def _set_outcome(outcome: _Outcome, rule: OutcomeIn) -> None:
    outcome.failed = rule.failed
    if rule.failed:
        outcome.errors = Counter(rule.errors)
    else:
        outcome.errors.update(rule.errors)
    outcome.warnings.update(rule.warnings)


def outcomes_of(state: SandboxState) -> _Outcomes:
    return state.platform_state("google_outcomes", _Outcomes)


def _timestamp(value: Any, now: float) -> float:
    if value is None:
        return now
    if not isinstance(value, str):
        raise invalid([("remove_as_of_time", "Must be an RFC 3339 timestamp.", "INVALID_FORMAT")])
    try:
        when = datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
    except ValueError as exc:
        raise invalid(
            [("remove_as_of_time", "Must be an RFC 3339 timestamp.", "INVALID_FORMAT")]
        ) from exc
    if when > now:
        raise invalid([("remove_as_of_time", "Must not be in the future.", "INVALID_ARGUMENT")])
    return when


def build_router() -> APIRouter:
    router = APIRouter()

    @router.post("/google/v1/audienceMembers:ingest")
    async def ingest(request: Request) -> Response:
        state = _authorize(request)
        return _members_request(state, await json_object(request, DIALECT), "ingest")

    @router.post("/google/v1/audienceMembers:remove")
    async def remove(request: Request) -> Response:
        state = _authorize(request)
        return _members_request(state, await json_object(request, DIALECT), "remove")

    @router.post("/google/v1/audienceMembers:removeAll")
    async def remove_all(request: Request) -> Response:
        state = _authorize(request)
        body = await json_object(request, DIALECT)
        targets = _destinations(state, body)
        now = state.now()
        as_of = _timestamp(body.get("removeAsOfTime"), now)
        request_id = new_request_id()
        if body.get("validateOnly"):
            return json_response({"requestId": request_id})
        outcomes = []
        for dest, audience in targets:
            # Only members last added before the cut-off go (docs/platforms/google.md §2.3a,
            # replace-all).
            removed = audience.members.remove_added_before(as_of)
            audience.touch(now)
            outcomes.append(_Outcome(dest, "removeAll", removed))
        google_state(state).requests[request_id] = _Request("removeAll", now, outcomes)
        return json_response({"requestId": request_id})

    @router.get("/google/v1/requestStatus:retrieve")
    async def request_status(request: Request) -> Response:
        state = _authorize(request)
        request_id = request.query_params.get("requestId", "")
        req = google_state(state).requests.get(request_id)
        if not isinstance(req, _Request):
            return dm_error(404, f"Request {request_id!r} was not found.", "INVALID_ARGUMENT")
        processing = state.now() < req.submitted_at + state.settings.google_processing_seconds
        statuses = [_status_json(req, o, processing) for o in req.outcomes]
        return json_response({"requestStatusPerDestination": statuses})

    @router.put("/_sandbox/google/managers/{account_id}")
    async def set_manager(request: Request, account_id: str) -> Response:
        """Make a Google Ads account a client of a manager: `{"manager_id": "..."}` (null: none).
        Its calls then need the manager as login account."""
        state = sandbox_state(request)
        body = await json_object(request, DIALECT)
        managers = google_state(state).managers
        manager = body.get("manager_id")
        if manager:
            managers[account_id] = str(manager)
        else:
            managers.pop(account_id, None)
        return json_response({"account_id": account_id, "manager_id": managers.get(account_id)})

    @router.post("/_sandbox/google/outcomes", status_code=201, tags=["sandbox controls"])
    async def set_outcome(request: Request, rule: OutcomeIn) -> dict[str, Any]:
        """How the next `count` ingest/remove requests end once processed."""
        outcomes_of(sandbox_state(request)).waiting.append(rule)
        return rule.model_dump()

    add_list_routes(router, _authorize)
    return router
