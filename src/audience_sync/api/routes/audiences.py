"""Platform audiences, their syncs (run in the background of this process) and their health."""

from __future__ import annotations

import io
import uuid
from typing import Annotated, Literal

from fastapi import APIRouter, Header, Query, Response, status
from starlette.concurrency import run_in_threadpool

from audience_sync.api.deps import Ctx, TenantId
from audience_sync.api.errors import field_error
from audience_sync.api.report_schemas import DiagnosticCountOut, DiagnosticOut, DiagnosticsOut
from audience_sync.api.schemas import (
    AudienceCreated,
    AudienceIn,
    AudienceOut,
    AudiencePatch,
    HealthOut,
    JobOut,
    JobProgressOut,
    SyncIn,
)
from audience_sync.api.state import ApiContext
from audience_sync.domain.models import SyncOperation, TriggeredBy
from audience_sync.services import audiences, jobs
from audience_sync.services.jobs import Trigger

router = APIRouter(tags=["audiences"])


def job_out(ctx: ApiContext, job: jobs.Job) -> JobOut:
    """A job as the API answers it, with its progress at the service's clock."""
    out = JobOut.model_validate(job)
    progress = jobs.progress_of(job, ctx.service.clock())
    if progress is not None:
        out.progress = JobProgressOut.model_validate(progress)
    return out


def _trigger(
    ctx: ApiContext, tenant_id: int, audience_id: uuid.UUID, trigger: Trigger
) -> tuple[JobOut, bool]:
    """Queue a job (flags checked first); `(job, False)` when one was already active."""
    job, created = jobs.request_sync(ctx.service, tenant_id, audience_id, trigger)
    return job_out(ctx, job), created


@router.get("/audiences", response_model=list[AudienceOut])
def list_audiences(
    ctx: Ctx,
    tenant_id: TenantId,
    include_deleted: Annotated[
        bool, Query(description="Also list deleted audiences (until they are purged).")
    ] = False,
) -> list[AudienceOut]:
    """The tenant's audiences, oldest first; deleted ones only with `include_deleted=true`."""
    found = audiences.list_audiences(ctx.service, tenant_id, include_deleted)
    return [AudienceOut.model_validate(a) for a in found]


@router.post("/audiences", status_code=status.HTTP_201_CREATED, response_model=AudienceCreated)
async def create_audience(body: AudienceIn, ctx: Ctx, tenant_id: TenantId) -> AudienceCreated:
    """Link a segment to a new platform audience; by default its first sync is queued at once
    (the platform audience is created by that sync)."""
    new = body.new_audience()
    hint = f"PUT /api/v1/connections/{body.platform.value}"

    def create() -> AudienceOut:
        made = audiences.create(ctx.service, tenant_id, new, connect_hint=hint)
        return AudienceOut.model_validate(made)

    audience = await run_in_threadpool(create)
    job = None
    if body.sync_now:
        trigger = Trigger(SyncOperation.CREATE, TriggeredBy.API)
        job, _ = await run_in_threadpool(_trigger, ctx, tenant_id, audience.id, trigger)
        ctx.launcher.launch(tenant_id, job.id)
    return AudienceCreated(**audience.model_dump(), sync_job=job)


@router.get("/audiences/{audience_id}", response_model=AudienceOut)
def get_audience(audience_id: uuid.UUID, ctx: Ctx, tenant_id: TenantId) -> AudienceOut:
    return AudienceOut.model_validate(audiences.get(ctx.service, tenant_id, audience_id))


@router.patch("/audiences/{audience_id}", response_model=AudienceOut)
def patch_audience(
    audience_id: uuid.UUID, body: AudiencePatch, ctx: Ctx, tenant_id: TenantId
) -> AudienceOut:
    """Change the description or the schedule; the next sync is one interval after the last."""
    changes = body.model_dump(exclude_unset=True)
    if changes.get("sync_interval_hours") is not None:  # answered before the null checks
        audiences.interval(ctx.service, changes["sync_interval_hours"])
    for name in ("auto_sync", "sync_interval_hours"):
        if name in changes and changes[name] is None:
            raise field_error(f"body.{name}", "not_null", f"{name} cannot be null")
    return AudienceOut.model_validate(
        audiences.update(ctx.service, tenant_id, audience_id, changes)
    )


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
        await run_in_threadpool(audiences.purge, ctx.service, tenant_id, audience_id)
        return Response(status_code=status.HTTP_204_NO_CONTENT)
    job, created = await run_in_threadpool(audiences.delete, ctx.service, tenant_id, audience_id)
    if created:
        ctx.launcher.launch(tenant_id, job.id)
    return job_out(ctx, job)


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
    if jobs.should_start(job.status, created):  # new, or a due retry found instead
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
    found = audiences.jobs_of(ctx.service, tenant_id, audience_id, limit)
    return [job_out(ctx, j) for j in found]


@router.get("/audiences/{audience_id}/health", response_model=HealthOut)
def get_health(audience_id: uuid.UUID, ctx: Ctx, tenant_id: TenantId) -> HealthOut:
    return HealthOut(**audiences.health(ctx.service, tenant_id, audience_id))


@router.get("/sync-jobs/{job_id}", response_model=JobOut, tags=["jobs"])
def get_job(job_id: uuid.UUID, ctx: Ctx, tenant_id: TenantId) -> JobOut:
    return job_out(ctx, jobs.get(ctx.service, tenant_id, job_id))


@router.post("/sync-jobs/{job_id}/cancel", response_model=JobOut, tags=["jobs"])
def cancel(job_id: uuid.UUID, ctx: Ctx, tenant_id: TenantId) -> JobOut:
    """A pending job is cancelled now; a running one stops at its next checkpoint
    (`cancel_requested` is true until then). A job that already completed or failed: 409."""
    return job_out(ctx, jobs.cancel(ctx.service, tenant_id, job_id))


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
    report = jobs.diagnostics(
        ctx.service,
        tenant_id,
        job_id,
        reason=reason,
        field=field,
        offset=0 if csv_wanted else offset,
        limit=None if csv_wanted else limit,
    )
    if csv_wanted:
        sink = io.StringIO()
        jobs.write_csv(report.entries, sink)
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
