"""Platform audiences, their syncs (run in the background of this process) and their health."""

from __future__ import annotations

import io
import uuid
from datetime import timedelta
from typing import Annotated, Literal

from fastapi import APIRouter, Header, Query, Response, status
from starlette.concurrency import run_in_threadpool

from audience_sync.api.deps import Ctx, TenantId, require_flags, sync_flags
from audience_sync.api.errors import conflict, field_error
from audience_sync.api.schemas import (
    AudienceCreated,
    AudienceIn,
    AudienceOut,
    AudiencePatch,
    DiagnosticCountOut,
    DiagnosticOut,
    DiagnosticsOut,
    HealthOut,
    JobOut,
    SyncIn,
)
from audience_sync.api.state import ApiContext
from audience_sync.domain.models import SyncOperation, SyncStatus, TriggeredBy
from audience_sync.exceptions import ValidationError
from audience_sync.scheduler.queue import check_interval
from audience_sync.store.db import transaction
from audience_sync.store.repositories import (
    AudienceRepository,
    SegmentRepository,
    SyncJobRepository,
)
from audience_sync.sync.audiences import (
    AudienceDeletedError,
    AudienceNotPurgeableError,
    add_audience,
    options_problem,
    purge_audience,
)
from audience_sync.sync.diagnostics import read_report, write_csv
from audience_sync.sync.health import audience_health
from audience_sync.sync.jobs import Trigger, cancel_job, trigger_job

router = APIRouter(tags=["audiences"])


def _interval(ctx: ApiContext, hours: int) -> int:
    try:
        return check_interval(hours, ctx.settings.min_interval_hours)
    except ValidationError as exc:
        raise field_error("body.sync_interval_hours", "interval", exc.message) from exc


def _trigger(
    ctx: ApiContext, tenant_id: int, audience_id: uuid.UUID, trigger: Trigger
) -> tuple[JobOut, bool]:
    """Queue a job (flags checked first); `(job, False)` when one was already active."""
    with transaction(ctx.factory) as session:
        audience = AudienceRepository(session, tenant_id).get(audience_id)
        require_flags(session, tenant_id, ctx.settings, *sync_flags(audience.platform))
    job, created = trigger_job(ctx.factory, tenant_id, audience_id, trigger, ctx.service.clock())
    return JobOut.model_validate(job), created


@router.get("/audiences", response_model=list[AudienceOut])
def list_audiences(
    ctx: Ctx,
    tenant_id: TenantId,
    include_deleted: Annotated[
        bool, Query(description="Also list deleted audiences (until they are purged).")
    ] = False,
) -> list[AudienceOut]:
    """The tenant's audiences, oldest first; deleted ones only with `include_deleted=true`."""
    with transaction(ctx.factory) as session:
        found = AudienceRepository(session, tenant_id).list(include_deleted)
        return [AudienceOut.model_validate(a) for a in found]


@router.post("/audiences", status_code=status.HTTP_201_CREATED, response_model=AudienceCreated)
async def create_audience(body: AudienceIn, ctx: Ctx, tenant_id: TenantId) -> AudienceCreated:
    """Link a segment to a new platform audience; by default its first sync is queued at once
    (the platform audience is created by that sync)."""
    hours = _interval(ctx, body.sync_interval_hours or ctx.settings.default_interval_hours)
    too_large = options_problem(body.options, ctx.settings.max_options_bytes)
    if too_large:
        raise field_error("body.options", "max_size", too_large)

    def create() -> AudienceOut:
        now = ctx.service.clock()
        with transaction(ctx.factory) as session:
            require_flags(session, tenant_id, ctx.settings, *sync_flags(body.platform))
            segment = SegmentRepository(session, tenant_id).get(body.segment_id)
            audience = add_audience(
                session,
                tenant_id,
                ctx.service.cipher,
                segment_id=segment.id,
                platform=body.platform,
                name=body.platform_audience_name,
                ad_account_id=body.ad_account_id,
                description=body.description,
                auto_sync=body.auto_sync,
                interval_hours=hours,
                options=body.options,
                now=now,
                connect_hint=f"PUT /api/v1/connections/{body.platform.value}",
            )
            return AudienceOut.model_validate(audience)

    audience = await run_in_threadpool(create)
    job = None
    if body.sync_now:
        trigger = Trigger(SyncOperation.CREATE, TriggeredBy.API)
        job, _ = await run_in_threadpool(_trigger, ctx, tenant_id, audience.id, trigger)
        ctx.launcher.launch(tenant_id, job.id)
    return AudienceCreated(**audience.model_dump(), sync_job=job)


