"""The `audience-sync` command: thin wrappers that parse input, call a service, print results."""

from __future__ import annotations

import csv
import functools
import json
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, ParamSpec, TypeVar

import typer
from cryptography.fernet import Fernet
from rich.console import Console
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TransferSpeedColumn,
)
from rich.table import Table
from sqlalchemy import Engine
from sqlalchemy.engine import make_url
from sqlalchemy.exc import OperationalError, ProgrammingError
from sqlalchemy.orm import Session, sessionmaker

from audience_sync.config import Settings, load_settings, secret_keys
from audience_sync.exceptions import AudienceSyncError, ConfigurationError
from audience_sync.log import configure_logging
from audience_sync.sources import demo as demo_data
from audience_sync.sources.importer import ImportReport, import_profiles
from audience_sync.sources.rows import Rejection
from audience_sync.store import db
from audience_sync.store.repositories import (
    DEFAULT_TENANT_SLUG,
    ApiKeyRepository,
    SegmentRepository,
    TenantRepository,
)

app = typer.Typer(
    help="Audience Sync: push CDP segments to ad platforms as custom audiences.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
db_app = typer.Typer(help="Database schema.", no_args_is_help=True)
import_app = typer.Typer(help="Import data into the built-in CDP.", no_args_is_help=True)
segments_app = typer.Typer(help="CDP segments.", no_args_is_help=True)
tenants_app = typer.Typer(help="Tenants and their API keys.", no_args_is_help=True)
app.add_typer(db_app, name="db")
app.add_typer(import_app, name="import")
app.add_typer(segments_app, name="segments")
app.add_typer(tenants_app, name="tenants")

# Piped output gets wide lines rather than an 80-column wrap, so ids stay whole and grep-able.
out = Console(width=None if sys.stdout.isatty() else 160, soft_wrap=True)
err = Console(stderr=True, soft_wrap=True)

TenantOption = Annotated[
    str, typer.Option("--tenant", help="Tenant slug.", envvar="AUDIENCE_SYNC_TENANT")
]
JsonFlag = Annotated[bool, typer.Option("--json", help="Print JSON only.")]

P = ParamSpec("P")
R = TypeVar("R")


@dataclass
class Context:
    settings: Settings
    engine: Engine
    factory: sessionmaker[Session]


@functools.cache
def context() -> Context:
    settings = load_settings()
    configure_logging(settings.log_level, json=settings.environment == "production")
    secret_keys(settings)  # validated now; in development, generated once with a warning
    engine = db.make_engine(settings.effective_database_url)
    return Context(settings, engine, db.session_factory(engine))


def migrated_context() -> Context:
    ctx = context()
    if not db.is_migrated(ctx.engine):
        raise ConfigurationError(
            "The database has no schema yet: run `audience-sync db upgrade` first."
        )
    return ctx


def friendly_errors(command: Callable[P, R]) -> Callable[P, R]:
    """Expected failures print one clear line and exit non-zero; never a traceback."""

    @functools.wraps(command)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return command(*args, **kwargs)
        except AudienceSyncError as exc:
            err.print(f"[red]Error:[/red] {exc}", highlight=False)
        except OSError as exc:  # unreadable file, full disk, permission denied
            err.print(f"[red]Error:[/red] {exc.strerror or exc}: {exc.filename}", highlight=False)
        except KeyboardInterrupt:
            err.print(
                "Interrupted. Work already committed is kept; run the command again to finish."
            )
            raise typer.Exit(130) from None
        except (OperationalError, ProgrammingError) as exc:
            url = make_url(context().settings.effective_database_url)
            err.print(
                f"[red]Database error[/red] at {url.render_as_string(hide_password=True)}: "
                f"{exc.orig or exc}".splitlines()[0],
                highlight=False,
            )
        raise typer.Exit(2)

    return wrapper


@db_app.command("upgrade")
@friendly_errors
def db_upgrade(revision: str = "head") -> None:
    """Create or migrate the schema (safe to run any number of times)."""
    ctx = context()
    db.upgrade(ctx.engine, revision)
    url = make_url(ctx.settings.effective_database_url).render_as_string(hide_password=True)
    out.print(f"Database at {url} is at revision {revision}.", highlight=False)


@import_app.command("profiles")
@friendly_errors
def import_profiles_command(
    file: Annotated[Path, typer.Argument(help="CSV or JSON Lines file (.csv, .jsonl, .gz).")],
    segment: Annotated[
        str | None, typer.Option(help="Put the imported profiles in this segment.")
    ] = None,
    tenant: TenantOption = DEFAULT_TENANT_SLUG,
    fmt: Annotated[str | None, typer.Option("--format", help="csv or jsonl.")] = None,
    rejects: Annotated[
        Path | None, typer.Option(help="Write every rejected line number and reason to this CSV.")
    ] = None,
) -> None:
    """Upsert profiles by profile_id; unreadable rows are reported and skipped."""
    report = run_import(migrated_context(), file, tenant, segment, fmt, rejects)
    if not report.ok:
        raise typer.Exit(1)


def run_import(
    ctx: Context,
    file: Path,
    tenant: str,
    segment: str | None,
    fmt: str | None,
    rejects_path: Path | None = None,
) -> ImportReport:
    size = file.stat().st_size if file.is_file() and file.suffix != ".gz" else None
    with _progress() as progress, _reject_writer(rejects_path) as on_reject:
        task = progress.add_task(f"Importing {file.name}", total=size)
        report = import_profiles(
            ctx.factory,
            file,
            tenant=tenant,
            segment=segment,
            fmt=fmt,
            on_bytes=lambda n: progress.advance(task, n),
            on_reject=on_reject,
        )
    _print_report(file, report)
    return report


def _progress() -> Progress:
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        DownloadColumn(),
        TransferSpeedColumn(),
        TimeElapsedColumn(),
        console=err,
        transient=True,
        disable=not err.is_terminal,
    )


