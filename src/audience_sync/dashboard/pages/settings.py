"""The Settings page: the account's feature flags, and its API keys (create, shown once; revoke).

Flags go through `services.flags` beneath the operator's ceiling, as `PUT /api/v1/feature-flags`
does; keys through `services.tenants`. A new key is in the answer to its POST only: no redirect
carries it, nothing stores it, a reload of the page no longer shows it.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool

from audience_sync.config import FeatureFlag
from audience_sync.dashboard import web
from audience_sync.exceptions import FeatureDisabledError, NotFoundError, ValidationError
from audience_sync.services import flags, tenants
from audience_sync.services.sessions import Viewer

router = APIRouter(include_in_schema=False)

FLAG_LABELS = {
    FeatureFlag.AUDIENCE_SYNC: "Audience syncs (every platform)",
    FeatureFlag.AUDIENCE_SYNC_META: "Syncs to Meta",
    FeatureFlag.AUDIENCE_SYNC_GOOGLE: "Syncs to Google",
    FeatureFlag.AUDIENCE_SYNC_TIKTOK: "Syncs to TikTok",
    FeatureFlag.AUDIENCE_SYNC_SNAPCHAT: "Syncs to Snapchat",
    FeatureFlag.AUDIENCE_EXPORT: "Segment exports",
}
KEY_NAME_MAX = 200  # `api_keys.name`


@router.get("/settings")
def settings_page(request: Request, viewer: web.SignedIn, done: str = "") -> Response:
    flash = {"flags": "Feature flags saved.", "revoked": "The key was revoked."}.get(done)
    return _page(request, viewer, flash=flash)


@router.post("/settings/flags")
async def save_flags(request: Request, viewer: web.SignedIn, form: web.CheckedForm) -> Response:
    operator = web.context(request).settings.feature_flags
    wanted = {flag: form.get(flag.value) == "on" for flag in FeatureFlag}
    changes = flags.changes_for(wanted, operator)
    raised = flags.raised_above_operator(changes, operator)
    if raised is not None:  # never: `changes_for` leaves the ceiling out; kept as the API's rule
        raise FeatureDisabledError(raised.value, by_operator=True)
    factory = web.context(request).factory
    await run_in_threadpool(flags.write, factory, viewer.tenant_id, changes, operator)
    return web.redirect("/settings?done=flags", request)


@router.post("/settings/keys")
async def create_key(request: Request, viewer: web.SignedIn, form: web.CheckedForm) -> Response:
    name = str(form.get("name") or "").strip()
    if not name or len(name) > KEY_NAME_MAX:
        error = f"Name the key (at most {KEY_NAME_MAX} characters), e.g. who or what uses it."
        return _page(request, viewer, 422, key_error=error, key_name=name)
    factory = web.context(request).factory
    key = await run_in_threadpool(tenants.issue_key_for, factory, viewer.tenant_id, name)
    return _page(request, viewer, new_key=key, new_key_name=name)


@router.post("/settings/keys/revoke")
async def revoke_key(request: Request, viewer: web.SignedIn, form: web.CheckedForm) -> Response:
    prefix = str(form.get("prefix") or "")
    factory = web.context(request).factory
    known = await run_in_threadpool(tenants.keys_of, factory, viewer.tenant_id)
    key = next((k for k in known if k.prefix == prefix and k.revoked_at is None), None)
    if key is None:  # another account's key, a revoked one, or none: the same answer
        raise NotFoundError("No active API key of this account has that prefix.")
    if form.get("confirm") != "yes":
        own = key.prefix == viewer.key_prefix
        return web.render(request, "settings_revoke.html", viewer, key=key, own=own)
    try:
        now = web.context(request).service.clock()
        await run_in_threadpool(tenants.revoke_key_of, factory, viewer.tenant_id, prefix, now)
    except ValidationError as exc:  # two active keys share the shown prefix
        return _page(request, viewer, 409, problem=exc.message)
    if key.prefix == viewer.key_prefix:  # this session's key: the session ended with it
        response = web.redirect("/login", request)
        response.delete_cookie(web.SESSION_COOKIE)
        return response
    return web.redirect("/settings?done=revoked", request)


def _page(request: Request, viewer: Viewer, status_code: int = 200, **values: Any) -> Response:
    ctx = web.context(request)
    operator = ctx.settings.feature_flags
    read = flags.read(ctx.factory, viewer.tenant_id, operator)
    source = flags.sources(read, operator)
    ceiling = operator.operator_off()
    rows = [
        {
            "flag": flag,
            "label": FLAG_LABELS.get(flag, flag.value),
            "on": read[1][flag],
            "source": source[flag],
            "forced": flag in ceiling,
        }
        for flag in FeatureFlag
    ]
    for name in ("flash", "problem", "key_error", "new_key", "new_key_name"):
        values.setdefault(name, None)
    values.setdefault("key_name", "")
    return web.render(
        request,
        "settings.html",
        viewer,
        status_code=status_code,
        flags=rows,
        keys=tenants.keys_of(ctx.factory, viewer.tenant_id),
        **values,
    )
