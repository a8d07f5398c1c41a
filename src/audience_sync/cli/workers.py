"""`audience-sync worker` and `audience-sync beat`: the distributed mode."""

from __future__ import annotations

import os
from typing import Annotated

import typer

from audience_sync.cli.common import app, friendly_errors, migrated_context, out

# `scheduler.distributed` (Celery, ~0.1 s to import) is imported by these commands only.


@app.command("worker")
@friendly_errors
def worker(
    concurrency: Annotated[
        int | None,
        typer.Option(
            help="Syncs run at once (worker processes). Default: the cores, at most "
            "AUDIENCE_SYNC_MAX_CONCURRENT_SYNCS.",
            min=1,
        ),
    ] = None,
    pool: Annotated[
        str, typer.Option(help="Celery pool: prefork (processes), threads or solo.")
    ] = "prefork",
) -> None:
    """Run sync jobs sent by `audience-sync beat` and the API (needs AUDIENCE_SYNC_BROKER_URL)."""
    from audience_sync.scheduler.distributed import broker_label, make_celery, start, worker_argv

    ctx = migrated_context()
    celery = make_celery(ctx.settings)
    ctx.engine.dispose()  # the worker processes open their own connections (never inherited)
    processes = concurrency or min(os.cpu_count() or 1, ctx.settings.max_concurrent_syncs)
    out.print(
        f"Sync worker on {broker_label(ctx.settings)} (queue {ctx.settings.celery_queue!r}), "
        f"{processes} at once. Ctrl-C stops once the running syncs end; twice, at once (they "
        "resume from their last confirmed batch).",
        highlight=False,
    )
    start(celery, worker_argv(ctx.settings, processes, pool))


@app.command("beat")
@friendly_errors
def beat() -> None:
    """Send the scheduler's tick every AUDIENCE_SYNC_SCHEDULER_TICK_SECONDS to the workers
    (needs AUDIENCE_SYNC_BROKER_URL). Several beats at once are safe."""
    from audience_sync.scheduler.distributed import beat_argv, broker_label, make_celery, start

    ctx = migrated_context()
    celery = make_celery(ctx.settings)
    ctx.engine.dispose()
    out.print(
        f"Scheduler beat on {broker_label(ctx.settings)}: a tick every "
        f"{ctx.settings.scheduler_tick_seconds} s; Ctrl-C stops.",
        highlight=False,
    )
    start(celery, beat_argv(ctx.settings))
