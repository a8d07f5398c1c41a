"""Per-tenant overrides of the spec's feature flags on top of the environment's defaults."""

from __future__ import annotations

from fastapi import APIRouter

from audience_sync.api.deps import Ctx, TenantId
from audience_sync.api.schemas import FlagsIn, FlagsOut, FlagState
from audience_sync.config import Settings
from audience_sync.store.db import transaction
from audience_sync.store.repositories import FeatureFlagRepository

router = APIRouter(tags=["feature flags"])


def _flags(repo: FeatureFlagRepository, settings: Settings) -> FlagsOut:
    overrides = repo.overrides()
    defaults = settings.feature_flags.as_dict()
    return FlagsOut(
        flags={
            flag: FlagState(
                enabled=overrides.get(flag, default),
                source="tenant" if flag in overrides else "default",
            )
            for flag, default in defaults.items()
        }
    )


@router.get("/feature-flags", response_model=FlagsOut)
def get_flags(ctx: Ctx, tenant_id: TenantId) -> FlagsOut:
    """Every flag's effective value for this tenant, and whether it is the tenant's override."""
    with transaction(ctx.factory) as session:
        return _flags(FeatureFlagRepository(session, tenant_id), ctx.settings)


@router.put("/feature-flags", response_model=FlagsOut)
def put_flags(body: FlagsIn, ctx: Ctx, tenant_id: TenantId) -> FlagsOut:
    """Set (true/false) or clear (null) this tenant's overrides; flags not named are unchanged."""
    with transaction(ctx.factory) as session:
        repo = FeatureFlagRepository(session, tenant_id)
        for flag, enabled in body.flags.items():
            repo.set(flag, enabled)
        session.flush()
        return _flags(repo, ctx.settings)
