"""The `alerts` commands: rules, channels, events and test alerts — what the API offers at
`/api/v1/alerts/rules`, `/api/v1/alerts/channels` and `/api/v1/alerts/events`, through the
same services (docs/alerts.md)."""

from __future__ import annotations

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
    print_json,
    service,
    tenant_id,
)
from audience_sync.services import alerts
from audience_sync.sync.context import SyncService

alerts_app = typer.Typer(help="Alerts: rules, channels, events.", no_args_is_help=True)
rules_app = typer.Typer(help="Alert rules: on or off, and thresholds.", no_args_is_help=True)
channels_app = typer.Typer(help="Where alerts go: webhooks, e-mail.", no_args_is_help=True)
app.add_typer(alerts_app, name="alerts")
alerts_app.add_typer(rules_app, name="rules")
alerts_app.add_typer(channels_app, name="channels")


def _engine(tenant: str) -> tuple[SyncService, int]:
    ctx = migrated_context()
    return service(ctx), tenant_id(ctx, tenant)


@rules_app.command("list")
@friendly_errors
def rules_list(tenant: TenantOption = DEFAULT_TENANT_SLUG, as_json: JsonFlag = False) -> None:
    """Every rule, on or off, with its threshold."""
    engine, tenant_of = _engine(tenant)
    _print_rules(alerts.rules_view(engine, tenant_of), as_json)


@rules_app.command("set")
@friendly_errors
def rules_set(
    rule: Annotated[str, typer.Argument(help="The rule's name (see `alerts rules list`).")],
    enabled: Annotated[bool | None, typer.Option("--on/--off", help="Turn it on or off.")] = None,
    threshold: Annotated[float | None, typer.Option(help="Its threshold, in its unit.")] = None,
    tenant: TenantOption = DEFAULT_TENANT_SLUG,
    as_json: JsonFlag = False,
) -> None:
    """Turn a rule on or off, or change its threshold."""
    engine, tenant_of = _engine(tenant)
    change = {rule: alerts.RuleChange(enabled=enabled, threshold=threshold)}
    _print_rules(alerts.put_rules(engine, tenant_of, change), as_json)


def _print_rules(rules: list[dict[str, object]], as_json: bool) -> None:
    if as_json:
        print_json(rules)
        return
    table = Table("Rule", "On", "Threshold", "Default", "Unit")
    for r in rules:
        values = (
            r["rule"],
            "yes" if r["enabled"] else "no",
            r["threshold"],
            r["default_threshold"],
        )
        table.add_row(*(str(v if v is not None else "—") for v in (*values, r["unit"])))
    out.print(table)


@channels_app.command("list")
@friendly_errors
def channels_list(tenant: TenantOption = DEFAULT_TENANT_SLUG, as_json: JsonFlag = False) -> None:
    """The tenant's channels (hints only: never a secret or a webhook's path)."""
    engine, tenant_of = _engine(tenant)
    views = [alerts.channel_view(c) for c in alerts.list_channels(engine, tenant_of)]
    if as_json:
        print_json(views)
        return
    table = Table("Id", "Kind", "Where", "Name")
    for v in views:
        where = v.get("url") or ", ".join(v.get("to") or [])
        table.add_row(str(v["id"]), str(v["kind"]), str(where), str(v["name"]))
    out.print(table)


@channels_app.command("add-webhook")
@friendly_errors
def channels_add_webhook(
    url: Annotated[str, typer.Argument(help="Where to POST alerts (http or https).")],
    secret: Annotated[
        str | None,
        typer.Option(
            envvar="AUDIENCE_SYNC_ALERT_SECRET",
            help="Signs each delivery; stored encrypted (not needed for a Slack URL).",
        ),
    ] = None,
    name: Annotated[str, typer.Option(help="A label.")] = "",
    tenant: TenantOption = DEFAULT_TENANT_SLUG,
    as_json: JsonFlag = False,
) -> None:
    """Add a webhook channel; every rule that is on goes to it."""
    engine, tenant_of = _engine(tenant)
    new = alerts.NewChannel(kind="webhook", url=url, secret=secret or None, name=name)
    _print_channel(alerts.channel_view(alerts.create_channel(engine, tenant_of, new)), as_json)


@channels_app.command("add-email")
@friendly_errors
def channels_add_email(
    to: Annotated[list[str], typer.Argument(help="One or more addresses.")],
    name: Annotated[str, typer.Option(help="A label.")] = "",
    tenant: TenantOption = DEFAULT_TENANT_SLUG,
    as_json: JsonFlag = False,
) -> None:
    """Add an e-mail channel (sent over the settings' SMTP server)."""
    engine, tenant_of = _engine(tenant)
    new = alerts.NewChannel(kind="email", to=list(to), name=name)
    _print_channel(alerts.channel_view(alerts.create_channel(engine, tenant_of, new)), as_json)


def _print_channel(view: dict[str, object], as_json: bool) -> None:
    if as_json:
        print_json(view)
    else:
        out.print(f"Alert channel {view['id']} ({view['kind']}) added.", highlight=False)


@channels_app.command("delete")
@friendly_errors
def channels_delete(channel: int, tenant: TenantOption = DEFAULT_TENANT_SLUG) -> None:
    """Remove a channel (its pending deliveries are dropped)."""
    engine, tenant_of = _engine(tenant)
    alerts.delete_channel(engine, tenant_of, channel)
    out.print(f"Alert channel {channel} deleted.", highlight=False)


@alerts_app.command("test")
@friendly_errors
def alerts_test(
    channel: int, tenant: TenantOption = DEFAULT_TENANT_SLUG, as_json: JsonFlag = False
) -> None:
    """Send a test alert to the channel now; exits 1 when it was not delivered."""
    engine, tenant_of = _engine(tenant)
    sent = alerts.send_test(engine, tenant_of, channel)
    if as_json:
        print_json(sent)
    elif sent["status"] == "sent":
        out.print(f"Test alert delivered to channel {channel}.", highlight=False)
    else:
        out.print(f"Test alert not delivered: {sent['last_error']}", highlight=False, markup=False)
    if sent["status"] != "sent":
        raise typer.Exit(1)


@alerts_app.command("events")
@friendly_errors
def alerts_events(
    state: Annotated[str | None, typer.Option(help="open or resolved.")] = None,
    limit: Annotated[int, typer.Option(min=1, max=500)] = 50,
    tenant: TenantOption = DEFAULT_TENANT_SLUG,
    as_json: JsonFlag = False,
) -> None:
    """Incidents, newest first, with their deliveries' status."""
    engine, tenant_of = _engine(tenant)
    found = alerts.events(engine, tenant_of, state=state, limit=limit)
    if as_json:
        print_json(found)
        return
    table = Table("Opened", "Rule", "State", "Title", "Deliveries")
    for e in found:
        sent = ", ".join(f"{d['event']} {d['status']}" for d in e["deliveries"]) or "—"
        table.add_row(str(e["opened_at"])[:16], e["rule"], e["state"], e["title"], sent)
    out.print(table)
