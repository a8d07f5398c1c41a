"""`create_app(settings, engine=None)`: the FastAPI app, wired from one settings object."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager

from fastapi import APIRouter, Depends, FastAPI
from sqlalchemy import Engine

from audience_sync.api import errors
from audience_sync.api.access import AccessLog
from audience_sync.api.deps import authenticated_tenant
from audience_sync.api.limits import RequestGate
from audience_sync.api.routes import (
    alerts,
    audiences,
    connections,
    exports,
    flags,
    segments,
    system,
)
from audience_sync.api.state import ApiContext, default_launcher
from audience_sync.config import Settings
from audience_sync.services.database import open_engine, sessions
from audience_sync.services.launcher import JobLauncher
from audience_sync.sync.runner import SyncService
from audience_sync.sync.service import build_service

API_PREFIX = "/api/v1"


def create_app(
    settings: Settings,
    engine: Engine | None = None,
    service: SyncService | None = None,
    launcher: JobLauncher | None = None,
    extensions: Sequence[Callable[[FastAPI], None]] = (),
) -> FastAPI:
    """The API. `engine` defaults to the settings' database (migrated beforehand); `service`
    (the sync engine) defaults to `build_service` — tests pass one pointed at the sandbox.
    `launcher` starts the jobs the API queues: give the process's own to share its concurrency
    limit with a scheduler running beside the app (default: `state.default_launcher`).
    `extensions` mount more on the app before the access log wraps it (the dashboard:
    `dashboard.site.create_site`)."""
    engine = engine or open_engine(settings)
    service = service or build_service(settings, engine)
    launcher = launcher or default_launcher(settings, service)
    context = ApiContext(settings, engine, sessions(engine), service, launcher)

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        yield
        await context.launcher.close()

    app = FastAPI(
        title="Audience Sync",
        version="1",
        summary="Push CDP segments to Meta, Google, TikTok and Snapchat as custom audiences.",
        lifespan=lifespan,
    )
    app.state.context = context
    # Innermost of the three: the gate's own failures (a database down during the key lookup)
    # are contained as 500s, and its 401/413/422 answers reach the access log.
    app.add_middleware(
        RequestGate,
        factory=context.factory,
        max_request_bytes=settings.max_request_bytes,
        prefix=API_PREFIX,
    )
    errors.install(app)

    api = APIRouter(prefix=API_PREFIX, dependencies=[Depends(authenticated_tenant)])
    for module in (segments, connections, audiences, flags, exports, alerts):
        api.include_router(module.router)
    app.include_router(api)
    app.include_router(exports.downloads)
    app.include_router(system.router)
    for extend in extensions:
        extend(app)
    app.add_middleware(AccessLog)
    return app
