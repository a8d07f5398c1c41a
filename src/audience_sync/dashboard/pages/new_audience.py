"""The New audience page: link a segment to an audience on a connected, enabled platform.

The form is checked by the API's own request model (`api.schemas.AudienceIn`) and created by
`services.audiences.create`, exactly as `POST /api/v1/audiences` does; its first sync is queued
the same way. Errors come back beside their field, with the user's values kept.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pydantic
from fastapi import APIRouter, Query, Request
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import FormData

from audience_sync.api.schemas import AudienceIn
from audience_sync.connectors.registry import PlatformSpec, platforms, sync_flags
from audience_sync.dashboard import web
from audience_sync.domain.models import SYNC_INTERVALS_HOURS, SyncOperation, TriggeredBy
from audience_sync.exceptions import FieldError, NotFoundError, ValidationError
from audience_sync.services import audiences, connections, flags, jobs, segments
from audience_sync.services.jobs import Trigger
from audience_sync.services.sessions import Viewer
from audience_sync.sync.context import SyncService
from audience_sync.sync.members import PROFILE_FIELDS, SENDABLE

router = APIRouter(include_in_schema=False)

# The API body's field names → the form's inputs (errors are shown beside them).
FIELD_OF = {
    "segment_id": "segment_id",
    "platform": "platform",
    "platform_audience_name": "name",
    "ad_account_id": "ad_account_id",
    "description": "description",
    "auto_sync": "auto_sync",
    "sync_interval_hours": "interval",
    "options": "options",
}
IDENTIFIER_LABELS = {
    "email": "Email",
    "phone": "Phone",
    "mobile_id": "Mobile advertising id",
    "external_id": "External id",
    "first_name": "First name",
    "last_name": "Last name",
    "zip": "Postal code",
    "country": "Country",
    "city": "City",
    "state": "State",
    "gender": "Gender",
    "date_of_birth": "Date of birth",
}


@dataclass(frozen=True, slots=True)
class Option:
    """One platform option of an audience (docs/connectors.md, Options), as a form input."""

    name: str
    label: str
    help: str
    choices: tuple[tuple[str, str], ...] = ()  # a select (value, label); empty: a number/text
    number: tuple[int, int] | None = None  # an integer input's bounds
    text: bool = False


CONSENT = (("", "Connection's default"), ("granted", "Granted"), ("denied", "Denied"))
# The audience options each connector reads (`connectors/<platform>/connector.py`). A platform
# registered without an entry here simply shows none.
OPTIONS: dict[str, tuple[Option, ...]] = {
    "meta": (
        Option(
            "limited_data_use",
            "Limited Data Use",
            "For members without their own value; unset: the connection's default.",
            choices=(
                ("", "Connection's default"),
                ("off", "Off"),
                ("geolocate", "Geolocate"),
                ("california", "California"),
            ),
        ),
        Option(
            "customer_file_source",
            "Customer file source",
            "Where the customer list comes from, as Meta asks at creation.",
            choices=(
                ("", "User provided only (default)"),
                ("USER_PROVIDED_ONLY", "User provided only"),
                ("PARTNER_PROVIDED_ONLY", "Partner provided only"),
                ("BOTH_USER_AND_PARTNER_PROVIDED", "Both user and partner provided"),
            ),
        ),
    ),
    "google": (
        Option(
            "list_type",
            "List type",
            "One key type per list: contact details, or mobile ids of one app.",
            choices=(("", "Contact details (default)"), ("mobile", "Mobile ids of an app")),
        ),
        Option("app_id", "App id", "Required for a mobile-id list.", text=True),
        Option(
            "consent_ad_user_data",
            "Ad user data consent",
            "For members without their own; a member denied is not sent.",
            choices=CONSENT,
        ),
        Option(
            "consent_ad_personalization",
            "Ad personalization consent",
            "For members without their own; a member denied is not sent.",
            choices=CONSENT,
        ),
        Option(
            "membership_days",
            "Membership duration (days)",
            "How long a member stays on the list; empty: 540, Google's longest.",
            number=(1, 540),
        ),
    ),
    "snapchat": (
        Option(
            "retention_in_days",
            "Retention (days)",
            "How long Snapchat keeps a member; empty: 9999 (lifetime).",
            number=(1, 9999),
        ),
    ),
}


@dataclass
class Form:
    """The form's values as the user typed them, and what is wrong with them."""

    values: dict[str, Any] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)
    problem: str | None = None  # an error of the whole form (shown at the top)


