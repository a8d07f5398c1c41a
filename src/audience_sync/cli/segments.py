"""Segment commands: list, create, delete, change members, export (to a file or a link)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from audience_sync.cli.common import (
    DEFAULT_TENANT_SLUG,
    JsonFlag,
    TenantOption,
    app,
    friendly_errors,
    migrated_context,
    out,
    platform_help,
    print_json,
    segments_app,
    service,
    tenant_id,
)
from audience_sync.domain.models import IdentifierType, SyncPlatform
from audience_sync.domain.platforms import platform_key
from audience_sync.exceptions import ValidationError
from audience_sync.services import exports, segments
from audience_sync.services.exports import ExportSpec
from audience_sync.sync.context import SyncService

SegmentArgument = Annotated[
    str, typer.Argument(help="The segment's name, id, or the id's first characters.")
]


def _view(s: segments.SegmentSummary) -> dict[str, object]:
    return {
        "id": str(s.id),
        "name": s.name,
        "member_count": s.member_count,
        "is_active": s.is_active,
    }


@segments_app.command("list")
@friendly_errors
def segments_list(tenant: TenantOption = DEFAULT_TENANT_SLUG, as_json: JsonFlag = False) -> None:
    """Every segment with its member count."""
    ctx = migrated_context()
    summaries = segments.list_segments(service(ctx), tenant_id(ctx, tenant))
    if as_json:
        print_json([_view(s) for s in summaries])
        return
    table = Table("Segment", "Members", "Active", "Id", title=f"Segments of tenant {tenant!r}")
    for s in summaries:
        table.add_row(s.name, f"{s.member_count:,}", "yes" if s.is_active else "no", str(s.id))
    out.print(table)


@segments_app.command("create")
@friendly_errors
def segments_create(
    name: Annotated[str, typer.Argument(help="Unique within the tenant.")],
    description: Annotated[str | None, typer.Option()] = None,
    tenant: TenantOption = DEFAULT_TENANT_SLUG,
    as_json: JsonFlag = False,
) -> None:
    """Create an empty segment (add members with `segments members` or an import)."""
    ctx = migrated_context()
    made = segments.create(service(ctx), tenant_id(ctx, tenant), name, description)
    if as_json:
        print_json({**_view(made), "description": made.description})
        return
    out.print(f"Segment {made.name!r} created (id {made.id}).", highlight=False, markup=False)


@segments_app.command("delete")
@friendly_errors
def segments_delete(
    segment: SegmentArgument,
    tenant: TenantOption = DEFAULT_TENANT_SLUG,
    as_json: JsonFlag = False,
) -> None:
    """Delete a segment and its memberships (its profiles stay); refused while an audience
    uses it."""
    ctx = migrated_context()
    engine, tenant_of = service(ctx), tenant_id(ctx, tenant)
    segment_id = segments.resolve(engine, tenant_of, segment)
    name = segments.delete(engine, tenant_of, segment_id)
    if as_json:
        print_json({"id": str(segment_id), "name": name, "deleted": True})
        return
    out.print(f"Segment {name!r} deleted.", highlight=False, markup=False)


@segments_app.command("members")
@friendly_errors
def segments_members(
    segment: SegmentArgument,
    add: Annotated[
        list[str] | None, typer.Option("--add", help="A profile id to add (repeatable).")
    ] = None,
    remove: Annotated[
        list[str] | None, typer.Option("--remove", help="A profile id to remove (repeatable).")
    ] = None,
    tenant: TenantOption = DEFAULT_TENANT_SLUG,
    as_json: JsonFlag = False,
) -> None:
    """Add and remove members by your own profile ids (removals apply after additions); ids
    with no profile are reported, never created."""
    if not add and not remove:
        raise ValidationError("Give --add PROFILE_ID or --remove PROFILE_ID (repeatable).")
    ctx = migrated_context()
    engine, tenant_of = service(ctx), tenant_id(ctx, tenant)
    segment_id = segments.resolve(engine, tenant_of, segment)
    changed = segments.change_members(engine, tenant_of, segment_id, add or [], remove or [])
    if as_json:
        print_json(
            {
                "added": changed.added,
                "removed": changed.removed,
                "unknown_profile_ids": changed.unknown_profile_ids,
                "member_count": changed.member_count,
            }
        )
        return
    out.print(
        f"{changed.added:,} added, {changed.removed:,} removed; {changed.member_count:,} "
        "members now.",
        highlight=False,
    )
    if changed.unknown_profile_ids:
        shown = ", ".join(changed.unknown_profile_ids[:10])
        more = len(changed.unknown_profile_ids) - 10
        out.print(
            f"No profile with these ids: {shown}{f' and {more:,} more' if more > 0 else ''} "
            "(import them first).",
            highlight=False,
            markup=False,
        )


@segments_app.command("export")
@app.command("export")
@friendly_errors
def export(
    segment: SegmentArgument,
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
    link: Annotated[
        bool,
        typer.Option(
            "--link",
            help="As the API does: keep the file with the service and print a signed download "
            "link (valid 1 hour, served by `audience-sync serve` at AUDIENCE_SYNC_PUBLIC_URL).",
        ),
    ] = False,
    tenant: TenantOption = DEFAULT_TENANT_SLUG,
    as_json: JsonFlag = False,
) -> None:
    """Write a segment's members to <dir>/<segment>.<normalization>.<format> (or, with --link,
    behind a signed download link)."""
    if fmt not in ("csv", "json"):
        raise typer.BadParameter("csv or json", param_hint="--format")
    if link and directory is not None:
        raise typer.BadParameter("--dir and --link do not go together", param_hint="--dir")
    spec = ExportSpec(
        format="csv" if fmt == "csv" else "json",
        identifier_types=_identifier_types(identifier_types),
        hash_identifiers=hashed,
        platform=platform,
        include_traits=traits,
        include_events=events,
    )
    ctx = migrated_context()
    if link:
        _export_link(service(ctx), tenant_id(ctx, tenant), segment, spec, as_json)
        return
    made = exports.write_file(service(ctx), tenant_id(ctx, tenant), segment, spec, directory)
    if as_json:
        print_json(
            {
                "path": str(made.path),
                "normalization": made.normalization,
                "profile_count": made.profile_count,
                "file_size_bytes": made.file_size_bytes,
            }
        )
        return
    out.print(
        f"Exported {made.segment_name!r}: {made.profile_count:,} profiles, "
        f"{made.file_size_bytes:,} bytes, identifiers normalized as {made.normalization!r}, "
        f"in {made.path}.",
        highlight=False,
    )


def _export_link(
    engine: SyncService, tenant_of: int, segment: str, spec: ExportSpec, as_json: bool
) -> None:
    segment_id = segments.resolve(engine, tenant_of, segment)
    made = exports.create_link(engine, tenant_of, segment_id, spec)
    url = exports.download_url(engine, made)
    if as_json:  # the API's answer, field for field
        print_json(
            {
                "download_url": url,
                "expires_at": made.expires_at.isoformat(),
                "profile_count": made.profile_count,
                "file_size_bytes": made.file_size_bytes,
                "normalization": made.normalization,
            }
        )
        return
    out.print(
        f"Exported {made.profile_count:,} profiles ({made.file_size_bytes:,} bytes, "
        f"normalized as {made.normalization!r}); download until "
        f"{made.expires_at:%Y-%m-%d %H:%M} UTC:",
        highlight=False,
    )
    out.print(url, highlight=False, markup=False, soft_wrap=True)


def _identifier_types(text: str) -> tuple[IdentifierType, ...]:
    try:
        chosen = tuple(dict.fromkeys(IdentifierType(t.strip()) for t in text.split(",")))
    except ValueError:
        known = ", ".join(t.value for t in IdentifierType)
        raise typer.BadParameter(
            f"one or more of {known}", param_hint="--identifier-types"
        ) from None
    return chosen
