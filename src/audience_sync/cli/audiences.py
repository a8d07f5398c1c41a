"""Audience commands beside `audiences create/list/sync/purge` (in `cli.sync`): pause, resume,
change the interval, delete (the API's `PATCH` and `DELETE /audiences/{id}`), and read an
audience's jobs and a job's diagnostics."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table

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
from audience_sync.cli.sync import confirmation_label, run_in_foreground
from audience_sync.domain.models import TriggeredBy
from audience_sync.services import audiences, jobs
from audience_sync.services.audiences import audience_view
from audience_sync.services.jobs import Report, job_view

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
        print_json(job_view(finished))
    if finished.status.value != "completed":
        raise typer.Exit(1)


@audiences_app.command("jobs")
@friendly_errors
def audiences_jobs(
    audience: AudienceArgument,
    tenant: TenantOption = DEFAULT_TENANT_SLUG,
    as_json: JsonFlag = False,
) -> None:
    """The audience's sync jobs, newest first."""
    ctx = migrated_context()
    engine, tenant_of = service(ctx), tenant_id(ctx, tenant)
    audience_id = audiences.resolve(engine, tenant_of, audience)
    views = [job_view(j) for j in audiences.jobs_of(engine, tenant_of, audience_id)]
    if as_json:
        print_json(views)
        return
    table = Table(
        "Job",
        "Operation",
        "Status",
        "Sent",
        "Added",
        "Removed",
        "Failed",
        "Match",
        "ms",
        "Platform",
    )
    for v in views:
        rate = f"{v['match_rate']:.0%}" if v["match_rate"] is not None else "—"
        table.add_row(
            v["id"][:8],
            v["operation"] + (" (dry run)" if v["dry_run"] else ""),
            v["status"],
            *(f"{v[k]:,}" for k in ("profiles_sent", "profiles_added", "profiles_removed")),
            f"{v['profiles_failed']:,}",
            rate,
            str(v["duration_ms"] or ""),
            confirmation_label(v),
        )
    out.print(table)


@audiences_app.command("diagnostics")
@friendly_errors
def audiences_diagnostics(
    job: Annotated[str, IdArgument],
    reason: Annotated[
        str | None, typer.Option(help="Only this reason (invalid_email, refused, ...).")
    ] = None,
    field: Annotated[str | None, typer.Option(help="Only this field (email, phone, ...).")] = None,
    csv_file: Annotated[
        Path | None,
        typer.Option("--csv", help="Write every matching entry to this CSV file (0600)."),
    ] = None,
    limit: Annotated[int, typer.Option(min=1, help="Entries shown in the table.")] = 50,
    tenant: TenantOption = DEFAULT_TENANT_SLUG,
    as_json: JsonFlag = False,
) -> None:
    """Which profiles' identifier values a sync job dropped or the platform refused: the field,
    the reason and the value masked (never the raw value); with the job's exact counts."""
    ctx = migrated_context()
    whole = csv_file is not None or as_json
    engine, tenant_of = service(ctx), tenant_id(ctx, tenant)
    job_id = jobs.resolve(engine, tenant_of, job)
    report = jobs.diagnostics(
        engine, tenant_of, job_id, reason=reason, field=field, limit=None if whole else limit
    )
    if csv_file is not None:
        jobs.write_csv_file(report.entries, csv_file)
        out.print(f"{len(report.entries):,} entries written to {csv_file}.", highlight=False)
        return
    if as_json:
        print_json(
            {
                "job_id": str(report.job_id),
                "counts": report.counts,
                "truncated": report.truncated,
                "max_entries": report.max_entries,
                "items": [dataclasses.asdict(e) for e in report.entries],
            }
        )
        return
    _print_diagnostics(report)


def _print_diagnostics(report: Report) -> None:
    counts = Table("Field", "Reason", "Count")
    for count in report.counts:
        cells = [count["field"] or "—", count["reason"], f"{count['count']:,}"]
        counts.add_row(*(escape(str(c)) for c in cells))
    out.print(counts)
    if report.truncated:
        out.print(
            f"Only the first {report.max_entries:,} values are listed; the counts are exact.",
            highlight=False,
        )
    entries = Table("Profile", "Field", "Reason", "Masked value")
    for entry in report.entries:
        # Escaped: a profile id or a masked value (`[***]`) may read as rich markup.
        cells = [entry.profile_id or "(deleted)", entry.field or "—", entry.reason]
        entries.add_row(*(escape(c) for c in [*cells, entry.masked_value or ""]))
    out.print(entries)
    if report.matching > len(report.entries):
        out.print(
            f"{len(report.entries):,} of {report.matching:,} entries shown; --csv FILE writes "
            "them all.",
            highlight=False,
        )