class _reject_writer:  # noqa: N801 - used as a context manager
    """Streams every rejection to a CSV file when asked, so none is lost beyond the screen."""

    def __init__(self, path: Path | None) -> None:
        self.path = path

    def __enter__(self) -> Callable[[Rejection], None] | None:
        if self.path is None:
            return None
        self.handle = self.path.open("w", newline="", encoding="utf-8")
        writer = csv.writer(self.handle)
        writer.writerow(["line", "reason"])
        return lambda rejection: writer.writerow([rejection.line, rejection.reason])

    def __exit__(self, *exc: object) -> None:
        if self.path is not None:
            self.handle.close()


def _print_report(file: Path, report: ImportReport) -> None:
    c = report.counts
    target = f" into segment {report.segment!r}" if report.segment else ""
    out.print(
        f"{file.name}: {report.imported:,} rows imported{target} — {c.created:,} new, "
        f"{c.updated:,} updated, {c.unchanged:,} unchanged; {report.rejected:,} rejected.",
        highlight=False,
    )
    shown = report.rejections[:20]
    for rejection in shown:
        err.print(f"  line {rejection.line}: {rejection.reason}", highlight=False)
    if report.rejected > len(shown):
        err.print(
            f"  … and {report.rejected - len(shown):,} more (use --rejects FILE for all).",
            highlight=False,
        )


@segments_app.command("list")
@friendly_errors
def segments_list(tenant: TenantOption = DEFAULT_TENANT_SLUG, as_json: JsonFlag = False) -> None:
    """Every segment with its member count."""
    ctx = migrated_context()
    with db.transaction(ctx.factory) as session:
        tenant_id = TenantRepository(session).get(tenant).id
        summaries = SegmentRepository(session, tenant_id).summaries()
    if as_json:
        rows = [
            {
                "id": str(s.id),
                "name": s.name,
                "member_count": s.member_count,
                "is_active": s.is_active,
            }
            for s in summaries
        ]
        sys.stdout.write(json.dumps(rows) + "\n")
        return
    table = Table("Segment", "Members", "Active", "Id", title=f"Segments of tenant {tenant!r}")
    for s in summaries:
        table.add_row(s.name, f"{s.member_count:,}", "yes" if s.is_active else "no", str(s.id))
    out.print(table)


@tenants_app.command("create")
@friendly_errors
def tenants_create(
    name: str,
    region: Annotated[str, typer.Option(help="Default phone region (ISO alpha-2).")] = "US",
    as_json: JsonFlag = False,
) -> None:
    """Create a tenant and print its API key (shown once, stored only as a hash)."""
    ctx = migrated_context()
    with db.transaction(ctx.factory) as session:
        tenant = TenantRepository(session).create(name, name, region)
        key = ApiKeyRepository(session).issue(tenant.id)
        tenant_id = tenant.id
    if as_json:
        sys.stdout.write(json.dumps({"tenant_id": tenant_id, "api_key": key}) + "\n")
        return
    out.print(f"Tenant {name!r} created (id {tenant_id}). API key (shown once, keep it safe):")
    out.print(key, highlight=False)


@tenants_app.command("list")
@friendly_errors
def tenants_list() -> None:
    """Every tenant."""
    ctx = migrated_context()
    with db.transaction(ctx.factory) as session:
        rows = [(t.id, t.slug, t.default_region) for t in TenantRepository(session).list()]
    table = Table("Id", "Slug", "Default region")
    for row in rows:
        table.add_row(*map(str, row))
    out.print(table)


@app.command("demo")
@friendly_errors
def demo(
    directory: Annotated[Path, typer.Option("--dir", help="Where to write the demo files.")] = Path(
        "var/demo"
    ),
    tenant: TenantOption = DEFAULT_TENANT_SLUG,
) -> None:
    """Migrate, generate the demo data set, import it, and list the segments."""
    ctx = context()
    db.upgrade(ctx.engine)
    files = demo_data.write_demo_files(directory)
    out.print(f"Demo data written to {directory}/ (seed {demo_data.DEMO_SEED}).", highlight=False)
    run_import(ctx, files.profiles, tenant, None, None)
    for name, path in files.segments.items():
        run_import(ctx, path, tenant, name, None)
    segments_list(tenant=tenant, as_json=False)


@app.command("generate-profiles")
@friendly_errors
def generate_profiles(
    file: Annotated[Path, typer.Argument(help="CSV file to write.")],
    count: Annotated[int, typer.Option(min=1, help="How many profiles.")] = 100_000,
    seed: Annotated[int, typer.Option(help="Random seed (same seed, same file).")] = (
        demo_data.DEMO_SEED
    ),
) -> None:
    """Write messy, realistic demo profiles to a CSV file (streamed; any size)."""
    demo_data.write_profiles_csv(file, demo_data.generate_rows(count, seed))
    out.print(f"Wrote {count:,} profiles to {file}.", highlight=False)


@app.command("sandbox")
@friendly_errors
def sandbox(
    host: Annotated[str, typer.Option(help="Interface to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8600,
) -> None:
    """Run the emulators of the four platform APIs (see docs/sandbox.md)."""
    from audience_sync.sandbox import serve

    serve(host=host, port=port)


@app.command("secret-key")
def secret_key() -> None:
    """Print a new key for AUDIENCE_SYNC_SECRET_KEY."""
    sys.stdout.write(Fernet.generate_key().decode() + "\n")
