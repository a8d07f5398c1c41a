"""The Job page: live progress while a sync runs, then its figures, a dry run's preview, its
failure in plain words with what to do, and the values it dropped or the platform refused.

`preview`, `progress` and `guard_warnings` read what the engine leaves on a job; they are the one
place to change when `services.jobs` offers them (the Audience page imports them from here)."""

from __future__ import annotations

import io
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response
from starlette.datastructures import FormData

from audience_sync.dashboard import web
from audience_sync.domain.models import SyncStatus
from audience_sync.exceptions import ConflictError
from audience_sync.services import audiences, jobs
from audience_sync.services.jobs import Job

router = APIRouter(include_in_schema=False)

PAGE_SIZE = 100  # diagnostics entries a page
ACTIVE = (SyncStatus.PENDING, SyncStatus.RUNNING)
# Warnings that mean "a guard rail held this sync back": it runs only when confirmed (force).
GUARD_CODES = frozenset({"mass_removal", "empty_replace"})
# How the engine words a guard rail's refusal (`sync.update.guard`, `refuse_emptying`) until
# dry runs report them as warnings: a real sync is still refused with these words.
GUARD_REFUSALS = ("refused: it would remove", "replace refused:")
DONE = {
    "cancel": ("Cancellation asked for: the job stops at its next checkpoint.", False),
    "ended": ("The job already ended; there was nothing to cancel.", True),
}


@dataclass(frozen=True, slots=True)
class Help:
    """What to do about a failed job: a sentence, and where to do it."""

    text: str
    link: str
    link_text: str


# --- what the engine leaves on a job -------------------------------------------------------------


def preview(job: Job) -> jobs.Preview:
    """What a dry run would do (`services.jobs.preview_of`); a job without a plan still shows
    its warnings."""
    found = jobs.preview_of(job)
    if found is not None:
        return found
    warnings = [w for w in (job.details or {}).get("warnings") or [] if isinstance(w, dict)]
    return jobs.Preview(None, None, None, None, None, {}, warnings)


def progress(job: Job, now: datetime) -> jobs.Progress | None:
    return jobs.progress_of(job, now)


def guard_warnings(job: Job) -> list[dict[str, Any]]:
    """The guard rails that held this job back: its guard warnings, or its refusal."""
    found = [w for w in preview(job).warnings if w.get("code") in GUARD_CODES]
    if found or job.status is not SyncStatus.FAILED:
        return found
    if is_guard_refusal(job.error_message):
        return [{"code": "refused", "message": job.error_message}]
    return []


def is_guard_refusal(message: str | None) -> bool:
    text = (message or "").lower()
    return any(words in text for words in GUARD_REFUSALS)


# --- a failure in plain words --------------------------------------------------------------------


def failure_help(message: str | None, audience_id: uuid.UUID) -> Help:
    """What to do about a failure, from the engine's message (`sync.messages.describe`)."""
    text = (message or "").lower()
    audience_page = f"/audiences/{audience_id}"
    if "expired or was revoked" in text or "is not connected" in text:
        return Help(
            "The platform no longer accepts the account's access. Reconnect it, then sync again.",
            "/connections",
            "Reconnect on the Connections page",
        )
    if is_guard_refusal(message):
        return Help(
            "Nothing was changed on the platform: a guard rail stopped the sync. Check the "
            "segment; if the change is intended, confirm the sync.",
            audience_page,
            "Confirm on the audience page",
        )
    if "rate limiting" in text:
        return Help(
            "The platform asked us to slow down. Syncs retry by themselves; if this keeps "
            "happening, sync less often.",
            audience_page,
            "Change the schedule on the audience page",
        )
    if "could not connect" in text or "did not answer" in text or "server error" in text:
        return Help(
            "The platform could not be reached. Syncs retry by themselves; if it lasts, check "
            "the connection.",
            "/connections",
            "Check it on the Connections page",
        )
    return Help(
        "Fix what the message says, then sync again.", audience_page, "Sync on the audience page"
    )


