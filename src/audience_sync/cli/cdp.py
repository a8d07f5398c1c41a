"""CDP commands: the schema, importing profiles, segments, tenants, demo data, the sandbox."""

from __future__ import annotations

import json
import sys
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
from sqlalchemy.engine import make_url

from audience_sync.cli.common import (
    DEFAULT_TENANT_SLUG,
    Context,
    TenantOption,
    app,
    context,
    db_app,
    err,
    friendly_errors,
    import_app,
    migrated_context,
    out,
)
from audience_sync.export.cells import safe_row, safe_writer
from audience_sync.services import database
from audience_sync.sources import demo as demo_data
from audience_sync.sources.importer import ImportReport, import_profiles
from audience_sync.sources.rows import Rejection
from audience_sync.sources.tabular import Description, ReadOptions, describe


@db_app.command("upgrade")
@friendly_errors
def db_upgrade(revision: str = "head") -> None:
    """Create or migrate the schema (safe to run any number of times)."""
    ctx = context()
    database.upgrade(ctx.engine, revision)
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
    database.upgrade(ctx.engine)
    files = demo_data.write_demo_files(directory)
    out.print(f"Demo data written to {directory}/ (seed {demo_data.DEMO_SEED}).", highlight=False)
    run_import(ctx, files.profiles, tenant, None)
    for name, path in files.segments.items():
        run_import(ctx, path, tenant, name)
    ok = True
    if sync:
        from audience_sync.cli.story import tell_story

        ok = tell_story(ctx, tenant, directory)
    from audience_sync.cli.segments import segments_list

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
