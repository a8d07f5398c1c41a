"""Meta Marketing API emulator: custom audiences, `/users`, `/usersreplace` sessions.

Mounted at `/meta/{version}`; paths after it are Graph's own (docs/platforms/meta.md §1.3).
Facebook Login and the token endpoints are in `oauth_meta`.
"""

from __future__ import annotations

import json
import secrets
from dataclasses import dataclass, field
from typing import Any

from fastapi import APIRouter, Request
from starlette.responses import Response

from audience_sync.sandbox.dialect import SandboxError, authorize, json_response, sandbox_state
from audience_sync.sandbox.members import MemberStore, Row
from audience_sync.sandbox.meta_graph import (
    CUSTOMER_FILE_SOURCES,
    META_KEYS,
    MetaDialect,
    SessionParam,
    Upload,
    graph_error,
    graph_params,
    graph_token,
    invalid_parameter,
    parse_payload,
    parse_session,
    require,
    select_fields,
)
from audience_sync.sandbox.state import Audience, SandboxState

DIALECT = MetaDialect()
LIVE_VERSIONS = ("v25.0", "v26.0", "v27.0")  # not expired on 2026-11 (docs/platforms/meta.md §1.1)


@dataclass
class _Session:
    """One upload session as `GET /{id}/sessions` reports it."""

    session_id: int
    start_time: float
    end_time: float | None = None
    estimated: int | None = None
    num_received: int = 0
    num_matched: int = 0
    num_invalid_entries: int = 0


@dataclass
class _Replace:
    """A `usersreplace` session in flight: rows staged until `last_batch_flag`."""

    session_id: int
    started_at: float
    staged: MemberStore


@dataclass
class MetaState:
    sessions: dict[str, dict[int, _Session]] = field(default_factory=dict)
    replaces: dict[str, _Replace] = field(default_factory=dict)


def _usage_header(state: SandboxState, audience_count: int, account: str) -> dict[str, str]:
    usage = state.limiter.usage("meta", account, state.now(), audience_count)
    body = {
        account: [
            {
                "type": "custom_audience",
                "call_count": usage,
                "total_cputime": 0,
                "total_time": 0,
                "estimated_time_to_regain_access": 0 if usage < 100 else 1,
            }
        ]
    }
    return {"X-Business-Use-Case-Usage": json.dumps(body)}


class _Call:
    """A Graph call: version checked, parameters parsed, token accepted, then charged to the
    ad account's budget once the account is known (the token is checked first, as Graph does)."""

    def __init__(self, state: SandboxState, params: dict[str, Any]) -> None:
        self.state, self.params = state, params
        self.account = ""
        self.audiences = 0

    @classmethod
    async def open(cls, request: Request, version: str) -> _Call:
        state = sandbox_state(request)
        check_version(version)
        params = await graph_params(request)
        authorize(state, DIALECT, graph_token(request, params), "meta")
        return cls(state, params)

    def charge(self, account: str) -> None:
        self.account = account
        self.audiences = len(self.state.audiences_of("meta", account))
        wait = self.state.limiter.acquire("meta", account, self.state.now(), self.audiences)
        if wait is not None:
            response = DIALECT.rate_limited(wait)
            response.headers.update(self.usage())
            raise SandboxError(response)

    def usage(self) -> dict[str, str]:
        return _usage_header(self.state, self.audiences, self.account)

    def answer(self, body: Any) -> Response:
        return json_response(body, headers=self.usage() if self.account else None)


def check_version(version: str) -> None:
    if version in LIVE_VERSIONS:
        return
    if version.startswith("v") and version.endswith(".0") and version[1:-2].isdigit():
        raise SandboxError(
            graph_error(
                "(#2635) You are calling a deprecated version of the Ads API. "
                "Please update to the latest version: v26.0.",
                2635,
            )
        )
    raise SandboxError(DIALECT.not_found("GET", f"/{version}"))


def _audience(state: SandboxState, audience_id: str) -> Audience:
    audience = state.audience("meta", audience_id)
    if audience is None:
        raise SandboxError(
            graph_error(
                f"Unsupported request. Object with ID '{audience_id}' does not exist, cannot be "
                "loaded due to missing permissions, or does not support this operation.",
                100,
                subcode=33,
                kind="GraphMethodException",
            )
        )
    return audience


def _meta(state: SandboxState) -> MetaState:
    return state.platform_state("meta", MetaState)


def _record(
    state: SandboxState,
    audience: Audience,
    session: SessionParam | None,
    upload: Upload,
    matched: int,
) -> str:
    """Book an upload, `matched` of whose rows match, under its session (a random one when
    none was given)."""
    sid = session.session_id if session else secrets.randbelow(2**62) + 1
    sessions = _meta(state).sessions.setdefault(audience.audience_id, {})
    booked = sessions.setdefault(sid, _Session(sid, state.now()))
    booked.num_received += upload.received
    booked.num_invalid_entries += len(upload.invalid)
    booked.num_matched += matched
    if session is not None:
        booked.estimated = session.estimated_num_total or booked.estimated
    if session is None or session.last_batch_flag:
        booked.end_time = state.now()
    return str(sid)


