"""Sync commands: platform connections, audiences, running a sync, the scheduler."""

from __future__ import annotations

import asyncio
import contextlib
import json
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Annotated, Any

import typer
from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

from audience_sync.cli.common import (
    DEFAULT_TENANT_SLUG,
    IdArgument,
    JsonFlag,
    TenantOption,
    app,
    audiences_app,
    connections_app,
    err,
    friendly_errors,
    migrated_context,
    out,
    platform_help,
    print_json,
    service,
    tenant_id,
)
from audience_sync.connectors.registry import platform_spec
from audience_sync.domain.data_use import data_use_settings
from audience_sync.domain.models import SyncOperation, SyncPlatform, SyncStatus, TriggeredBy
from audience_sync.domain.platforms import platform_key
from audience_sync.exceptions import ValidationError
from audience_sync.scheduler.tick import process_audience_sync_queue, run_scheduler
from audience_sync.services import audiences, connections, jobs, segments
from audience_sync.services.audiences import audience_view
from audience_sync.services.jobs import Job, Preview, Trigger, job_view
from audience_sync.sync.context import SyncService
from audience_sync.sync.runner import run_job

Secret = Annotated[str | None, typer.Option(help="Stored encrypted; never printed.")]


AudienceArgument = Annotated[str, IdArgument]


@connections_app.command("set")
@friendly_errors
def connections_set(
    platform: Annotated[
        SyncPlatform,
        typer.Argument(
            parser=platform_key, help=platform_help("The platform."), show_default=False
        ),
    ],
    ad_account: Annotated[str, typer.Option("--ad-account", help="Ad account / customer id.")],
    access_token: Annotated[
        str, typer.Option(envvar="AUDIENCE_SYNC_ACCESS_TOKEN", help="Stored encrypted.")
    ],
    refresh_token: Secret = None,
    client_id: Secret = None,
    client_secret: Secret = None,
    app_secret: Secret = None,
    developer_token: Secret = None,
    login_account: Annotated[
        str | None,
        typer.Option(
            "--login-account",
            "--login-customer-id",
            help='Google: the manager account the calls go through ("" to clear).',
        ),
    ] = None,
    accept_customer_match_terms: Annotated[
        bool | None,
        typer.Option(
            "--accept-customer-match-terms/--withdraw-customer-match-terms",
            help="Google: record that the account accepts the Customer Match terms "
            "(https://support.google.com/adspolicy/answer/6299717); required to upload.",
        ),
    ] = None,
    base_url: Annotated[
        str | None,
        typer.Option(
            help="API base URL, e.g. the sandbox's; needs AUDIENCE_SYNC_ALLOW_CONNECTION_BASE_URL"
            "=true. Default: the settings' URL."
        ),
    ] = None,
    consent_ad_user_data: Annotated[
        str | None,
        typer.Option(
            help="Google: members' ad user data consent unless they or the audience say"
            " (granted, denied, unspecified)."
        ),
    ] = None,
    consent_ad_personalization: Annotated[
        str | None,
        typer.Option(
            help="Google: members' ad personalization consent unless they or the"
            " audience say (granted, denied, unspecified)."
        ),
    ] = None,
    limited_data_use: Annotated[
        str | None,
        typer.Option(
            help="Meta: Limited Data Use unless the member or audience says"
            " (off, geolocate, california)."
        ),
    ] = None,
    tenant: TenantOption = DEFAULT_TENANT_SLUG,
) -> None:
    """Connect (or reconnect) an ad platform account; credentials are encrypted at rest."""
    ctx = migrated_context()
    given = {
        "access_token": access_token,
        "refresh_token": refresh_token,
        "client_id": client_id,
        "client_secret": client_secret,
        "app_secret": app_secret,
        "developer_token": developer_token,
    }
    credentials = {key: value for key, value in given.items() if value}
    settings = google_settings(platform, login_account, accept_customer_match_terms)
    settings.update(
        data_use_settings(
            consent_ad_user_data=consent_ad_user_data,
            consent_ad_personalization=consent_ad_personalization,
            limited_data_use=limited_data_use,
        )
    )
    connection = connections.put(
        service(ctx),
        tenant_id(ctx, tenant),
        platform,
        ad_account,
        credentials,
        base_url=base_url,
        settings=settings,
    )
    stored = dict(connection.settings or {})
    where = f" at {base_url}" if base_url else ""
    found = asyncio.run(connections.test(service(ctx), tenant_id(ctx, tenant), platform))
    said = connections.describe(found)
    line = f"{platform.value}: ad account {ad_account}{where}. {said}"
    (out if found.ok else err).print(line, highlight=False)
    terms = "customer_match_terms_accepted"  # Google's; asked of the platforms that have it
    if terms in platform_spec(platform).connection_settings and not stored.get(terms):
        err.print(
            "Uploads to Google need the Customer Match terms accepted "
            "(https://support.google.com/adspolicy/answer/6299717): once they are, run this "
            "command again with --accept-customer-match-terms.",
            highlight=False,
        )


