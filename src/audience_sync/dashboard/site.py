"""`create_site`: what `audience-sync serve` answers — the API, with the dashboard at `/`."""

from __future__ import annotations

from fastapi import FastAPI
from sqlalchemy import Engine

from audience_sync.api import create_app
from audience_sync.config import Settings
from audience_sync.dashboard import install
from audience_sync.services.launcher import JobLauncher
from audience_sync.sync.context import SyncService


def create_site(
    settings: Settings,
    engine: Engine | None = None,
    service: SyncService | None = None,
    launcher: JobLauncher | None = None,
) -> FastAPI:
    """The API app (`api.create_app`, same arguments) with the dashboard's pages mounted."""
    return create_app(settings, engine, service, launcher, extensions=(install,))
