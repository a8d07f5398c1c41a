"""The dashboard's pages, one module each; `PAGES` lists their routers (mounted at `/`)."""

from __future__ import annotations

from fastapi import APIRouter

from audience_sync.dashboard.pages import audience, audiences, jobs

PAGES: tuple[APIRouter, ...] = (
    audiences.router,
    audience.router,
    jobs.router,
)
