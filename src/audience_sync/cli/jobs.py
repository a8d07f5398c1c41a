"""Job commands: show one sync job, cancel one (the API's `/sync-jobs/{id}`)."""

from __future__ import annotations

from dataclasses import asdict
from typing import Annotated

from audience_sync.cli.common import (
    DEFAULT_TENANT_SLUG,
    IdArgument,
    JsonFlag,
    TenantOption,
    friendly_errors,
    jobs_app,
    migrated_context,
    out,
    print_json,
    service,
    tenant_id,
)
from audience_sync.cli.sync import print_job, print_progress
from audience_sync.services import jobs
from audience_sync.services.jobs import job_view

JobArgument = Annotated[str, IdArgument]


@jobs_app.command("show")
@friendly_errors
def jobs_show(
    job: JobArgument, tenant: TenantOption = DEFAULT_TENANT_SLUG, as_json: JsonFlag = False
) -> None:
    """A sync job's status, figures and error, as the API's `GET /sync-jobs/{id}`."""
    ctx = migrated_context()
    engine, tenant_of = service(ctx), tenant_id(ctx, tenant)
    found = jobs.get(engine, tenant_of, jobs.resolve(engine, tenant_of, job))
    if as_json:
        progress = jobs.progress_of(found, engine.clock())
        print_json({**job_view(found), "progress": asdict(progress) if progress else None})
        return
    print_job(found)
    print_progress(found, engine.clock())
    out.print(
        f"Audience {found.platform_audience_id}; triggered {found.triggered_by.value}, "
        f"created {found.created_at:%Y-%m-%d %H:%M} UTC, attempt {found.attempt}.",
        highlight=False,
    )


@jobs_app.command("cancel")
@friendly_errors
def jobs_cancel(
    job: JobArgument, tenant: TenantOption = DEFAULT_TENANT_SLUG, as_json: JsonFlag = False
) -> None:
    """Cancel a job: a pending one now, a running one at its next checkpoint. One that
    already completed or failed cannot be cancelled."""
    ctx = migrated_context()
    engine, tenant_of = service(ctx), tenant_id(ctx, tenant)
    found = jobs.cancel(engine, tenant_of, jobs.resolve(engine, tenant_of, job))
    if as_json:
        print_json(job_view(found))
        return
    if found.status.value == "cancelled":
        out.print(f"Job {found.id} cancelled.", highlight=False)
    else:
        out.print(
            f"Job {found.id} is {found.status.value}: it stops at its next checkpoint.",
            highlight=False,
        )
