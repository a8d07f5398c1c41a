"""`audience-sync serve`: the API, with its syncs and scheduler in a worker process of their own
(or on the Celery workers, with a broker)."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import sys
from typing import Annotated

import typer
import uvicorn
from fastapi import FastAPI

from audience_sync import demo
from audience_sync.cli.common import Context, app, context, friendly_errors, migrated_context, out
from audience_sync.dashboard.site import create_site
from audience_sync.domain.models import SyncOperation, SyncStatus
from audience_sync.sandbox import SandboxSettings
from audience_sync.sandbox import create_app as create_sandbox_app
from audience_sync.scheduler.embedded import WorkerProcess, run_worker
from audience_sync.services import database, tenants
from audience_sync.services.launcher import QueuedLauncher
from audience_sync.sources import demo as demo_data
from audience_sync.sources.importer import import_profiles
from audience_sync.sync.runner import SyncService
from audience_sync.sync.service import build_service

DEMO_TENANT = "demo"
WORKER_COMMAND = "embedded-worker"


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
    """Serve the REST API (docs at /docs); syncs and the scheduler run in a worker process."""
    if demo_mode:
        ctx = context()
        database.upgrade(ctx.engine)
    ctx = migrated_context()
    if not ctx.settings.public_url:  # download links point where this process listens
        shown = "127.0.0.1" if host in ("0.0.0.0", "::", "") else host  # noqa: S104
        ctx.settings.public_url = f"http://{'[' + shown + ']' if ':' in shown else shown}:{port}"
    if demo_mode:
        demo.use_sandbox_oauth(ctx.settings, ctx.settings.effective_public_url)
    service = build_service(ctx.settings, ctx.engine)
    sandbox = None
    if demo_mode:
        sandbox = create_sandbox_app(SandboxSettings(processing_seconds=0))
        service = demo.sandbox_service(service, sandbox)
    api = create_site(ctx.settings, ctx.engine, service)
    if sandbox is not None:
        api.mount("/sandbox", sandbox)
    # log_config=None: uvicorn logs through our handlers (stderr, JSON in production); its
    # access log is replaced by the app's, which leaves out query strings (signed links).
    config = uvicorn.Config(api, host=host, port=port, log_config=None, access_log=False)
    server = uvicorn.Server(config)
    # With a broker, syncs run on `audience-sync worker`s and the tick comes from `beat`.
    worker = None
    if not ctx.settings.broker_url:
        # The API only queues jobs: the worker process runs them (the API stays responsive).
        api.state.context.launcher = QueuedLauncher()
        command = [sys.executable, "-m", "audience_sync.cli", WORKER_COMMAND]
        if demo_mode:
            command += ["--demo-sandbox", f"{_local_url(host, port)}/sandbox"]
        worker = WorkerProcess(command, ctx.settings.shutdown_grace_seconds)
    where = (
        f"syncs in a worker process, scheduler every {ctx.settings.scheduler_tick_seconds} s"
        if worker is not None
        else "syncs sent to the Celery workers (run `audience-sync worker` and `beat`)"
    )
    out.print(
        f"Audience Sync API and dashboard on http://{host}:{port} (API docs: /docs); {where}. "
        "Ctrl-C stops.",
        highlight=False,
    )

    async def main() -> None:
        key = None
        if demo_mode:  # before the worker starts: these first syncs run here, before serving
            assert sandbox is not None
            key = await _prepare_demo(ctx, service, sandbox)
        watching = None
        if worker is not None:
            worker.start()
            watching = asyncio.create_task(worker.watch())
        greeting = asyncio.create_task(_greet(server, _local_url(host, port), key))
        try:
            await server.serve()
        finally:
            for task in (watching, greeting):
                if task is not None:
                    task.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await task

    # uvicorn handles SIGTERM, then raises it again once it has stopped: with the default
    # action the process would die there, before the worker is stopped. As an interrupt, it
    # runs the `finally` below.
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    try:
        asyncio.run(main())
    except KeyboardInterrupt:  # uvicorn re-raises the Ctrl-C (or SIGTERM) it handled
        pass
    finally:
        if worker is not None:
            out.print("Stopping: running syncs stop at their next checkpoint…", highlight=False)
            worker.stop()
    out.print("Stopped.")


@app.command(WORKER_COMMAND, hidden=True)
@friendly_errors
def embedded_worker(
    demo_sandbox: Annotated[
        str | None, typer.Option(help="serve --demo: the sandbox's URL (under the API).")
    ] = None,
) -> None:
    """`serve`'s sync worker (started by `serve`): runs due syncs and the scheduler's upkeep
    until SIGTERM, then lets running syncs reach a checkpoint."""
    ctx = migrated_context()
    if demo_sandbox:  # its connectors reach the sandbox at `http://sandbox` as serve's do
        demo.use_sandbox_oauth(ctx.settings, demo_sandbox.removesuffix("/sandbox"))
    service = build_service(ctx.settings, ctx.engine)
    if demo_sandbox:
        service = demo.served_sandbox_service(service, demo_sandbox)
    run_worker(service)


def _local_url(host: str, port: int) -> str:
    """Where a process on this machine reaches the server listening on `host`."""
    if host in ("", "0.0.0.0"):  # noqa: S104 (a client address, not a bind)
        host = "127.0.0.1"
    elif host == "::":
        host = "::1"
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


async def _prepare_demo(ctx: Context, service: SyncService, sandbox: FastAPI) -> str:
    """Demo data in a 'demo' tenant, four sandbox-connected audiences, a history of syncs on
    each (create, then rounds of churn and update); returns the tenant's new API key."""
    tenant_id = tenants.ensure_tenant(ctx.factory, DEMO_TENANT, "Demo tenant")
    key = tenants.issue_key(ctx.factory, DEMO_TENANT, name="serve --demo")
    folder = ctx.settings.var_dir / "demo"
    files = demo_data.write_demo_files(folder)
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
    later = await demo.history(service, tenant_id, DEMO_TENANT, folder, audiences, sandbox)
    done = sum(job.status is SyncStatus.COMPLETED for _, job in later)
    out.print(
        f"Then {len(later) // len(audiences)} rounds of churn, each synced to every audience "
        f"({done} of {len(later)} updates completed), the sandbox matching a little less each "
        "round: the dashboard's charts have a history.",
        highlight=False,
    )
    return key


async def _greet(server: uvicorn.Server, url: str, key: str | None) -> None:
    """Once the server answers: where the dashboard is and (demo) the key to sign in with."""
    while not server.started:
        await asyncio.sleep(0.05)
    lines = [f"Dashboard: {url}/   (API: {url}/api/v1, docs: {url}/docs)"]
    if key is not None:
        lines += [
            f"Sign in with this key: {key}",
            "  (the demo tenant's API key, shown once; it is also the API's bearer token:",
            f"  curl -H 'Authorization: Bearer {key}' {url}/api/v1/audiences",
            f"  · the platform sandbox: {url}/sandbox/_sandbox/audiences?identifiers=false)",
        ]
    out.print("\n".join(lines) + "\nCtrl-C stops.", highlight=False)
