"""`audience-sync serve`: the API and the embedded scheduler in one process."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Annotated

import typer
import uvicorn

from audience_sync import demo
from audience_sync.api import create_app
from audience_sync.cli.common import Context, app, context, friendly_errors, migrated_context, out
from audience_sync.domain.models import SyncOperation
from audience_sync.sandbox import SandboxSettings
from audience_sync.sandbox import create_app as create_sandbox_app
from audience_sync.scheduler.tick import run_scheduler
from audience_sync.sources import demo as demo_data
from audience_sync.sources.importer import import_profiles
from audience_sync.store import db
from audience_sync.store.repositories import ApiKeyRepository, TenantRepository
from audience_sync.sync.runner import SyncService
from audience_sync.sync.service import build_service

DEMO_TENANT = "demo"

SCHEDULER_GRACE_SECONDS = 10  # a tick still running after this is cancelled; reaping resumes it


@app.command("serve")
@friendly_errors
def serve(
    host: Annotated[str, typer.Option(help="Interface to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.", min=1, max=65535)] = 8000,
    demo_mode: Annotated[
        bool,
        typer.Option(
            "--demo",
            help="Load the demo data into a 'demo' tenant, connect all four platforms to a "
            "built-in sandbox (mounted at /sandbox), create and sync an audience on each.",
        ),
    ] = False,
) -> None:
    """Serve the REST API (docs at /docs) with the scheduler running in the same process."""
    if demo_mode:
        ctx = context()
        db.upgrade(ctx.engine)
    ctx = migrated_context()
    if not ctx.settings.public_url:  # download links point where this process listens
        shown = "127.0.0.1" if host in ("0.0.0.0", "::", "") else host  # noqa: S104
        ctx.settings.public_url = f"http://{'[' + shown + ']' if ':' in shown else shown}:{port}"
    service = build_service(ctx.settings, ctx.engine)
    sandbox = None
    if demo_mode:
        sandbox = create_sandbox_app(SandboxSettings(processing_seconds=0))
        service = demo.sandbox_service(service, sandbox)
    api = create_app(ctx.settings, ctx.engine, service)
    if sandbox is not None:
        api.mount("/sandbox", sandbox)
    # log_config=None: uvicorn logs through our handlers (stderr, JSON in production); its
    # access log is replaced by the app's, which leaves out query strings (signed links).
    config = uvicorn.Config(api, host=host, port=port, log_config=None, access_log=False)
    server = uvicorn.Server(config)
    # With a broker, syncs run on `audience-sync worker`s and the tick comes from `beat`.
    embedded = not ctx.settings.broker_url
    where = (
        f"scheduler every {ctx.settings.scheduler_tick_seconds} s"
        if embedded
        else "syncs sent to the Celery workers (run `audience-sync worker` and `beat`)"
    )
    out.print(
        f"Audience Sync API on http://{host}:{port} (docs: /docs); {where}. Ctrl-C stops.",
        highlight=False,
    )

    async def main() -> None:
        if demo_mode:
            await _prepare_demo(ctx, service, f"http://{host}:{port}")
        stop = asyncio.Event()
        scheduler = asyncio.create_task(run_scheduler(service, stop)) if embedded else None
        try:
            await server.serve()
        finally:
            stop.set()
            if scheduler is not None:
                await _stop(scheduler)

    try:
        asyncio.run(main())
    except KeyboardInterrupt:  # uvicorn re-raises the Ctrl-C it handled: a normal stop
        out.print("Stopped.")


async def _stop(scheduler: asyncio.Task[None]) -> None:
    try:
        await asyncio.wait_for(scheduler, SCHEDULER_GRACE_SECONDS)
    except TimeoutError:
        scheduler.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await scheduler


async def _prepare_demo(ctx: Context, service: SyncService, url: str) -> None:
    """Demo data in a 'demo' tenant, four sandbox-connected audiences, their first syncs."""
    with db.transaction(ctx.factory) as session:
        tenants = TenantRepository(session)
        tenant = tenants.by_slug(DEMO_TENANT) or tenants.create(DEMO_TENANT, "Demo tenant")
        tenant_id = tenant.id
        key = ApiKeyRepository(session).issue(tenant_id, name="serve --demo")
    files = demo_data.write_demo_files(ctx.settings.var_dir / "demo")
    import_profiles(ctx.factory, files.profiles, tenant=DEMO_TENANT)
    for name, path in files.segments.items():
        import_profiles(ctx.factory, path, tenant=DEMO_TENANT, segment=name)
    audiences = demo.setup_audiences(service, tenant_id)
    for platform, audience_id in audiences.items():
        job = await demo.sync(service, tenant_id, audience_id, SyncOperation.CREATE)
        out.print(
            f"{platform.value}: {demo.PLAN[platform]} — create {job.status.value}, "
            f"{job.profiles_added:,} added",
            highlight=False,
        )
    out.print(f"Demo tenant API key (shown once): {key}", highlight=False)
    out.print(
        f"Try: curl -H 'Authorization: Bearer {key}' {url}/api/v1/audiences   "
        f"· sandbox: {url}/sandbox/_sandbox/audiences?identifiers=false",
        highlight=False,
    )
