"""Settings → Alerts: the tenant's channels (add a webhook or e-mail channel, delete one, send a
test alert), its rules (on/off and thresholds) and its recent incidents with their deliveries.

Everything goes through `services.alerts`, as the API's alert routes do. A webhook's secret is
taken once and never shown again (the channel shows a hint); a test alert's outcome is shown
beside its channel in the answer to its POST (htmx swaps just that part in).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import FormData

from audience_sync.dashboard import web
from audience_sync.dashboard.pages.jobs import form_text
from audience_sync.exceptions import FieldError, NotFoundError
from audience_sync.services import alerts
from audience_sync.services.sessions import Viewer

router = APIRouter(include_in_schema=False)

CHANNEL_ID_MAX = 2_147_483_647  # a 32-bit id in the database: past it, no such channel
EVENTS_SHOWN = 50
# Each rule: a short name, and when it holds in plain words (its threshold is beside it).
RULES = {
    "sync_failed": ("Sync failed", "A sync failed for good, after its last retry."),
    "guard_rail": (
        "Guard rail",
        "A guard rail stopped a sync: a mass removal, or a replace that would empty the audience.",
    ),
    "members_dropped": (
        "Members dropped",
        "More than the threshold's share of a sync's members were dropped or refused.",
    ),
    "platform_size_drop": (
        "Platform size fell",
        "The platform's audience size fell by more than the threshold since the sync before.",
    ),
    "match_rate_drop": (
        "Match rate fell",
        "The match rate fell by more than the threshold since the sync before.",
    ),
    "stale_audience": (
        "Not syncing",
        "An audience on a schedule has not synced for longer than the threshold times its "
        "interval.",
    ),
    "connection": (
        "Connection",
        "A connection needs reconnecting, or its token expires within the threshold.",
    ),
    "inactivity_deletion": (
        "Deletion for inactivity",
        "The platform may delete an audience for inactivity within the threshold (Meta: an "
        "audience not used in an active ad set for two years).",
    ),
    "members_expiring": (
        "Members may expire",
        "An audience on a schedule syncs less often than its refresh margin: where a platform "
        "keeps members only for a time (Google, Snapchat), some may expire before a sync sends "
        "them again.",
    ),
}
# What to do about an open incident, by rule (the Audience page's panel).
ADVICE = {
    "sync_failed": "Read why the sync failed on its job page, fix it, then sync again.",
    "guard_rail": "Check the segment; if the change is intended, confirm the sync.",
    "members_dropped": "See which values were dropped or refused, and why, on the job page.",
    "platform_size_drop": "Check the segment and the platform: members may have been removed.",
    "match_rate_drop": "Check the identifiers the segment sends (the job's dropped values).",
    "stale_audience": "Sync now, and check the connection: scheduled syncs are not completing.",
    "connection": "Reconnect the platform on the Connections page.",
    "inactivity_deletion": "Use the audience in an active ad set on the platform before then, "
    "or expect to create it again.",
    "members_expiring": "Sync it more often (its schedule, below), or give the list a longer "
    "membership duration.",
}
DONE = {
    "added": "The channel is added: every rule that is on now goes to it too.",
    "deleted": "The channel is deleted.",
    "rules": "The rules are saved.",
}


def rule_label(rule: str) -> str:
    return RULES[rule][0] if rule in RULES else rule


def incident_rows(incidents: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Incidents as pages show them: the rule in plain words, times as datetimes, advice."""
    return [
        {
            **incident,
            "label": rule_label(incident["rule"]),
            "advice": ADVICE.get(incident["rule"], ""),
            "opened": _when(incident["opened_at"]),
            "resolved": _when(incident["resolved_at"]),
        }
        for incident in incidents
    ]


def _when(text: str | None) -> datetime | None:
    if text is None:
        return None
    found = datetime.fromisoformat(text)
    return found if found.tzinfo else found.replace(tzinfo=UTC)  # SQLite keeps no zone


# --- routes --------------------------------------------------------------------------------------


@router.get("/settings/alerts")
def alerts_page(request: Request, viewer: web.SignedIn, done: str = "") -> Response:
    return _page(request, viewer, flash=DONE.get(done))


@router.post("/settings/alerts/channels")
def add_channel(request: Request, viewer: web.SignedIn, form: web.CheckedForm) -> Response:
    """A webhook (`url`, `secret`) or e-mail (`to`: addresses separated by commas, spaces or
    lines) channel; its rule's error beside the field, the values kept but never the secret."""
    kind = form_text(form, "kind")
    name = form_text(form, "name")
    new = alerts.NewChannel(
        kind=kind,
        url=form_text(form, "url") or None,
        secret=_raw(form, "secret") or None,
        to=[a for a in re.split(r"[\s,;]+", form_text(form, "to")) if a],
        name=name,
    )
    kept = {"url": new.url or "", "to": form_text(form, "to"), "name": name}
    try:
        alerts.create_channel(web.context(request).service, viewer.tenant_id, new)
    except FieldError as exc:
        error = {"kind": kind, "field": exc.field, "message": _sentence(exc.message)}
        return _page(request, viewer, 422, channel_error=error, kept={kind: kept})
    return web.redirect("/settings/alerts?done=added", request)


