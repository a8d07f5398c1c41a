"""The demo's sync story, told in the terminal: create, churn, update, replace, export."""

from __future__ import annotations

import asyncio
from pathlib import Path

from rich.table import Table

from audience_sync import demo
from audience_sync.cli.common import Context, out
from audience_sync.connectors.registry import platform_spec
from audience_sync.domain.models import SyncOperation, SyncPlatform, SyncStatus
from audience_sync.services import tenants
from audience_sync.services.jobs import Job
from audience_sync.sync.service import build_service


def tell_story(ctx: Context, tenant: str, folder: Path) -> bool:
    """Run the story; True when every job completed."""
    service = demo.sandbox_service(build_service(ctx.settings, ctx.engine))
    tenant_id = tenants.tenant_id(ctx.factory, tenant)
    audiences = demo.setup_audiences(service, tenant_id)
    out.print("Connected Meta, Google, TikTok and Snapchat to the in-process sandbox.")
    jobs: list[tuple[SyncPlatform, Job]] = []

    async def story() -> demo.Churn:
        for platform, audience_id in audiences.items():
            job = await demo.sync(service, tenant_id, audience_id, SyncOperation.CREATE)
            jobs.append((platform, job))
        churned = demo.churn(service, tenant_id, tenant, folder)
        out.print(f"Churn: {churned.describe()}.", highlight=False)
        for platform, audience_id in audiences.items():
            job = await demo.sync(service, tenant_id, audience_id, SyncOperation.UPDATE)
            jobs.append((platform, job))
        meta = audiences[SyncPlatform.META]
        jobs.append(
            (SyncPlatform.META, await demo.sync(service, tenant_id, meta, SyncOperation.REPLACE))
        )
        return churned

    churned = asyncio.run(story())
    path, written = demo.export_segment(service, tenant_id, folder)
    demo.restore(service, tenant_id, tenant, folder, churned)
    _print_jobs(jobs)
    out.print(
        f"Exported Newsletter Subscribers hashed for Google: {written.profile_count:,} profiles, "
        f"{written.file_size_bytes:,} bytes in {path}.",
        highlight=False,
    )
    return all(job.status is SyncStatus.COMPLETED for _, job in jobs)


def _print_jobs(jobs: list[tuple[SyncPlatform, Job]]) -> None:
    table = Table(
        "Platform", "Segment", "Operation", "Status", "Sent", "Added", "Removed", "Failed",
        "Match rate", "ms", "Platform", title="Sync jobs",
    )  # fmt: skip
    for platform, job in jobs:
        rate = f"{job.match_rate:.0%}" if job.match_rate is not None else "—"
        table.add_row(
            platform_spec(platform).display_name,
            demo.PLAN[platform],
            job.operation.value,
            job.status.value
            if not job.error_message
            else f"{job.status.value}: {job.error_message}",
            f"{job.profiles_sent:,}",
            f"{job.profiles_added:,}",
            f"{job.profiles_removed:,}",
            f"{job.profiles_failed:,}",
            rate,
            f"{job.duration_ms or 0:,}",
            "" if job.confirmation in (None, "none") else job.confirmation,
        )
    out.print(table)
    if any(job.confirmation == "processing" for _, job in jobs):
        out.print(
            "Google processes an upload after accepting it (30 minutes to 24 hours; the sandbox"
            " takes 30 minutes): the scheduler confirms it later and updates the job's figures"
            " (`audience-sync audiences jobs ID` shows the confirmation).",
            highlight=False,
        )
