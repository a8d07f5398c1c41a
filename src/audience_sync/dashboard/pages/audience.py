"""The Audience page: its figures and schedule, charts over time, its jobs, and the actions —
sync now, dry run, replace (confirmed), a guarded sync (confirmed), pause/resume, change the
interval, delete (typed confirmation). Every action is a form POST answered with a redirect."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool

from audience_sync.dashboard import web
from audience_sync.dashboard.pages.jobs import form_text, guard_warnings
from audience_sync.domain.models import SYNC_INTERVALS_HOURS, SyncOperation, TriggeredBy
from audience_sync.exceptions import ConflictError, FieldError
from audience_sync.services import audiences, history, jobs, overview, segments
from audience_sync.services.jobs import Job, Trigger
from audience_sync.services.sessions import Viewer

router = APIRouter(include_in_schema=False)

JOBS_SHOWN = 50
# A person pressed a button: `manual`, as for the CLI (the API's callers are `api`).
TRIGGERED_BY = TriggeredBy.MANUAL
# What `?done=` says after an action: the message, and whether it is an error.
DONE = {
    "paused": ("Automatic syncs are paused.", False),
    "resumed": ("Automatic syncs are on again.", False),
    "interval": ("The schedule is changed.", False),
    "busy": ("A sync is already running for this audience.", True),
}


@router.get("/audiences/{audience_id:uuid}")
def audience_page(
    request: Request,
    audience_id: uuid.UUID,
    viewer: web.SignedIn,
    done: Annotated[str, Query(max_length=16)] = "",
    job: Annotated[uuid.UUID | None, Query()] = None,
    confirm: Annotated[str, Query(max_length=16)] = "",
) -> Response:
    return _page(
        request,
        viewer,
        audience_id,
        flash=DONE.get(done),
        busy_job=job if done == "busy" else None,
        confirm_replace=confirm == "replace",
    )


@router.post("/audiences/{audience_id:uuid}/sync")
async def sync(
    request: Request, audience_id: uuid.UUID, viewer: web.SignedIn, form: web.CheckedForm
) -> Response:
    """Sync now, dry run, replace (asked to confirm first) or a confirmed guarded sync."""
    operation = (
        SyncOperation.REPLACE if form_text(form, "operation") == "replace" else SyncOperation.UPDATE
    )
    if operation is SyncOperation.REPLACE and form_text(form, "confirmed") != "yes":
        return web.redirect(f"/audiences/{audience_id}?confirm=replace#actions", request)
    trigger = Trigger(
        operation,
        TRIGGERED_BY,
        dry_run=form_text(form, "dry_run") == "yes",
        force=form_text(form, "force") == "yes",
    )
    ctx = web.context(request)
    job, created = await run_in_threadpool(
        jobs.request_sync, ctx.service, viewer.tenant_id, audience_id, trigger
    )
    # Launched from the event loop (the in-process launcher makes a task of it), as the API does.
    if jobs.should_start(job.status, created):  # new, or a due retry found instead
        ctx.launcher.launch(viewer.tenant_id, job.id)
    if not created:
        return _busy(request, audience_id, job.id)
    return web.redirect(f"/jobs/{job.id}", request)


@router.post("/audiences/{audience_id:uuid}/auto-sync")
def auto_sync(
    request: Request, audience_id: uuid.UUID, viewer: web.SignedIn, form: web.CheckedForm
) -> Response:
    """Pause (`auto_sync=off`) or resume the audience's scheduled syncs."""
    on = form_text(form, "auto_sync") == "on"
    service = web.context(request).service
    audiences.update(service, viewer.tenant_id, audience_id, {"auto_sync": on})
    return web.redirect(f"/audiences/{audience_id}?done={'resumed' if on else 'paused'}", request)


@router.post("/audiences/{audience_id:uuid}/interval")
def interval(
    request: Request, audience_id: uuid.UUID, viewer: web.SignedIn, form: web.CheckedForm
) -> Response:
    """Change how often it syncs; the schedule's rule answers beside the field."""
    text = form_text(form, "sync_interval_hours")
    service = web.context(request).service
    if not text.isdigit() or int(text) == 0:  # the service reads 0 as "the default interval"
        problem = "Choose one of the intervals in the list."
        return _page(request, viewer, audience_id, status_code=422, interval_error=problem)
    try:
        changes = {"sync_interval_hours": int(text)}
        audiences.update(service, viewer.tenant_id, audience_id, changes)
    except FieldError as exc:
        return _page(request, viewer, audience_id, status_code=422, interval_error=exc.message)
    return web.redirect(f"/audiences/{audience_id}?done=interval", request)


