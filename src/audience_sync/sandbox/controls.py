"""Test and operator controls under `/_sandbox`: audiences, request log, faults, limits, clock."""

from __future__ import annotations

import hashlib
import json
from typing import Any

from fastapi import APIRouter, HTTPException, Request
from pydantic import BaseModel, Field

from audience_sync.sandbox.dialect import sandbox_state
from audience_sync.sandbox.faults import FaultKind, FaultRule
from audience_sync.sandbox.ratelimit import FAMILIES
from audience_sync.sandbox.settings import RateLimit
from audience_sync.sandbox.state import Audience

PLATFORMS = ("meta", "google", "tiktok", "snapchat")


class FaultIn(BaseModel):
    kind: FaultKind
    count: int | None = Field(default=1, ge=1)
    platform: str | None = None
    path: str | None = None
    method: str | None = None
    status: int = Field(default=500, ge=500, le=599)
    retry_after: float = Field(default=1.0, ge=0)
    delay_seconds: float = Field(default=30.0, ge=0)
    process: bool | None = None
    code: int | None = None
    subcode: int | None = None


class RateLimitIn(BaseModel):
    family: str
    limit: RateLimit | None


class AudiencePatch(BaseModel):
    match_rate: float | None = Field(default=None, ge=0.0, le=1.0)
    # People added to the audience outside Audience Sync (the platform's UI, another tool):
    # every platform's reported size counts them.
    outside_members: int | None = Field(default=None, ge=0)


class TokenIn(BaseModel):
    platform: str
    ttl_seconds: float | None = Field(default=None, gt=0)


class ClockIn(BaseModel):
    advance_seconds: float = Field(ge=0)


def identifiers_digest(held: dict[str, list[str]]) -> dict[str, str]:
    """By wire key, the SHA-256 of its sorted values as compact JSON: how a large audience is
    compared without moving its members (`/_sandbox/audiences?digest=true`), key by key (a
    reference may know some keys only)."""
    return {
        key: hashlib.sha256(json.dumps(values, separators=(",", ":")).encode()).hexdigest()
        for key, values in held.items()
    }


def _audience_json(audience: Audience, identifiers: bool, digest: bool = False) -> dict[str, Any]:
    body: dict[str, Any] = {
        "platform": audience.platform,
        "audience_id": audience.audience_id,
        "name": audience.name,
        "ad_account_id": audience.ad_account_id,
        "size": audience.size,
        "matched": audience.members.matched,
        "match_rate": audience.members.match_rate,
        "expired_members": audience.expired,
    }
    if identifiers:
        body["identifiers"] = audience.members.identifiers()
        # What members said of how their data may be used (Meta LDU, Google consent), by member.
        body["data_use"] = audience.attributes.get("data_use", {})
    if digest:
        body["identifiers_sha256"] = identifiers_digest(audience.members.identifiers())
    return body


def build_router() -> APIRouter:
    router = APIRouter(prefix="/_sandbox", tags=["sandbox controls"])

    @router.get("/audiences")
    async def audiences(
        request: Request,
        platform: str | None = None,
        identifiers: bool = True,
        digest: bool = False,
    ) -> list[dict[str, Any]]:
        """Every audience with its members by wire key (`identifiers=false` for sizes only;
        `digest=true` adds `identifiers_sha256`, see `identifiers_digest`)."""
        state = sandbox_state(request)
        found = [a for a in state.audiences.values() if platform is None or a.platform == platform]
        for audience in found:
            state.expire_members(audience)
        return [_audience_json(a, identifiers, digest) for a in found]

    @router.patch("/audiences/{platform}/{audience_id}")
    async def patch_audience(
        request: Request, platform: str, audience_id: str, patch: AudiencePatch
    ) -> dict[str, Any]:
        """Set an audience's simulated match rate (its matched count is recomputed), or add
        people to it as if added outside Audience Sync (`outside_members`)."""
        audience = sandbox_state(request).audience(platform, audience_id)
        if audience is None:
            raise HTTPException(404, f"no {platform} audience {audience_id}")
        if patch.match_rate is not None:
            audience.members.set_match_rate(patch.match_rate)
        if patch.outside_members:
            audience.members.add_outside(patch.outside_members)
        return _audience_json(audience, identifiers=False)

    @router.get("/requests")
    async def requests(
        request: Request, platform: str | None = None, limit: int | None = None
    ) -> list[dict[str, Any]]:
        return sandbox_state(request).log.entries(platform, limit)

    @router.get("/faults")
    async def faults(request: Request) -> list[dict[str, Any]]:
        return [r.to_json() for r in sandbox_state(request).faults.rules]

    @router.post("/faults", status_code=201)
    async def add_fault(request: Request, fault: FaultIn) -> dict[str, Any]:
        """Inject a fault for the next `count` matching requests (`count: null`: until cleared)."""
        if fault.platform is not None and fault.platform not in FAMILIES:
            raise HTTPException(422, f"platform must be one of {', '.join(FAMILIES)}")
        try:
            rule = FaultRule(**fault.model_dump())
        except Exception as exc:  # a bad path pattern, a platform_error without a code
            raise HTTPException(422, f"invalid fault: {exc}") from exc
        return sandbox_state(request).faults.add(rule).to_json()

    @router.delete("/faults")
    async def clear_faults(request: Request) -> dict[str, Any]:
        sandbox_state(request).faults.clear()
        return {"cleared": True}

    @router.get("/rate_limits")
    async def rate_limits(request: Request) -> dict[str, Any]:
        limits = sandbox_state(request).limiter.limits
        return {f: (v.model_dump() if v else None) for f, v in limits.items()}

    @router.put("/rate_limits")
    async def set_rate_limit(request: Request, body: RateLimitIn) -> dict[str, Any]:
        """Change one family's budget (`limit: null` lifts it); buckets start full."""
        if body.family not in FAMILIES:
            raise HTTPException(422, f"family must be one of {', '.join(FAMILIES)}")
        sandbox_state(request).limiter.configure(body.family, body.limit)
        return {body.family: body.limit.model_dump() if body.limit else None}

    @router.post("/tokens", status_code=201)
    async def issue_token(request: Request, body: TokenIn) -> dict[str, Any]:
        """Issue an access token (and a refresh token) for one platform, optionally short-lived."""
        if body.platform not in PLATFORMS:
            raise HTTPException(422, f"platform must be one of {', '.join(PLATFORMS)}")
        state = sandbox_state(request)
        return {
            "access_token": state.tokens.issue(body.platform, body.ttl_seconds, state.now()),
            "refresh_token": state.tokens.issue_refresh(body.platform),
            "expires_in": body.ttl_seconds,
        }

    @router.post("/clock")
    async def advance_clock(request: Request, body: ClockIn) -> dict[str, Any]:
        """Move the sandbox's clock forward (token expiry, processing, daily limits, buckets)."""
        clock = sandbox_state(request).clock
        clock.advance(body.advance_seconds)
        return {"offset_seconds": clock.offset}

    @router.post("/reset")
    async def reset(request: Request) -> dict[str, Any]:
        """Forget every audience, token, fault, request and rate-limit change."""
        sandbox_state(request).reset()
        return {"reset": True}

    return router
