"""The dashboard's pages, one module each; `PAGES` lists their routers (mounted at `/`)."""

from __future__ import annotations

from fastapi import APIRouter

from audience_sync.dashboard.pages import (
    alerts,
    audience,
    audiences,
    connections,
    jobs,
    new_audience,
    segments,
    settings,
)

# `new_audience` before any page of `/audiences/{id}`: its fixed path must match first.
PAGES: tuple[APIRouter, ...] = (
    new_audience.router,
    audiences.router,
    audience.router,
    jobs.router,
    connections.router,
    segments.router,
    settings.router,
    alerts.router,
)
