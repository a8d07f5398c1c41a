"""Per-tenant overrides of the feature flags, beneath the operator's ceiling.

The operator's environment decides first: a flag it turned off
(`AUDIENCE_SYNC_FEATURE_FLAGS__AUDIENCE_EXPORT=false`) is off for every tenant, and a tenant
cannot turn it back on (403 `flag_set_by_operator`). Other flags are defaults a tenant may
override either way.
"""

from __future__ import annotations

from fastapi import APIRouter

from audience_sync.api.deps import Ctx, TenantId
from audience_sync.api.errors import ApiError
from audience_sync.api.report_schemas import FlagsIn, FlagsOut, FlagState
from audience_sync.config import FeatureFlag, FeatureFlags
from audience_sync.services import flags

router = APIRouter(tags=["feature flags"])


def _flags(values: flags.FlagValues, operator: FeatureFlags) -> FlagsOut:
    _, effective = values
    source = flags.sources(values, operator)
    return FlagsOut(
        flags={
            flag: FlagState(enabled=effective[flag], source=source[flag]) for flag in FeatureFlag
        }
    )


def _refuse_raising(body: FlagsIn, operator: FeatureFlags) -> None:
    """403 before anything is stored when the request turns on a flag the operator turned off."""
    flag = flags.raised_above_operator(dict(body.flags), operator)
    if flag is not None:
        raise ApiError(
            403,
            "flag_set_by_operator",
            f"Feature flag {flag.value!r} is turned off by the operator of this service; "
            "a tenant cannot turn it on. Ask the operator to enable it.",
            {"flag": flag.value},
        )


@router.get("/feature-flags", response_model=FlagsOut)
def get_flags(ctx: Ctx, tenant_id: TenantId) -> FlagsOut:
    """Every flag's effective value for this tenant and where it comes from: `operator` (the
    service's settings), `tenant` (this tenant's override) or `default`."""
    operator = ctx.settings.feature_flags
    return _flags(flags.read(ctx.factory, tenant_id, operator), operator)


@router.put("/feature-flags", response_model=FlagsOut)
def put_flags(body: FlagsIn, ctx: Ctx, tenant_id: TenantId) -> FlagsOut:
    """Set (true/false) or clear (null) this tenant's overrides; flags not named are unchanged.
    Turning on a flag the operator turned off is refused (403) and changes nothing."""
    _refuse_raising(body, ctx.settings.feature_flags)
    operator = ctx.settings.feature_flags
    return _flags(flags.write(ctx.factory, tenant_id, dict(body.flags), operator), operator)