def google_settings(
    platform: SyncPlatform, login_account: str | None, accept_terms: bool | None
) -> dict[str, Any]:
    """The connection settings the Google options change (None: an option not given)."""
    settings: dict[str, Any] = {}
    given = login_account is not None or accept_terms is not None
    if given and "login_account_id" not in platform_spec(platform).connection_settings:
        raise ValidationError(
            "--login-account and --accept-customer-match-terms are Google settings"
        )
    if login_account is not None:
        account = login_account.replace("-", "").strip()
        if account and not account.isdigit():
            raise ValidationError("--login-account is a Google Ads account id (digits)")
        settings["login_account_id"] = account or None
    if accept_terms is not None:
        settings["customer_match_terms_accepted"] = accept_terms or None
    return settings


@connections_app.command("list")
@friendly_errors
def connections_list(tenant: TenantOption = DEFAULT_TENANT_SLUG, as_json: JsonFlag = False) -> None:
    """Every connected platform (never a secret: a masked hint of each credential)."""
    ctx = migrated_context()
    found = connections.list_connections(service(ctx), tenant_id(ctx, tenant))
    if as_json:  # the API's `GET /connections/{platform}` answer, one per platform
        print_json([connections.connection_view(c) for c in found])
        return
    table = Table("Platform", "Ad account", "Status", "Token", "Base URL", "Settings")
    for c in found:
        settings = ", ".join(f"{k}={v}" for k, v in (c.settings or {}).items())
        state = connections.token_state(c)
        token = expiry_text(state.expires_in_days, state.token_expires_at)
        table.add_row(c.platform.value, c.ad_account_id, state.status, token, c.base_url, settings)
    out.print(table)


PlatformArgument = Annotated[
    SyncPlatform,
    typer.Argument(parser=platform_key, help=platform_help("The platform."), show_default=False),
]


@connections_app.command("test")
@friendly_errors
def connections_test(
    platform: PlatformArgument,
    tenant: TenantOption = DEFAULT_TENANT_SLUG,
    as_json: JsonFlag = False,
) -> None:
    """Try the stored credentials with one cheap read on the ad account; exit 1 if refused."""
    ctx = migrated_context()
    found = asyncio.run(connections.test(service(ctx), tenant_id(ctx, tenant), platform))
    if as_json:
        print_json({"ok": found.ok, "reason": found.reason.value, "message": found.message})
    else:
        (out if found.ok else err).print(found.message, highlight=False)
    if not found.ok:
        raise typer.Exit(1)


@connections_app.command("accounts")
@friendly_errors
def connections_accounts(
    platform: PlatformArgument,
    tenant: TenantOption = DEFAULT_TENANT_SLUG,
    as_json: JsonFlag = False,
) -> None:
    """The ad accounts the stored token reaches (set one with `connections set --ad-account`)."""
    ctx = migrated_context()
    found = asyncio.run(connections.ad_accounts(service(ctx), tenant_id(ctx, tenant), platform))
    if as_json:
        print_json([{"id": account.id, "name": account.name} for account in found])
        return
    table = Table("Ad account", "Name")
    for account in found:
        table.add_row(account.id, account.name or "")
    out.print(table)


