"""CDP commands: the schema, importing profiles, segments, tenants, demo data, the sandbox."""

from __future__ import annotations

import json
import re
import sys
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Annotated

import typer
from cryptography.fernet import Fernet
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TransferSpeedColumn,
)
from rich.table import Table
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session

from audience_sync.cli.common import (
    DEFAULT_TENANT_SLUG,
    Context,
    JsonFlag,
    TenantOption,
    app,
    context,
    db_app,
    err,
    friendly_errors,
    import_app,
    migrated_context,
    out,
    segments_app,
    tenants_app,
)
from audience_sync.config import FeatureFlag, Settings
from audience_sync.domain.models import IdentifierType, SyncPlatform
from audience_sync.exceptions import NotFoundError, ValidationError
from audience_sync.export.cells import safe_row, safe_writer
from audience_sync.export.service import file_name
from audience_sync.export.writer import ExportSpec, write_export
from audience_sync.sources import demo as demo_data
from audience_sync.sources.importer import ImportReport, import_profiles
from audience_sync.sources.rows import Rejection
from audience_sync.store import db
from audience_sync.store.repositories import (
    ApiKeyRepository,
    FeatureFlagRepository,
    SegmentRepository,
    TenantRepository,
)
from audience_sync.store.tables import Segment


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
    """Streams every rejection to a CSV file when asked, so none is lost beyond the screen;
    formula-safe like every CSV this product writes (`export.cells`)."""

    def __init__(self, path: Path | None) -> None:
        self.path = path

    def __enter__(self) -> Callable[[Rejection], None] | None:
        if self.path is None:
            return None
        self.handle = self.path.open("w", newline="", encoding="utf-8")
        writer = safe_writer(self.handle)
        writer.writerow(["line", "reason"])
        return lambda rejection: writer.writerow(safe_row([rejection.line, rejection.reason]))

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
        # markup=False: a reason names a column of the file, which may look like rich markup.
        err.print(f"  line {rejection.line}: {rejection.reason}", highlight=False, markup=False)
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


@segments_app.command("export")
@friendly_errors
def segments_export(
    segment: Annotated[str, typer.Argument(help="The segment's name or id.")],
    directory: Annotated[
        Path | None,
        typer.Option(
            "--dir", help="Where to write the file [default: AUDIENCE_SYNC_VAR_DIR/exports]."
        ),
    ] = None,
    fmt: Annotated[str, typer.Option("--format", help="csv or json.")] = "csv",
    identifier_types: Annotated[
        str, typer.Option("--identifier-types", help="Comma-separated identifier types.")
    ] = "email,phone",
    hashed: Annotated[
        bool, typer.Option("--hash/--no-hash", help="Hash identifiers (the spec's default).")
    ] = True,
    platform: Annotated[
        SyncPlatform | None,
        typer.Option(help="Hash as this platform's upload would; else the neutral normalization."),
    ] = None,
    traits: Annotated[bool, typer.Option("--traits/--no-traits")] = True,
    events: Annotated[bool, typer.Option("--events/--no-events")] = False,
    tenant: TenantOption = DEFAULT_TENANT_SLUG,
    as_json: JsonFlag = False,
) -> None:
    """Write a segment's members to <dir>/<segment>.<normalization>.<format>."""
    if fmt not in ("csv", "json"):
        raise typer.BadParameter("csv or json", param_hint="--format")
    spec = ExportSpec(
        format="csv" if fmt == "csv" else "json",
        identifier_types=_identifier_types(identifier_types),
        hash_identifiers=hashed,
        platform=platform,
        include_traits=traits,
        include_events=events,
    )
    ctx = migrated_context()
    with db.transaction(ctx.factory) as session:
        tenant_id = TenantRepository(session).get(tenant).id
        _require_export_flag(session, tenant_id, ctx.settings)
        found = _segment(SegmentRepository(session, tenant_id), segment)
        segment_id, name = found.id, found.name
        region = TenantRepository(session).region_of(tenant_id)
    folder = directory or ctx.settings.var_dir / "exports"
    path = folder / file_name(_slug(name), spec)
    written = write_export(ctx.engine, tenant_id, segment_id, spec, path, region)
    if as_json:
        made = {
            "path": str(path),
            "normalization": spec.normalization,
            "profile_count": written.profile_count,
            "file_size_bytes": written.file_size_bytes,
        }
        sys.stdout.write(json.dumps(made) + "\n")
        return
    out.print(
        f"Exported {name!r}: {written.profile_count:,} profiles, {written.file_size_bytes:,} "
        f"bytes, identifiers normalized as {spec.normalization!r}, in {path}.",
        highlight=False,
    )


def _require_export_flag(session: Session, tenant_id: int, settings: Settings) -> None:
    """The API's rule here too: `audience_export` off (by the operator, or the tenant under
    an operator's default) means no export."""
    flags = FeatureFlagRepository(session, tenant_id).effective(settings.feature_flags)
    if flags[FeatureFlag.AUDIENCE_EXPORT]:
        return
    who = (
        "the operator (AUDIENCE_SYNC_FEATURE_FLAGS__AUDIENCE_EXPORT=false)"
        if FeatureFlag.AUDIENCE_EXPORT in settings.feature_flags.operator_off()
        else "this tenant's override"
    )
    raise ValidationError(f"Feature flag 'audience_export' is turned off by {who}.")


def _identifier_types(text: str) -> tuple[IdentifierType, ...]:
    try:
        chosen = tuple(dict.fromkeys(IdentifierType(t.strip()) for t in text.split(",")))
    except ValueError:
        known = ", ".join(t.value for t in IdentifierType)
        raise typer.BadParameter(
            f"one or more of {known}", param_hint="--identifier-types"
        ) from None
    return chosen


def _segment(segments: SegmentRepository, name_or_id: str) -> Segment:
    found = segments.by_name(name_or_id)
    if found is not None:
        return found
    try:
        return segments.get(uuid.UUID(name_or_id))
    except ValueError:
        raise NotFoundError(f"No segment named {name_or_id!r}.") from None


def _slug(name: str) -> str:
    return re.sub(r"[^a-z0-9]+", "_", name.lower()).strip("_") or "segment"


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
    sync: Annotated[
        bool, typer.Option("--sync/--no-sync", help="Also sync to the in-process sandbox.")
    ] = True,
) -> None:
    """Migrate, import the demo data, sync it to all four platforms' sandboxes, list segments."""
    ctx = context()
    db.upgrade(ctx.engine)
    files = demo_data.write_demo_files(directory)
    out.print(f"Demo data written to {directory}/ (seed {demo_data.DEMO_SEED}).", highlight=False)
    run_import(ctx, files.profiles, tenant, None, None)
    for name, path in files.segments.items():
        run_import(ctx, path, tenant, name, None)
    ok = True
    if sync:
        from audience_sync.cli.story import tell_story

        ok = tell_story(ctx, tenant, directory)
    segments_list(tenant=tenant, as_json=False)
    if not ok:
        raise typer.Exit(1)


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
