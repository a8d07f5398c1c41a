"""Request dependencies: the app's context and the tenant behind the API key."""

from __future__ import annotations

from typing import Annotated, cast

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from audience_sync.api.errors import unauthorized
from audience_sync.api.limits import TENANT_SCOPE_KEY
from audience_sync.api.state import ApiContext
from audience_sync.services import tenants

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
    tenant_id = tenants.authenticate(api_context(request).factory, credentials.credentials)
    if tenant_id is None:
        raise unauthorized("Invalid or revoked API key.")
    return tenant_id


Ctx = Annotated[ApiContext, Depends(api_context)]
TenantId = Annotated[int, Depends(authenticated_tenant)]