def expiry_text(days: int | None, expires_at: datetime | None) -> str:
    """ "expires in N days" for a token nothing renews, "expired" once past; "" otherwise."""
    if days is None or expires_at is None:
        return ""
    if expires_at <= datetime.now(UTC):
        return "expired"
    return "expires within a day" if days == 0 else f"expires in {days} day{'s' * (days != 1)}"


@audiences_app.command("create")
@friendly_errors
def audiences_create(
    segment: Annotated[str, typer.Option(help="The CDP segment's name (or id).")],
    platform: Annotated[
        SyncPlatform, typer.Option(parser=platform_key, help=platform_help("The platform."))
    ],
    name: Annotated[str, typer.Option(help="The audience's name on the platform.")],
    ad_account: Annotated[str, typer.Option("--ad-account")],
    interval: Annotated[int | None, typer.Option(help="Hours: 1, 6, 12, 24 or 168.")] = None,
    auto_sync: Annotated[bool, typer.Option("--auto-sync/--no-auto-sync")] = True,
    description: Annotated[str | None, typer.Option()] = None,
    option: Annotated[
        list[str] | None, typer.Option(help="Platform option KEY=VALUE (repeatable).")
    ] = None,
    tenant: TenantOption = DEFAULT_TENANT_SLUG,
    as_json: JsonFlag = False,
) -> None:
    """Link a segment to a new platform audience and run its first (create) sync."""
    ctx = migrated_context()
    engine, tenant_of = service(ctx), tenant_id(ctx, tenant)
    audiences.interval(engine, interval)  # before the segment is looked up, as it always was
    new = audiences.NewAudience(
        segment_id=segments.resolve(engine, tenant_of, segment),
        platform=platform,
        name=name,
        ad_account_id=ad_account,
        description=description,
        auto_sync=auto_sync,
        interval_hours=interval,
        options=_options(option or []),
    )
    hint = f"run `audience-sync connections set {platform.value} --ad-account … --access-token …`"
    audience_id = audiences.create(engine, tenant_of, new, connect_hint=hint).id
    if not as_json:
        out.print(f"Audience {audience_id} created; running its first sync.", highlight=False)
    job = _run(engine, tenant_of, audience_id, Trigger(SyncOperation.CREATE), as_json)
    if as_json:
        print_json({"audience_id": str(audience_id), "job": job_view(job)})
    _exit_for(job)


def _options(pairs: list[str]) -> dict[str, Any]:
    options: dict[str, Any] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise ValidationError(f"--option takes KEY=VALUE, got {pair!r}.")
        options[key.strip()] = [v for v in value.split(",") if v] if "," in value else value
    return options


@audiences_app.command("list")
@friendly_errors
def audiences_list(
    include_deleted: Annotated[
        bool, typer.Option("--include-deleted", help="Also list deleted audiences.")
    ] = False,
    tenant: TenantOption = DEFAULT_TENANT_SLUG,
    as_json: JsonFlag = False,
) -> None:
    """Every audience with its last sync and the platform's figures (deleted ones on request)."""
    ctx = migrated_context()
    found = audiences.list_audiences(service(ctx), tenant_id(ctx, tenant), include_deleted)
    views = [audience_view(a) for a in found]
    if as_json:
        print_json(views)
        return
    table = Table("Id", "Name", "Platform", "Last sync", "Size", "Match rate", "Next sync")
    for v in views:
        rate = f"{v['match_rate']:.0%}" if v["match_rate"] is not None else "—"
        table.add_row(
            v["id"],
            v["platform_audience_name"],
            v["platform"],
            v["last_sync_status"] or "never",
            f"{v['platform_size']:,}" if v["platform_size"] is not None else "—",
            rate,
            (v["next_sync_at"] or "manual")[:16],
        )
    out.print(table)


