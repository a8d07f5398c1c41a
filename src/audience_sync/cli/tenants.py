"""Tenant commands: create and list tenants, and manage an existing tenant's API keys (so data
loaded with the CLI can be reached through the API)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

import typer
from rich.table import Table

from audience_sync.cli.common import (
    DEFAULT_TENANT_SLUG,
    JsonFlag,
    friendly_errors,
    keys_app,
    migrated_context,
    out,
    print_json,
    tenants_app,
)
from audience_sync.services import tenants

TenantArgument = Annotated[
    str, typer.Argument(help=f"The tenant's slug ({DEFAULT_TENANT_SLUG!r}: the CLI's default).")
]


@tenants_app.command("create")
@friendly_errors
def tenants_create(
    name: str,
    region: Annotated[str, typer.Option(help="Default phone region (ISO alpha-2).")] = "US",
    as_json: JsonFlag = False,
) -> None:
    """Create a tenant and print its API key (shown once, stored only as a hash)."""
    ctx = migrated_context()
    tenant_id, key = tenants.create_tenant(ctx.factory, name, region)
    if as_json:
        print_json({"tenant_id": tenant_id, "api_key": key})
        return
    out.print(f"Tenant {name!r} created (id {tenant_id}). API key (shown once, keep it safe):")
    out.print(key, highlight=False)


@tenants_app.command("list")
@friendly_errors
def tenants_list(as_json: JsonFlag = False) -> None:
    """Every tenant."""
    ctx = migrated_context()
    found = tenants.list_tenants(ctx.factory)
    if as_json:
        print_json(
            [{"id": t.id, "slug": t.slug, "default_region": t.default_region} for t in found]
        )
        return
    table = Table("Id", "Slug", "Default region")
    for t in found:
        table.add_row(str(t.id), t.slug, t.default_region)
    out.print(table)


@keys_app.command("create")
@friendly_errors
def keys_create(
    tenant: TenantArgument,
    name: Annotated[str, typer.Option(help="A label to tell the keys apart.")] = "default",
    as_json: JsonFlag = False,
) -> None:
    """Issue a new API key for an existing tenant (shown once, stored only as a hash). The
    default tenant, which the CLI uses when no --tenant is given, is created on first use."""
    ctx = migrated_context()
    key = tenants.issue_key(ctx.factory, tenant, name)
    if as_json:
        print_json({"tenant": tenant, "name": name, "api_key": key})
        return
    out.print(
        f"API key {name!r} for tenant {tenant!r} (shown once, keep it safe):", highlight=False
    )
    out.print(key, highlight=False, markup=False)


@keys_app.command("list")
@friendly_errors
def keys_list(tenant: TenantArgument, as_json: JsonFlag = False) -> None:
    """The tenant's API keys by their prefix (a key itself is never stored)."""
    ctx = migrated_context()
    found = tenants.list_keys(ctx.factory, tenant)
    if as_json:
        print_json(
            [
                {
                    "prefix": k.prefix,
                    "name": k.name,
                    "created_at": k.created_at.isoformat(),
                    "last_used_at": k.last_used_at.isoformat() if k.last_used_at else None,
                    "revoked_at": k.revoked_at.isoformat() if k.revoked_at else None,
                }
                for k in found
            ]
        )
        return
    table = Table("Prefix", "Name", "Created", "Last used", "Revoked")
    for k in found:
        when = [k.created_at, k.last_used_at, k.revoked_at]
        table.add_row(k.prefix, k.name, *(f"{w:%Y-%m-%d %H:%M}" if w else "" for w in when))
    out.print(table)


@keys_app.command("revoke")
@friendly_errors
def keys_revoke(
    tenant: TenantArgument,
    key: Annotated[str, typer.Argument(help="The key, or its prefix as `keys list` shows it.")],
    as_json: JsonFlag = False,
) -> None:
    """Revoke an API key: requests with it are refused (401) from now on."""
    ctx = migrated_context()
    prefix = tenants.revoke_key(ctx.factory, tenant, key, datetime.now(UTC))
    if as_json:
        print_json({"tenant": tenant, "prefix": prefix, "revoked": True})
        return
    out.print(f"API key {prefix}… of tenant {tenant!r} revoked.", highlight=False)