def row_label(row: Row) -> str:
    """A member row as `/_sandbox/audiences` names it in `data_use`: its identifying keys."""
    return "|".join(
        f"{spec.name}:{META_KEYS.render(spec, value)}"
        for spec, value in META_KEYS.decode(row)
        if spec.identifying
    )


def keep_data_use(held: dict[str, Any], upload: Upload, add: bool) -> None:
    """Record what each added row said of its data processing options (a row re-added without
    them loses them); forget the removed rows'."""
    if not held and not (add and any(upload.data_use)):
        return  # nothing to keep and nothing to forget: no row's label is needed
    for row, options in zip(upload.rows, upload.data_use or [None] * len(upload.rows), strict=True):
        label = row_label(row)
        if add and options is not None:
            held[label] = options
        else:
            held.pop(label, None)


def _upload_answer(audience: Audience, session_id: str, upload: Upload) -> dict[str, Any]:
    return {
        "audience_id": audience.audience_id,
        "session_id": session_id,
        "num_received": upload.received,
        "num_invalid_entries": len(upload.invalid),
        "invalid_entry_samples": dict(list(upload.invalid.items())[:10]),
    }


def _live_replace(state: SandboxState, audience: Audience) -> _Replace | None:
    replaces = _meta(state).replaces
    replace = replaces.get(audience.audience_id)
    if replace and state.now() - replace.started_at > state.settings.meta_replace_session_seconds:
        del replaces[audience.audience_id]  # abandoned: the audience keeps its old members
        return None
    return replace


