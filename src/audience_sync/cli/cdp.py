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
    platform_help,
    segments_app,
    tenants_app,
)
from audience_sync.config import FeatureFlag, Settings
from audience_sync.domain.models import IdentifierType, SyncPlatform
from audience_sync.domain.platforms import platform_key
from audience_sync.exceptions import NotFoundError, ValidationError
from audience_sync.export.cells import safe_row, safe_writer
from audience_sync.export.service import file_name
from audience_sync.export.writer import ExportSpec, write_export
from audience_sync.sources import demo as demo_data
from audience_sync.sources.importer import ImportReport, import_profiles
from audience_sync.sources.rows import Rejection
from audience_sync.sources.tabular import Description, ReadOptions, describe
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
    file: Annotated[
        Path,
        typer.Argument(help="CSV, JSON Lines or Parquet file (.csv, .tsv, .jsonl, .parquet, .gz)."),
    ],
    segment: Annotated[
        str | None, typer.Option(help="Put the imported profiles in this segment.")
    ] = None,
    tenant: TenantOption = DEFAULT_TENANT_SLUG,
    fmt: Annotated[
        str | None,
        typer.Option("--format", help="csv, jsonl or parquet [default: from the extension]."),
    ] = None,
    delimiter: Annotated[
        str | None,
        typer.Option(help="CSV delimiter: , ; | or tab [default: detected from the header]."),
    ] = None,
    encoding: Annotated[
        str | None,
        typer.Option(help="Text encoding, e.g. cp1252 [default: UTF-8, or UTF-16 by its BOM]."),
    ] = None,
    mapping: Annotated[
        list[str] | None,
        typer.Option(
            "--map",
            help="Read one of our columns from a column of the file: --map email=E-Mail "
            "(repeatable).",
        ),
    ] = None,
    rejects: Annotated[
        Path | None, typer.Option(help="Write every rejected line span and reason to this CSV.")
    ] = None,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print the summary as one JSON object only.")
    ] = False,
) -> None:
    """Upsert profiles by profile_id; unreadable rows are reported and skipped.

    Exit status: 0 when every row was imported, 1 when some were rejected, 2 when the file
    could not be read at all."""
    options = ReadOptions(fmt, delimiter, encoding, _mapping(mapping or []))
    report = run_import(migrated_context(), file, tenant, segment, options, rejects, as_json)
    if not report.ok:
        raise typer.Exit(1)


def _mapping(pairs: list[str]) -> dict[str, str]:
    """`--map ours=theirs` pairs → {ours: theirs}."""
    mapping: dict[str, str] = {}
    for pair in pairs:
        ours, sep, theirs = pair.partition("=")
        if not sep or not ours.strip() or not theirs.strip():
            raise typer.BadParameter(
                f"expected OUR_COLUMN=FILE_COLUMN, e.g. email=E-Mail (got {pair!r})",
                param_hint="--map",
            )
        mapping[ours.strip().lower()] = theirs.strip()
    return mapping


def run_import(
    ctx: Context,
    file: Path,
    tenant: str,
    segment: str | None,
    options: ReadOptions | None = None,
    rejects_path: Path | None = None,
    as_json: bool = False,
) -> ImportReport:
    options = options or ReadOptions()
    read = describe(file, options)  # checks the header first: a bad file stops here
    size = file.stat().st_size if file.suffix != ".gz" else None
    with _progress(quiet=as_json) as progress, _reject_writer(rejects_path) as on_reject:
        task = progress.add_task(f"Importing {file.name}", total=size)
        report = import_profiles(
            ctx.factory,
            file,
            tenant=tenant,
            segment=segment,
            options=options,
            on_bytes=lambda n: progress.advance(task, n),
            on_reject=on_reject,
        )
    if as_json:
        summary = {"file": file.name, **_read_as_json(read), **report.as_json()}
        sys.stdout.write(json.dumps(summary, ensure_ascii=False) + "\n")
    else:
        _print_report(file, read, report)
    return report


def _read_as_json(read: Description) -> dict[str, object]:
    return {"format": read.fmt, "encoding": read.encoding, "delimiter": read.delimiter}


def _progress(quiet: bool = False) -> Progress:
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        DownloadColumn(),
        TransferSpeedColumn(),
        TimeElapsedColumn(),
        console=err,
        transient=True,
        disable=quiet or not err.is_terminal,
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
        writer.writerow(["line", "end_line", "reason"])
        return lambda r: writer.writerow(safe_row([r.line, r.end_line or r.line, r.reason]))

    def __exit__(self, *exc: object) -> None:
        if self.path is not None:
            self.handle.close()


def _print_report(file: Path, read: Description, report: ImportReport) -> None:
    c = report.counts
    target = f" into segment {report.segment!r}" if report.segment else ""
    out.print(
        f"{file.name}: {report.imported:,} rows imported{target} — {c.created:,} new, "
        f"{c.updated:,} updated, {c.unchanged:,} unchanged; {report.rejected:,} rejected.",
        highlight=False,
        markup=False,
    )
    out.print(f"  {_accounting(read, report)}", highlight=False, markup=False)
    for warning, count in sorted(report.warnings.items(), key=lambda i: (i[0].field, -i[1])):
        value = f" {warning.value!r}" if warning.value is not None else ""
        err.print(
            f"  warning: {warning.field}{value}: {warning.reason} ({_rows(count)})",
            highlight=False,
            markup=False,
        )
    shown = report.rejections[:20]
    for rejection in shown:
        # markup=False: a reason names a column of the file, which may look like rich markup.
        err.print(f"  {_span(rejection)}: {rejection.reason}", highlight=False, markup=False)
    if report.rejected > len(shown):
        err.print(
            f"  … and {report.rejected - len(shown):,} more (use --rejects FILE for all).",
            highlight=False,
        )


def _rows(count: int) -> str:
    return "1 row" if count == 1 else f"{count:,} rows"


def _accounting(read: Description, report: ImportReport) -> str:
    """Where every line went, and how the file was read."""
    how = read.fmt if read.delimiter is None else f"{read.fmt}, delimiter {read.delimiter!r}"
    if read.encoding:
        how += f", {read.encoding}"
    parts = [f"{report.imported:,} imported", f"{report.rejected:,} rejected"]
    parts.append(f"{report.blank:,} blank")
    if report.continued:
        parts.append(f"{report.continued:,} continuing a quoted value")
    return f"{report.lines:,} lines read ({how}): " + " + ".join(parts) + "."


def _span(rejection: Rejection) -> str:
    end = rejection.end_line or rejection.line
    return f"line {rejection.line}" if end == rejection.line else f"lines {rejection.line}–{end}"


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
        bool, typer.Option("--hash/--no-hash", help="Hash identifiers (the default).")
    ] = True,
    platform: Annotated[
        SyncPlatform | None,
        typer.Option(
            parser=platform_key,
            help=platform_help(
                "Hash as this platform's upload would; else the neutral normalization."
            ),
        ),
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
    run_import(ctx, files.profiles, tenant, None)
    for name, path in files.segments.items():
        run_import(ctx, path, tenant, name)
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