@router.get("/audiences/new")
def new_audience_page(
    request: Request,
    viewer: web.SignedIn,
    platform: str = Query("", max_length=32),
    segment: str = Query("", max_length=64),
) -> Response:
    choices = _choices(request, viewer)
    chosen = platform if platform in choices["available"] else _first(choices["available"])
    values = {
        "platform": chosen,
        "segment_id": segment,
        "ad_account_id": choices["accounts"].get(chosen, ""),
        "name": "",
        "description": "",
        "auto_sync": True,
        "interval": str(web.context(request).settings.default_interval_hours),
        "identifier_types": [],
        "options": {},
    }
    return _page(request, viewer, choices, Form(values))


@router.post("/audiences/new")
async def create_audience(
    request: Request, viewer: web.SignedIn, form: web.CheckedForm
) -> Response:
    choices = await run_in_threadpool(_choices, request, viewer)
    given = _read(form)
    checked = _check(given, choices)
    if checked.errors or checked.problem:
        return _page(request, viewer, choices, checked, status_code=422)
    service = web.context(request).service
    body = _body(given)
    new = body.new_audience()
    hint = "connect it on the Connections page"
    try:
        made = await run_in_threadpool(
            audiences.create, service, viewer.tenant_id, new, connect_hint=hint
        )
    except FieldError as exc:
        checked.errors[_input_of(exc.field)] = exc.message
    except NotFoundError:
        checked.errors["segment_id"] = "There is no such segment; choose one from the list."
    except ValidationError as exc:
        checked.problem = exc.message
    if checked.errors or checked.problem:
        return _page(request, viewer, choices, checked, status_code=422)
    # The first sync, queued and launched as `POST /api/v1/audiences` with `sync_now` does
    # (`launch` needs the event loop: it is called here, not in the thread).
    trigger = Trigger(SyncOperation.CREATE, TriggeredBy.MANUAL)
    job, _ = await run_in_threadpool(jobs.request_sync, service, viewer.tenant_id, made.id, trigger)
    web.context(request).launcher.launch(viewer.tenant_id, job.id)
    return web.redirect(f"/audiences/{made.id}?done=created", request)


def _choices(request: Request, viewer: Viewer) -> dict[str, Any]:
    """What the form offers: segments with their sizes; platforms enabled and connected (and
    why each other one is not); each connection's ad account; the allowed intervals."""
    ctx = web.context(request)
    service = ctx.service
    found = connections.list_connections(service, viewer.tenant_id)
    accounts = {str(c.platform.value): c.ad_account_id for c in found}
    _, on = flags.read(ctx.factory, viewer.tenant_id, ctx.settings.feature_flags)
    available: list[PlatformSpec] = []
    unavailable: list[tuple[PlatformSpec, str]] = []
    for spec in platforms():
        off = [flag.value for flag in sync_flags(spec.key) if not on[flag]]
        if off:
            unavailable.append((spec, f"turned off by the feature flag {', '.join(off)}"))
        elif spec.name not in accounts:
            unavailable.append((spec, "not connected"))
        else:
            available.append(spec)
    return {
        "segments": segments.list_segments(service, viewer.tenant_id),
        "available": {spec.name: spec for spec in available},
        "unavailable": unavailable,
        "accounts": accounts,
        "intervals": [h for h in SYNC_INTERVALS_HOURS if _allowed(service, h)],
        "default_interval": ctx.settings.default_interval_hours,
    }


def _allowed(service: SyncService, hours: int) -> bool:
    """Whether the schedule rule (`services.audiences.interval`) takes this interval."""
    try:
        audiences.interval(service, hours)
    except FieldError:
        return False
    return True


def _first(available: dict[str, PlatformSpec]) -> str:
    return next(iter(available), "")


def _read(form: FormData) -> dict[str, Any]:
    """The form's fields as given (strings), the chosen platform's options among them."""
    platform = _text(form, "platform")
    return {
        "segment_id": _text(form, "segment_id"),
        "platform": platform,
        "ad_account_id": _text(form, "ad_account_id").strip(),
        "name": _text(form, "name").strip(),
        "description": _text(form, "description").strip(),
        "auto_sync": form.get("auto_sync") == "on",
        "interval": _text(form, "interval"),
        "identifier_types": [str(v) for v in form.getlist("identifier_types")],
        "options": {
            option.name: _text(form, f"{platform}.{option.name}").strip()
            for option in OPTIONS.get(platform, ())
        },
    }