def build_router() -> APIRouter:
    router = APIRouter(prefix="/meta/{version}")

    @router.post("/act_{account_id}/customaudiences")
    async def create_audience(request: Request, version: str, account_id: str) -> Response:
        call = await _Call.open(request, version)
        call.charge(f"act_{account_id}")
        params = call.params
        name = str(require(params, "name"))
        subtype = params.get("subtype", "CUSTOM")
        if subtype != "CUSTOM":
            # Only customer-file audiences are emulated; other subtypes need pixels, apps...
            raise invalid_parameter(f"The sandbox emulates subtype CUSTOM only, not {subtype}")
        source = params.get("customer_file_source")
        if source is not None and source not in CUSTOMER_FILE_SOURCES:
            raise invalid_parameter(f"Invalid customer_file_source: {source}")
        audience = call.state.create_audience(
            "meta",
            META_KEYS,
            name,
            f"act_{account_id}",
            customer_file_source=source,
            retention_days=params.get("retention_days", 0),
            audience_labels=params.get("audience_labels", []),
        )
        audience.description = str(params.get("description", ""))
        return call.answer({"id": audience.audience_id})

    @router.get("/act_{account_id}/customaudiences")
    async def list_audiences(request: Request, version: str, account_id: str) -> Response:
        call = await _Call.open(request, version)
        call.charge(f"act_{account_id}")
        audiences = sorted(
            call.state.audiences_of("meta", f"act_{account_id}"), key=lambda a: a.audience_id
        )
        after = call.params.get("after")
        if after is not None:
            audiences = [a for a in audiences if a.audience_id > str(after)]
        limit = int(call.params.get("limit", 25))
        page = audiences[:limit]
        paging: dict[str, Any] = {}
        if page:
            paging["cursors"] = {"before": page[0].audience_id, "after": page[-1].audience_id}
        if len(audiences) > limit:
            paging["next"] = str(request.url.include_query_params(after=page[-1].audience_id))
        return call.answer(
            {"data": [select_fields(a, call.params) for a in page], "paging": paging}
        )

    @router.get("/{audience_id}/sessions")
    async def sessions(request: Request, version: str, audience_id: str) -> Response:
        call = await _Call.open(request, version)
        state = call.state
        audience = _audience(state, audience_id)
        call.charge(audience.ad_account_id)
        booked = _meta(state).sessions.get(audience_id, {})
        wanted = call.params.get("session_id")
        rows = []
        for s in booked.values():
            if wanted is not None and str(s.session_id) != str(wanted):
                continue
            done = s.end_time is not None
            progress = 100 if done else min(99, 100 * s.num_received // (s.estimated or 1))
            rows.append(
                {
                    "session_id": str(s.session_id),
                    "start_time": int(s.start_time),
                    "end_time": int(s.end_time) if done and s.end_time else 0,
                    "num_received": s.num_received,
                    "num_matched": s.num_matched,
                    "num_invalid_entries": s.num_invalid_entries,
                    "progress": progress if s.estimated or done else 0,
                    "stage": "finished" if done else "uploading",  # stage names [INFER]
                }
            )
        return call.answer({"data": rows})

    async def change_users(request: Request, version: str, audience_id: str, add: bool) -> Response:
        call = await _Call.open(request, version)
        state = call.state
        audience = _audience(state, audience_id)
        call.charge(audience.ad_account_id)
        session = parse_session(call.params.get("session"), required=False)
        upload = parse_payload(require(call.params, "payload"))
        if _live_replace(state, audience) is not None:
            # While a replace runs, Meta refuses add/remove on that audience. [INFER code]
            raise SandboxError(
                graph_error(
                    "(#2650) Failed to update the custom audience: a replace (usersreplace) "
                    "session is in progress for this audience.",
                    2650,
                )
            )
        now = state.now()
        if add:
            _, matched = audience.members.add_and_match(upload.rows, now)
        else:
            audience.members.remove(upload.rows)
            matched = audience.members.count_matching(upload.rows)
        keep_data_use(audience.attributes.setdefault("data_use", {}), upload, add)
        audience.touch(now, upload=True)
        session_id = _record(state, audience, session, upload, matched)
        return call.answer(_upload_answer(audience, session_id, upload))

    @router.post("/{audience_id}/users")
    async def add_users(request: Request, version: str, audience_id: str) -> Response:
        return await change_users(request, version, audience_id, add=True)

    @router.delete("/{audience_id}/users")
    async def remove_users(request: Request, version: str, audience_id: str) -> Response:
        return await change_users(request, version, audience_id, add=False)

    @router.post("/{audience_id}/usersreplace")
    async def replace_users(request: Request, version: str, audience_id: str) -> Response:
        call = await _Call.open(request, version)
        state = call.state
        audience = _audience(state, audience_id)
        call.charge(audience.ad_account_id)
        session = parse_session(call.params.get("session"), required=True)
        assert session is not None
        upload = parse_payload(require(call.params, "payload"))
        replace = _live_replace(state, audience)
        if replace is not None and replace.session_id != session.session_id:
            raise SandboxError(
                graph_error(
                    "(#2650) Failed to update the custom audience: another replace session is "
                    "in progress for this audience.",
                    2650,
                )
            )  # [INFER]
        if session.batch_seq == 1:
            # A first batch (re)starts the session: Meta tells clients to restart with
            # batch_seq=1 after 1870147, so the restart must discard what was staged.
            staged = MemberStore(META_KEYS, audience.members.match_rate)
            replace = _Replace(session.session_id, state.now(), staged)
            audience.attributes["data_use_staged"] = {}
            _meta(state).replaces[audience.audience_id] = replace
        elif replace is None:
            raise SandboxError(
                graph_error(
                    "(#2650) Failed to update the custom audience: the first batch_seq was not "
                    "detected. Restart the replace session with batch_seq=1.",
                    2650,
                    subcode=1870147,
                )
            )
        now = state.now()
        replace.staged.add(upload.rows, now)
        keep_data_use(audience.attributes.setdefault("data_use_staged", {}), upload, True)
        if session.last_batch_flag:
            # The swap happens when the last batch is processed (docs/platforms/meta.md §1.3).
            audience.members = replace.staged
            audience.attributes["data_use"] = audience.attributes.pop("data_use_staged")
            del _meta(state).replaces[audience.audience_id]
        audience.touch(now, upload=True)
        # Counted by the audience's own store, which the staged one replaces on the last batch.
        matched = audience.members.count_matching(upload.rows)
        session_id = _record(state, audience, session, upload, matched)
        return call.answer(_upload_answer(audience, session_id, upload))

    # A node's own path, with and without a trailing slash: the official SDK reads, updates
    # and deletes a node at `/{id}/` (its FacebookRequest joins node id and endpoint "/"), and
    # Graph answers it as `/{id}`. [SEEN: facebook/facebook-python-business-sdk:facebook_business/
    # api.py `self._path = (node_id, endpoint.replace('/', ''))`; adobjects/customaudience.py
    # `api_get`/`api_delete` use endpoint='/'] Edges (`/{id}/users`) have no trailing slash there.
    @router.get("/{audience_id}/")
    @router.get("/{audience_id}")
    async def get_audience(request: Request, version: str, audience_id: str) -> Response:
        call = await _Call.open(request, version)
        state = call.state
        audience = _audience(state, audience_id)
        call.charge(audience.ad_account_id)
        return call.answer(select_fields(audience, call.params))

    @router.delete("/{audience_id}/")
    @router.delete("/{audience_id}")
    async def delete_audience(request: Request, version: str, audience_id: str) -> Response:
        call = await _Call.open(request, version)
        state = call.state
        audience = _audience(state, audience_id)
        call.charge(audience.ad_account_id)
        state.delete_audience("meta", audience_id)
        _meta(state).replaces.pop(audience_id, None)
        return call.answer({"success": True})

    return router