@router.get("/audiences/{audience_id}", response_model=AudienceOut)
def get_audience(audience_id: uuid.UUID, ctx: Ctx, tenant_id: TenantId) -> AudienceOut:
    with transaction(ctx.factory) as session:
        return AudienceOut.model_validate(AudienceRepository(session, tenant_id).get(audience_id))


@router.patch("/audiences/{audience_id}", response_model=AudienceOut)
def patch_audience(
    audience_id: uuid.UUID, body: AudiencePatch, ctx: Ctx, tenant_id: TenantId
) -> AudienceOut:
    """Change the description or the schedule; the next sync is one interval after the last."""
    changes = body.model_dump(exclude_unset=True)
    if changes.get("sync_interval_hours") is not None:
        _interval(ctx, changes["sync_interval_hours"])
    for name in ("auto_sync", "sync_interval_hours"):
        if name in changes and changes[name] is None:
            raise field_error(f"body.{name}", "not_null", f"{name} cannot be null")
    with transaction(ctx.factory) as session:
        audience = AudienceRepository(session, tenant_id).get(audience_id)
        if not audience.is_active:
            raise ValidationError(
                f"Audience {audience.platform_audience_name!r} was deleted; create a new one."
            )
        for name, value in changes.items():
            setattr(audience, name, value)
        if {"auto_sync", "sync_interval_hours"} & changes.keys():
            base = audience.last_sync_at or ctx.service.clock()
            interval = timedelta(hours=audience.sync_interval_hours)
            audience.next_sync_at = base + interval if audience.auto_sync else None
        session.flush()
        return AudienceOut.model_validate(audience)


@router.delete(
    "/audiences/{audience_id}",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=JobOut,
    responses={204: {"description": "Purged (`purge=true`): the audience and its rows are gone."}},
)
async def delete_audience(
    audience_id: uuid.UUID,
    ctx: Ctx,
    tenant_id: TenantId,
    purge: Annotated[
        bool,
        Query(description="Remove an already deleted audience and its history for good."),
    ] = False,
) -> JobOut | Response:
    """Queue the delete job: it deletes the audience on the platform, deactivates it here and
    keeps its history. 409 while another sync of the audience is pending or running.
    With `purge=true`, a deleted audience is removed with its jobs, snapshot and member state
    (204); 409 while it is not deleted yet."""
    if purge:
        await run_in_threadpool(_purge, ctx, tenant_id, audience_id)
        return Response(status_code=status.HTTP_204_NO_CONTENT)

    def queue() -> tuple[JobOut, bool]:
        trigger = Trigger(SyncOperation.DELETE, TriggeredBy.API)
        try:
            return _trigger(ctx, tenant_id, audience_id, trigger)
        except AudienceDeletedError as exc:
            raise conflict("audience_deleted", "The audience is already deleted.") from exc

    job, created = await run_in_threadpool(queue)
    if not created and job.operation is not SyncOperation.DELETE:
        raise conflict(
            "sync_in_progress",
            f"A {job.operation.value} job is {job.status.value} for this audience; cancel it "
            "or wait for it to end, then delete.",
            job_id=str(job.id),
        )
    if created:
        ctx.launcher.launch(tenant_id, job.id)
    return job


def _purge(ctx: ApiContext, tenant_id: int, audience_id: uuid.UUID) -> None:
    try:
        with transaction(ctx.factory) as session:
            purge_audience(session, tenant_id, audience_id)
    except AudienceNotPurgeableError as exc:
        raise conflict(exc.code, exc.message) from exc


@router.post(
    "/audiences/{audience_id}/sync",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=JobOut,
    responses={200: {"model": JobOut, "description": "A job was already pending or running."}},
)
async def sync_audience(
    audience_id: uuid.UUID, body: SyncIn, ctx: Ctx, tenant_id: TenantId, response: Response
) -> JobOut:
    """Queue a sync and start it in the background: 202 with the new job, or 200 with the job
    already pending or running for the audience (one at a time, never in parallel)."""
    trigger = Trigger(body.operation, TriggeredBy.API, None, body.dry_run, body.force)
    job, created = await run_in_threadpool(_trigger, ctx, tenant_id, audience_id, trigger)
    if not created:
        response.status_code = status.HTTP_200_OK
    # A pending job found instead (a retry the trigger brought forward to now) starts now too;
    # launching one that another launch starts first does nothing (`start_job` claims once).
    if created or job.status is SyncStatus.PENDING:
        ctx.launcher.launch(tenant_id, job.id)
    return job