@audiences_app.command("sync")
@friendly_errors
def audiences_sync(
    audience: AudienceArgument,
    operation: Annotated[SyncOperation, typer.Option()] = SyncOperation.UPDATE,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Plan only; send nothing.")] = False,
    force: Annotated[bool, typer.Option(help="Pass the guard rails.")] = False,
    tenant: TenantOption = DEFAULT_TENANT_SLUG,
    as_json: JsonFlag = False,
) -> None:
    """Run a sync now, to completion, and print the job."""
    ctx = migrated_context()
    engine, tenant_of = service(ctx), tenant_id(ctx, tenant)
    audience_id = audiences.resolve(engine, tenant_of, audience)
    trigger = Trigger(operation=operation, dry_run=dry_run, force=force)
    job = _run(engine, tenant_of, audience_id, trigger, as_json)
    if as_json:
        print_json(job_view(job))
    _exit_for(job)


@audiences_app.command("purge")
@friendly_errors
def audiences_purge(
    audience: AudienceArgument,
    tenant: TenantOption = DEFAULT_TENANT_SLUG,
    as_json: JsonFlag = False,
) -> None:
    """Remove a deleted audience with its jobs, snapshot and member state, for good."""
    ctx = migrated_context()
    engine, tenant_of = service(ctx), tenant_id(ctx, tenant)
    audience_id = audiences.resolve(engine, tenant_of, audience)
    audiences.purge(engine, tenant_of, audience_id)
    if as_json:
        print_json({"audience_id": str(audience_id), "purged": True})
    else:
        out.print(f"Audience {audience_id} purged.", highlight=False)


def confirmation_label(v: dict[str, Any]) -> str:
    """The platform's confirmation of a job, as the CLI shows it (empty when none is due)."""
    state = v.get("confirmation") or "none"
    if state == "none":
        return ""
    if state == "processing" and v.get("confirmation_next_at"):
        return f"processing (next check {v['confirmation_next_at'][:16].replace('T', ' ')})"
    return str(state)


def _run(
    engine: SyncService, tenant_of: int, audience_id: uuid.UUID, trigger: Trigger, quiet: bool
) -> Job:
    """Queue the job (flags checked first; or find the one already queued), run it here, show
    live counters on stderr."""
    manual = Trigger(trigger.operation, TriggeredBy.MANUAL, None, trigger.dry_run, trigger.force)
    job, created = jobs.request_sync(engine, tenant_of, audience_id, manual)
    if not jobs.should_start(job.status, created):
        err.print(f"A {job.operation.value} job is already {job.status.value} for this audience.")
        return job
    if not created:  # a retry waiting for its delay: the trigger brought it forward to now
        err.print(f"Running the {job.operation.value} job already queued for this audience.")

    return run_in_foreground(engine, tenant_of, job.id, quiet)


def run_in_foreground(engine: SyncService, tenant_of: int, job_id: uuid.UUID, quiet: bool) -> Job:
    """Run a queued job here to its end (a failure to run it is the command's), with live
    counters on stderr; the job as it ended, printed unless `quiet`."""

    async def go() -> None:
        with _live(engine, tenant_of, job_id, quiet):
            await run_job(engine, tenant_of, job_id)

    asyncio.run(go())
    final = jobs.get(engine, tenant_of, job_id)
    if not quiet:
        print_job(final)
    return final


@contextlib.contextmanager
def _live(engine: SyncService, tenant_of: int, job_id: uuid.UUID, quiet: bool) -> Iterator[None]:
    """A spinner with the job's confirmed counters, refreshed from the database."""
    progress = Progress(
        SpinnerColumn(),
        TextColumn("{task.description}"),
        TimeElapsedColumn(),
        console=err,
        transient=True,
        disable=quiet or not err.is_terminal,
    )

    async def poll(task: Any) -> None:
        while True:
            j = await asyncio.to_thread(jobs.get, engine, tenant_of, job_id)
            text = (
                f"Syncing ({progress_label(j, engine.clock())}): {j.profiles_sent:,} sent, "
                f"{j.profiles_added:,} added, {j.profiles_removed:,} removed"
            )
            progress.update(task, description=text)
            await asyncio.sleep(0.5)

    with progress:
        task = progress.add_task("Syncing", total=None)
        poller = asyncio.get_event_loop().create_task(poll(task))
        try:
            yield
        finally:
            poller.cancel()


