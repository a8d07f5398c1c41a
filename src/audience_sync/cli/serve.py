"""`audience-sync serve`: the API and the embedded scheduler in one process (DESIGN.md §7)."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Annotated

import typer
import uvicorn

from audience_sync.api import create_app
from audience_sync.cli.common import app, friendly_errors, migrated_context, out
from audience_sync.scheduler.tick import run_scheduler
from audience_sync.sync.service import build_service

SCHEDULER_GRACE_SECONDS = 10  # a tick still running after this is cancelled; reaping resumes it


@app.command("serve")
@friendly_errors
def serve(
    host: Annotated[str, typer.Option(help="Interface to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.", min=1, max=65535)] = 8000,
) -> None:
    """Serve the REST API (docs at /docs) with the scheduler running in the same process."""
    ctx = migrated_context()
    service = build_service(ctx.settings, ctx.engine)
    api = create_app(ctx.settings, ctx.engine, service)
    # log_config=None: uvicorn logs through our handlers (stderr, JSON in production); its
    # access log is replaced by the app's, which leaves out query strings (signed links).
    config = uvicorn.Config(api, host=host, port=port, log_config=None, access_log=False)
    server = uvicorn.Server(config)
    out.print(
        f"Audience Sync API on http://{host}:{port} (docs: /docs); scheduler every "
        f"{ctx.settings.scheduler_tick_seconds} s. Ctrl-C stops.",
        highlight=False,
    )

    async def main() -> None:
        stop = asyncio.Event()
        scheduler = asyncio.create_task(run_scheduler(service, stop))
        try:
            await server.serve()
        finally:
            stop.set()
            try:
                await asyncio.wait_for(scheduler, SCHEDULER_GRACE_SECONDS)
            except TimeoutError:
                scheduler.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await scheduler

    try:
        asyncio.run(main())
    except KeyboardInterrupt:  # uvicorn re-raises the Ctrl-C it handled: a normal stop
        out.print("Stopped.")