@router.get("/audiences/{audience_id}/jobs", response_model=list[JobOut], tags=["jobs"])
def list_jobs(
    audience_id: uuid.UUID,
    ctx: Ctx,
    tenant_id: TenantId,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
) -> list[JobOut]:
    """The audience's jobs, newest first."""
    with transaction(ctx.factory) as session:
        AudienceRepository(session, tenant_id).get(audience_id)
        jobs = SyncJobRepository(session, tenant_id).for_audience(audience_id, limit)
        return [JobOut.model_validate(j) for j in jobs]


@router.get("/audiences/{audience_id}/health", response_model=HealthOut)
def get_health(audience_id: uuid.UUID, ctx: Ctx, tenant_id: TenantId) -> HealthOut:
    with transaction(ctx.factory) as session:
        found = audience_health(session, tenant_id, audience_id, ctx.service.clock())
    return HealthOut(**found)


@router.get("/sync-jobs/{job_id}", response_model=JobOut, tags=["jobs"])
def get_job(job_id: uuid.UUID, ctx: Ctx, tenant_id: TenantId) -> JobOut:
    with transaction(ctx.factory) as session:
        return JobOut.model_validate(SyncJobRepository(session, tenant_id).get(job_id))


@router.post("/sync-jobs/{job_id}/cancel", response_model=JobOut, tags=["jobs"])
def cancel(job_id: uuid.UUID, ctx: Ctx, tenant_id: TenantId) -> JobOut:
    """A pending job is cancelled now; a running one stops at its next checkpoint
    (`cancel_requested` is true until then). A job that already completed or failed: 409."""
    with transaction(ctx.factory) as session:
        found = SyncJobRepository(session, tenant_id).get(job_id)
        if found.status in (SyncStatus.COMPLETED, SyncStatus.FAILED):
            raise conflict(
                "job_finished", f"The job already ended ({found.status.value}); nothing to cancel."
            )
    job = cancel_job(ctx.factory, tenant_id, job_id, ctx.service.clock())
    return JobOut.model_validate(job)


@router.get(
    "/sync-jobs/{job_id}/diagnostics",
    response_model=DiagnosticsOut,
    tags=["jobs"],
    responses={200: {"content": {"text/csv": {}}}},
)
def get_diagnostics(
    job_id: uuid.UUID,
    ctx: Ctx,
    tenant_id: TenantId,
    reason: Annotated[str | None, Query(max_length=64)] = None,
    field: Annotated[str | None, Query(max_length=32)] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    offset: Annotated[int, Query(ge=0)] = 0,
    fmt: Annotated[Literal["json", "csv"] | None, Query(alias="format")] = None,
    accept: Annotated[str | None, Header()] = None,
) -> DiagnosticsOut | Response:
    """Which profiles' identifier values the job dropped or the platform refused: field, reason,
    the value masked; filtered by `reason` and `field`, a page at a time. With `format=csv` (or
    `Accept: text/csv`), every kept entry matching the filters as a formula-safe CSV file."""
    csv_wanted = fmt == "csv" or (fmt is None and "text/csv" in (accept or ""))
    with transaction(ctx.factory) as session:
        report = read_report(
            session,
            tenant_id,
            job_id,
            reason=reason,
            field=field,
            offset=0 if csv_wanted else offset,
            limit=None if csv_wanted else limit,
        )
    if csv_wanted:
        sink = io.StringIO()
        write_csv(report.entries, sink)
        return Response(
            sink.getvalue(),
            media_type="text/csv; charset=utf-8",
            headers={"Content-Disposition": f'attachment; filename="diagnostics-{job_id}.csv"'},
        )
    after = offset + len(report.entries)
    return DiagnosticsOut(
        job_id=report.job_id,
        counts=[DiagnosticCountOut(**count) for count in report.counts],
        truncated=report.truncated,
        max_entries=report.max_entries,
        total=report.matching,
        offset=offset,
        next_offset=after if after < report.matching else None,
        items=[DiagnosticOut.model_validate(entry) for entry in report.entries],
    )
