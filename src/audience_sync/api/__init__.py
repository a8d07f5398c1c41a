"""The REST API: a FastAPI app with routers per resource, API-key auth and one error mapping."""

from __future__ import annotations

from audience_sync.api.app import create_app

__all__ = ["create_app"]