def print_job(job: Job) -> None:
    v = job_view(job)
    rate = f", match rate {v['match_rate']:.0%}" if v["match_rate"] is not None else ""
    took = f" in {v['duration_ms']:,} ms" if v["duration_ms"] is not None else ""
    refreshed = v.get("profiles_refreshed") or 0
    fresh = f", {refreshed:,} refreshed" if refreshed else ""
    out.print(
        f"Job {v['id']}: {v['operation']}{' (dry run)' if v['dry_run'] else ''} {v['status']} — "
        f"{v['profiles_sent']:,} sent, {v['profiles_added']:,} added, "
        f"{v['profiles_removed']:,} removed, {v['profiles_failed']:,} failed{fresh}{rate}{took}.",
        highlight=False,
    )
    if confirmation_label(v):
        out.print(f"Platform confirmation: {confirmation_label(v)}", highlight=False)
    preview = jobs.preview_of(job)
    if job.dry_run and preview is not None:
        print_preview(job, preview)
    if job.details.get("dropped"):
        out.print(
            f"Dropped values by reason: {json.dumps(job.details['dropped'])} (which profiles: "
            f"audience-sync audiences diagnostics {v['id']})",
            highlight=False,
        )
    if job.error_message:
        err.print(f"[red]{job.error_message}[/red]", highlight=False)


def print_preview(job: Job, preview: Preview) -> None:
    """A dry run's plan, and the guard rails a sync would trip (it would be refused unless
    forced)."""
    out.print(f"Plan: {json.dumps(job.details['plan'])}", highlight=False)
    for warning in preview.warnings:
        out.print(
            f"[yellow]Warning ({warning['code']}): {warning['message']}[/yellow]", highlight=False
        )


def print_progress(job: Job, now: datetime) -> None:
    """A live job's progress: phase, done of total, rate and time left."""
    if jobs.is_live(job) and jobs.progress_of(job, now) is not None:
        out.print(f"Progress: {progress_label(job, now)}", highlight=False)


def progress_label(job: Job, now: datetime) -> str:
    """`uploading: 300 of 1,000 records, 3/s, about 234 s left` (`services.jobs.progress_of`);
    `starting` before the job first reports."""
    progress = jobs.progress_of(job, now)
    if progress is None:
        return "starting"
    unit = f" {progress.unit}" if progress.unit else ""
    total = f" of {progress.total:,}" if progress.total is not None else ""
    counted = f": {progress.done:,}{total}{unit}" if progress.unit else ""
    rate = f", {progress.rate_per_second:,.0f}/s" if progress.rate_per_second else ""
    eta = f", about {progress.eta_seconds:,} s left" if progress.eta_seconds is not None else ""
    return f"{progress.phase}{counted}{rate}{eta}"


def _exit_for(job: Job) -> None:
    if job.status is not SyncStatus.COMPLETED:
        raise typer.Exit(1)


@app.command("scheduler")
@friendly_errors
def scheduler(
    once: Annotated[bool, typer.Option("--once", help="Run one tick and exit.")] = False,
) -> None:
    """Run the scheduler: due audiences and due retries, every tick (15 minutes by default)."""
    ctx = migrated_context()
    engine = service(ctx)
    if once:
        report = asyncio.run(process_audience_sync_queue(engine))
        out.print(
            f"Tick: {report.queued} queued, {report.ran} ran {report.statuses}, "
            f"{len(report.reaped)} stale jobs reaped.",
            highlight=False,
        )
        return
    out.print(f"Scheduler running every {ctx.settings.scheduler_tick_seconds} s; Ctrl-C stops.")
    asyncio.run(run_scheduler(engine, asyncio.Event()))
