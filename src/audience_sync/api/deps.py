"""Request dependencies: the app's context and the tenant behind the API key."""

from __future__ import annotations

from typing import Annotated, cast

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from starlette.concurrency import run_in_threadpool

from audience_sync.api.errors import unauthorized
from audience_sync.api.limits import TENANT_SCOPE_KEY
from audience_sync.api.state import ApiContext
from audience_sync.services import tenants

bearer = HTTPBearer(
    auto_error=False,
    description="An API key from `audience-sync tenants create NAME` (shown once).",
)


# The two dependencies below are `async def` although they do not await (but for the lookup
# of an app without the gate): FastAPI runs a plain `def` dependency in a worker thread, a
# hand-off there and back for each, twice a request, for a dictionary read.


async def api_context(request: Request) -> ApiContext:
    return cast(ApiContext, request.app.state.context)


async def authenticated_tenant(
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
    factory = cast(ApiContext, request.app.state.context).factory
    tenant_id = await run_in_threadpool(tenants.authenticate, factory, credentials.credentials)
    if tenant_id is None:
        raise unauthorized("Invalid or revoked API key.")
    return tenant_id


Ctx = Annotated[ApiContext, Depends(api_context)]
TenantId = Annotated[int, Depends(authenticated_tenant)]