def _text(form: FormData, name: str) -> str:
    value = form.get(name)
    return value if isinstance(value, str) else ""


def _check(given: dict[str, Any], choices: dict[str, Any]) -> Form:
    """The API's request model over the form's values, plus what only the form can get wrong
    (a platform not offered, an option out of its range)."""
    form = Form(given)
    if given["platform"] not in choices["available"]:
        form.errors["platform"] = "Choose one of the connected, enabled platforms."
    unknown = [t for t in given["identifier_types"] if t not in SENDABLE]
    if unknown:
        form.errors["identifier_types"] = "Choose among the listed identifier types."
    for option in OPTIONS.get(given["platform"], ()):
        problem = _option_problem(option, given["options"].get(option.name, ""))
        if problem:
            form.errors[f"{given['platform']}.{option.name}"] = problem
    try:
        _body(given)
    except pydantic.ValidationError as exc:
        for error in exc.errors():
            name = _input_of(str(error["loc"][0]) if error["loc"] else "")
            form.errors.setdefault(name, _message(name, error["msg"]))
    google = given["options"] if given["platform"] == "google" else {}
    if google.get("list_type") == "mobile" and not google.get("app_id"):
        form.errors.setdefault("google.app_id", "A mobile-id list needs the app's id.")
    return form


def _option_problem(option: Option, value: str) -> str | None:
    if not value:
        return None
    if option.choices and value not in {v for v, _ in option.choices}:
        return "Choose one of the listed values."
    if option.number is not None:
        low, high = option.number
        if not value.isdigit() or not low <= int(value) <= high:
            return f"A whole number from {low} to {high}."
    if option.text and len(value) > 255:
        return "At most 255 characters."
    return None


def _body(given: dict[str, Any]) -> AudienceIn:
    """The API's request body for these values (`pydantic.ValidationError` when refused)."""
    interval = given["interval"]
    numbers = {o.name for o in OPTIONS.get(given["platform"], ()) if o.number is not None}
    options: dict[str, Any] = {
        name: int(value) if name in numbers and value.isdigit() else value
        for name, value in given["options"].items()
        if value
    }
    if given["identifier_types"]:
        options["identifier_types"] = list(dict.fromkeys(given["identifier_types"]))
    return AudienceIn.model_validate(
        {
            "segment_id": given["segment_id"],
            "platform": given["platform"],
            "platform_audience_name": given["name"],
            "ad_account_id": given["ad_account_id"],
            "description": given["description"] or None,
            "auto_sync": given["auto_sync"],
            "sync_interval_hours": int(interval) if interval.isdigit() else interval or None,
            "options": options,
        }
    )


def _input_of(api_field: str) -> str:
    name = api_field.removeprefix("body.")
    return FIELD_OF.get(name, name if name in FIELD_OF.values() else "form")


def _message(name: str, pydantic_message: str) -> str:
    """Plain words for the errors a person meets; pydantic's own for the rest."""
    plain = {
        "segment_id": "Choose a segment.",
        "name": "Give the audience a name (at most 255 characters).",
        "interval": "Choose one of the listed intervals.",
    }
    text = pydantic_message.removeprefix("Value error, ")
    return plain.get(name, text[:1].upper() + text[1:])


def _page(
    request: Request,
    viewer: Viewer,
    choices: dict[str, Any],
    form: Form,
    status_code: int = 200,
) -> Response:
    return web.render(
        request,
        "new_audience.html",
        viewer,
        status_code=status_code,
        form=form,
        values=form.values,
        errors=form.errors,
        options=OPTIONS,
        identifiers=_identifier_choices(choices["available"]),
        **choices,
    )


def _identifier_choices(available: dict[str, PlatformSpec]) -> list[tuple[str, str, str]]:
    """Each identifier type an audience may send (`sync.members.SENDABLE`), its label and the
    available platforms that match on it (`PlatformSpec.rules`)."""
    rows = []
    for name in (
        *("email", "phone", "mobile_id", "external_id"),
        *(f for f in PROFILE_FIELDS if f in SENDABLE),
    ):
        takers = [
            spec.display_name
            for spec in available.values()
            if name in {f.value for f in spec.rules.supported}
            or (name == "date_of_birth" and spec.rules.date_of_birth)
        ]
        rows.append((name, IDENTIFIER_LABELS.get(name, name), ", ".join(takers) or "none"))
    return rows
