"""Audience commands beside `audiences create/list/sync` (in `cli.sync`): pause, resume, change
the interval, delete — the API's `PATCH` and `DELETE /audiences/{id}`."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from audience_sync.cli.common import (
    DEFAULT_TENANT_SLUG,
    IdArgument,
    JsonFlag,
    TenantOption,
    audiences_app,
    err,
    friendly_errors,
    migrated_context,
    out,
    print_json,
    service,
    tenant_id,
)
from audience_sync.cli.sync import run_in_foreground
from audience_sync.domain.models import TriggeredBy
from audience_sync.services import audiences
from audience_sync.services.audiences import audience_view

AudienceArgument = Annotated[str, IdArgument]


def _change(tenant: str, audience: str, changes: dict[str, Any], as_json: bool, done: str) -> None:
    ctx = migrated_context()
    engine, tenant_of = service(ctx), tenant_id(ctx, tenant)
    audience_id = audiences.resolve(engine, tenant_of, audience)
    changed = audiences.update(engine, tenant_of, audience_id, changes)
    if as_json:
        print_json(audience_view(changed))
        return
    when = f"{changed.next_sync_at:%Y-%m-%d %H:%M} UTC" if changed.next_sync_at else "manual only"
    out.print(
        f"Audience {changed.platform_audience_name!r} {done}; next sync: {when}.",
        highlight=False,
        markup=False,
    )


@audiences_app.command("pause")
@friendly_errors
def audiences_pause(
    audience: AudienceArgument,
    tenant: TenantOption = DEFAULT_TENANT_SLUG,
    as_json: JsonFlag = False,
) -> None:
    """Stop scheduled syncs (the audience stays; `audiences sync` still runs one by hand)."""
    _change(tenant, audience, {"auto_sync": False}, as_json, "paused")


@audiences_app.command("resume")
@friendly_errors
def audiences_resume(
    audience: AudienceArgument,
    tenant: TenantOption = DEFAULT_TENANT_SLUG,
    as_json: JsonFlag = False,
) -> None:
    """Sync on schedule again: the next sync one interval after the last one (or now)."""
    _change(tenant, audience, {"auto_sync": True}, as_json, "resumed")


@audiences_app.command("interval")
@friendly_errors
def audiences_interval(
    audience: AudienceArgument,
    hours: Annotated[int, typer.Argument(help="1, 6, 12, 24 or 168.")],
    tenant: TenantOption = DEFAULT_TENANT_SLUG,
    as_json: JsonFlag = False,
) -> None:
    """Change how often the audience syncs; the next sync is one interval after the last."""
    _change(tenant, audience, {"sync_interval_hours": hours}, as_json, f"syncs every {hours} h")


@audiences_app.command("delete")
@friendly_errors
def audiences_delete(
    audience: AudienceArgument,
    wait: Annotated[
        bool,
        typer.Option(
            "--wait/--no-wait",
            help="Run the delete job here to its end [default], or only queue it for the "
            "scheduler or `serve`'s worker.",
        ),
    ] = True,
    tenant: TenantOption = DEFAULT_TENANT_SLUG,
    as_json: JsonFlag = False,
) -> None:
    """Delete the audience on the platform and deactivate it here (its history is kept; purge
    it afterwards with `audiences purge`). Refused while another sync of it is pending or
    running."""
    ctx = migrated_context()
    engine, tenant_of = service(ctx), tenant_id(ctx, tenant)
    audience_id = audiences.resolve(engine, tenant_of, audience)
    job, created = audiences.delete(engine, tenant_of, audience_id, TriggeredBy.MANUAL)
    if not wait:
        if as_json:
            print_json({"job_id": str(job.id), "queued": created, "status": job.status.value})
        else:
            what = "queued" if created else "already queued"
            out.print(f"Delete job {job.id} {what}.", highlight=False)
        return
    if not created:
        err.print("Running the delete job already queued for this audience.")
    finished = run_in_foreground(engine, tenant_of, job.id, as_json)
    if as_json:
        from audience_sync.services.jobs import job_view

        print_json(job_view(finished))
    if finished.status.value != "completed":
        raise typer.Exit(1)