@router.post("/audiences/{audience_id:uuid}/delete")
async def delete(
    request: Request, audience_id: uuid.UUID, viewer: web.SignedIn, form: web.CheckedForm
) -> Response:
    """Delete once the audience's name is typed: the delete job removes it on the platform."""
    ctx = web.context(request)
    audience = await run_in_threadpool(audiences.get, ctx.service, viewer.tenant_id, audience_id)
    if form_text(form, "confirm_name") != audience.platform_audience_name.strip():
        problem = "Type the audience's name exactly as shown to delete it."
        return await run_in_threadpool(
            lambda: _page(request, viewer, audience_id, status_code=422, delete_error=problem)
        )
    try:
        job, created = await run_in_threadpool(
            audiences.delete, ctx.service, viewer.tenant_id, audience_id, TRIGGERED_BY
        )
    except ConflictError as exc:
        running = exc.details.get("job_id")
        if running is None:
            raise
        return _busy(request, audience_id, uuid.UUID(running))
    if created:
        ctx.launcher.launch(viewer.tenant_id, job.id)
    return web.redirect(f"/jobs/{job.id}", request)


def _busy(request: Request, audience_id: uuid.UUID, job_id: uuid.UUID) -> Response:
    return web.redirect(f"/audiences/{audience_id}?done=busy&job={job_id}", request)


def _page(
    request: Request,
    viewer: Viewer,
    audience_id: uuid.UUID,
    status_code: int = 200,
    **values: Any,
) -> Response:
    service = web.context(request).service
    audience = audiences.get(service, viewer.tenant_id, audience_id)
    listed = audiences.jobs_of(service, viewer.tenant_id, audience_id, JOBS_SHOWN)
    active = next((j for j in listed if j.status in overview.ACTIVE), None)
    points = history.sync_points(service, viewer.tenant_id, audience_id)
    defaults: dict[str, Any] = {
        "flash": None,
        "busy_job": None,
        "confirm_replace": False,
        "interval_error": None,
        "delete_error": None,
    }
    return web.render(
        request,
        "audience.html",
        viewer,
        status_code=status_code,
        audience=audience,
        segment=segments.get(service, viewer.tenant_id, audience.segment_id),
        state=overview.state_of(audience, active.id if active else None),
        active=active,
        jobs=listed,
        guarded=_guarded(listed),
        change=history.change(points),
        size_chart=size_chart(points),
        rate_chart=rate_chart(points),
        points=points,
        intervals=SYNC_INTERVALS_HOURS,
        **(defaults | values),
    )


def _guarded(listed: Sequence[Job]) -> tuple[Job, list[dict[str, Any]]] | None:
    """The newest ended sync (dry or real) when a guard rail held it back, with its warnings:
    the page then asks to confirm. A later sync that ran makes it moot."""
    for job in listed:
        if job.operation is SyncOperation.DELETE or job.status in overview.ACTIVE:
            continue
        warnings = guard_warnings(job)
        return (job, warnings) if warnings else None
    return None


def labels(points: Sequence[history.SyncPoint]) -> list[str]:
    """Each sync's time, to the minute; to the second where two syncs share a minute."""
    minutes = [p.at.strftime("%b %d %H:%M") for p in points]
    shared = {m for m in minutes if minutes.count(m) > 1}
    return [
        p.at.strftime("%b %d %H:%M:%S") if m in shared else m
        for p, m in zip(points, minutes, strict=True)
    ]


def size_chart(points: Sequence[history.SyncPoint]) -> dict[str, Any]:
    """Chart.js data: the platform's size and the matched size, one point per sync."""
    return {
        "labels": labels(points),
        "datasets": [
            {"label": "Platform size", "data": [p.platform_size for p in points]},
            {"label": "Matched size", "data": [p.matched_size for p in points]},
        ],
    }


def rate_chart(points: Sequence[history.SyncPoint]) -> dict[str, Any]:
    """Chart.js data: the match rate in percent (0–100), one point per sync."""
    return {
        "labels": labels(points),
        "datasets": [
            {
                "label": "Match rate (%)",
                "data": [
                    None if p.match_rate is None else round(p.match_rate * 100, 1) for p in points
                ],
            }
        ],
        "max": 100,
    }