# --- routes --------------------------------------------------------------------------------------


@router.get("/jobs/{job_id:uuid}")
def job_page(
    request: Request,
    job_id: uuid.UUID,
    viewer: web.SignedIn,
    reason: Annotated[str, Query(max_length=64)] = "",
    offset: Annotated[int, Query(ge=0)] = 0,
    done: Annotated[str, Query(max_length=16)] = "",
) -> Response:
    service = web.context(request).service
    job = jobs.get(service, viewer.tenant_id, job_id)
    audience = audiences.get(service, viewer.tenant_id, job.platform_audience_id)
    final = job.status not in ACTIVE
    report = (
        jobs.diagnostics(
            service, viewer.tenant_id, job_id, reason=reason or None, offset=offset, limit=PAGE_SIZE
        )
        if final
        else None
    )
    return web.render(
        request,
        "job.html",
        viewer,
        job=job,
        audience=audience,
        final=final,
        progress=progress(job, service.clock()),
        preview=preview(job),
        guards=guard_warnings(job),
        help=failure_help(job.error_message, audience.id)
        if job.status is SyncStatus.FAILED
        else None,
        platform_size=(job.details or {}).get("platform_size"),
        report=report,
        reason=reason,
        offset=offset,
        page_size=PAGE_SIZE,
        flash=DONE.get(done),
    )


@router.get("/jobs/{job_id:uuid}/progress")
def job_progress(request: Request, job_id: uuid.UUID, viewer: web.SignedIn) -> Response:
    """The progress block, polled by htmx every second while the job runs (it also refreshes
    the status badge, out of band). Once the job ended, the answer is the whole job page, and
    htmx swaps its `<main>` in place (`HX-Retarget`/`HX-Reselect`): the figures appear without
    a reload, and the new content polls no more."""
    service = web.context(request).service
    job = jobs.get(service, viewer.tenant_id, job_id)
    if job.status not in ACTIVE and request.headers.get("hx-request"):
        answer = job_page(request, job_id, viewer)
        answer.headers.update(
            {"HX-Retarget": "#main", "HX-Reswap": "outerHTML", "HX-Reselect": "#main"}
        )
        return answer
    return web.render(
        request,
        "job_progress.html",
        viewer,
        job=job,
        final=job.status not in ACTIVE,
        progress=progress(job, service.clock()),
    )


@router.post("/jobs/{job_id:uuid}/cancel")
def cancel_job(
    request: Request, job_id: uuid.UUID, viewer: web.SignedIn, _form: web.CheckedForm
) -> Response:
    try:
        jobs.cancel(web.context(request).service, viewer.tenant_id, job_id)
    except ConflictError:
        return web.redirect(f"/jobs/{job_id}?done=ended", request)
    return web.redirect(f"/jobs/{job_id}?done=cancel", request)


@router.get("/jobs/{job_id:uuid}/diagnostics.csv")
def diagnostics_csv(
    request: Request,
    job_id: uuid.UUID,
    viewer: web.SignedIn,
    reason: Annotated[str, Query(max_length=64)] = "",
) -> Response:
    """The job's diagnostics as the API's `format=csv` answers them (its writer, masked)."""
    service = web.context(request).service
    report = jobs.diagnostics(service, viewer.tenant_id, job_id, reason=reason or None)
    sink = io.StringIO()
    jobs.write_csv(report.entries, sink)
    return Response(
        sink.getvalue(),
        media_type="text/csv; charset=utf-8",
        headers={
            **web.SECURITY_HEADERS,
            "Content-Disposition": f'attachment; filename="diagnostics-{job_id}.csv"',
        },
    )


def form_text(form: FormData, name: str) -> str:
    """A form field as text ('' when absent or a file)."""
    value = form.get(name)
    return value.strip() if isinstance(value, str) else ""
