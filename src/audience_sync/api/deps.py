"""Request dependencies: the app's context, the tenant behind the API key, feature-flag guards."""

from __future__ import annotations

from typing import Annotated, cast

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.orm import Session

from audience_sync.api.errors import feature_disabled, unauthorized
from audience_sync.api.limits import TENANT_SCOPE_KEY
from audience_sync.api.state import ApiContext
from audience_sync.config import FeatureFlag, Settings
from audience_sync.connectors import registry
from audience_sync.domain.models import SyncPlatform
from audience_sync.store.db import transaction
from audience_sync.store.repositories import ApiKeyRepository, FeatureFlagRepository

bearer = HTTPBearer(
    auto_error=False,
    description="An API key from `audience-sync tenants create NAME` (shown once).",
)


def api_context(request: Request) -> ApiContext:
    return cast(ApiContext, request.app.state.context)


def authenticated_tenant(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
) -> int:
    """The tenant id of the request's API key; 401 when the key is missing, wrong or revoked.

    The request gate (`api.limits`) has checked the key before the body was read and left the
    tenant in the scope; the lookup here serves an app mounted without the gate."""
    checked = request.scope.get(TENANT_SCOPE_KEY)
    if isinstance(checked, int):
        return checked
    if credentials is None or not credentials.credentials:
        raise unauthorized("Missing API key: send `Authorization: Bearer KEY`.")
    with transaction(api_context(request).factory) as session:
        tenant_id = ApiKeyRepository(session).authenticate(credentials.credentials)
    if tenant_id is None:
        raise unauthorized("Invalid or revoked API key.")
    return tenant_id


Ctx = Annotated[ApiContext, Depends(api_context)]
TenantId = Annotated[int, Depends(authenticated_tenant)]


def require_flags(
    session: Session, tenant_id: int, settings: Settings, *flags: FeatureFlag
) -> None:
    """403 naming the first flag that is off for this tenant (the operator's ceiling included:
    `FeatureFlagRepository.effective`)."""
    effective = FeatureFlagRepository(session, tenant_id).effective(settings.feature_flags)
    for flag in flags:
        if not effective[flag]:
            by_operator = flag in settings.feature_flags.operator_off()
            raise feature_disabled(flag.value, by_operator=by_operator)


def sync_flags(platform: SyncPlatform) -> tuple[FeatureFlag, ...]:
    """The flags a sync on this platform needs (the runner checks the same ones)."""
    return registry.sync_flags(platform)