@router.post("/settings/alerts/channels/{channel_id:int}/test")
def send_test(
    request: Request, channel_id: int, viewer: web.SignedIn, _form: web.CheckedForm
) -> Response:
    """Send a test alert now; the page with its outcome beside the channel."""
    service = web.context(request).service
    delivery = alerts.send_test(service, viewer.tenant_id, _known(channel_id))
    return _page(request, viewer, tested={channel_id: delivery})


@router.post("/settings/alerts/channels/{channel_id:int}/delete")
def delete_channel(
    request: Request, channel_id: int, viewer: web.SignedIn, form: web.CheckedForm
) -> Response:
    """Asked to confirm first (a page naming the channel); then deleted."""
    service = web.context(request).service
    channel = next(
        (c for c in alerts.list_channels(service, viewer.tenant_id) if c.id == _known(channel_id)),
        None,
    )
    if channel is None:
        raise NotFoundError("This account has no such alert channel.")
    if form_text(form, "confirm") != "yes":
        view = alerts.channel_view(channel)
        return web.render(request, "alerts_delete.html", viewer, channel=view)
    alerts.delete_channel(service, viewer.tenant_id, channel_id)
    return web.redirect("/settings/alerts?done=deleted", request)


@router.post("/settings/alerts/rules")
async def save_rules(request: Request, viewer: web.SignedIn, form: web.CheckedForm) -> Response:
    """Every rule's switch and threshold at once; nothing is saved while one is wrong."""
    changes, errors = _rule_changes(form)
    if errors:
        return await run_in_threadpool(
            lambda: _page(request, viewer, 422, rule_errors=errors, rule_form=dict(form))
        )
    service = web.context(request).service
    await run_in_threadpool(alerts.put_rules, service, viewer.tenant_id, changes)
    return web.redirect("/settings/alerts?done=rules", request)


def _rule_changes(form: FormData) -> tuple[dict[str, alerts.RuleChange], dict[str, str]]:
    changes: dict[str, alerts.RuleChange] = {}
    errors: dict[str, str] = {}
    for rule in alerts.Rule:
        enabled = form_text(form, f"{rule.value}.enabled") == "on"
        text = form_text(form, f"{rule.value}.threshold")
        threshold: float | None = None
        if text:
            try:
                threshold = float(text)
            except ValueError:
                errors[rule.value] = "Enter a number."
                continue
        change = alerts.RuleChange(enabled=enabled, threshold=threshold)
        try:
            alerts.check_rule_change(rule.value, change)
        except FieldError as exc:
            errors[rule.value] = _sentence(exc.message)
            continue
        changes[rule.value] = change
    return changes, errors


def _known(channel_id: int) -> int:
    if not 1 <= channel_id <= CHANNEL_ID_MAX:
        raise NotFoundError("This account has no such alert channel.")
    return channel_id


def _raw(form: FormData, name: str) -> str:
    """A field as typed (a secret's spaces are its own)."""
    value = form.get(name)
    return value if isinstance(value, str) else ""


def _sentence(message: str) -> str:
    return message[:1].upper() + message[1:] + ("" if message.endswith(".") else ".")


def _page(request: Request, viewer: Viewer, status_code: int = 200, **values: Any) -> Response:
    service = web.context(request).service
    channels = alerts.list_channels(service, viewer.tenant_id)
    rules = alerts.rules_view(service, viewer.tenant_id)
    typed = values.get("rule_form")  # after an error: the form as it was sent
    for rule in rules:
        name = rule["rule"]
        rule["label"], rule["text"] = RULES.get(name, (name, ""))
        rule["default_text"] = _number(rule["default_threshold"])
        if typed is None:
            rule["on"], rule["value"] = rule["enabled"], _number(rule["threshold"])
        else:
            rule["on"] = typed.get(f"{name}.enabled") == "on"
            rule["value"] = typed.get(f"{name}.threshold", "")
    defaults: dict[str, Any] = {
        "flash": None,
        "tested": {},
        "channel_error": None,
        "kept": {},
        "rule_errors": {},
        "rule_form": None,
    }
    return web.render(
        request,
        "alerts.html",
        viewer,
        status_code=status_code,
        channels=[(c, alerts.channel_view(c)) for c in channels],
        names={c.id: _channel_name(alerts.channel_view(c)) for c in channels},
        rules=rules,
        events=incident_rows(alerts.events(service, viewer.tenant_id, limit=EVENTS_SHOWN)),
        **(defaults | values),
    )


def _number(value: float | None) -> str:
    return "" if value is None else f"{value:g}"


def _channel_name(view: dict[str, Any]) -> str:
    """How a delivery names its channel: its name, else where it goes."""
    if view.get("name"):
        return str(view["name"])
    return str(view.get("url") or ", ".join(view.get("to") or []))
