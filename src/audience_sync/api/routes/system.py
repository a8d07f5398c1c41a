"""Operations: `/healthz` and `/metrics`, both without an API key."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError

from audience_sync.api.deps import Ctx

router = APIRouter(tags=["system"])


@router.get("/healthz")
def healthz(ctx: Ctx) -> JSONResponse:
    """200 when the database answers, 503 otherwise."""
    try:
        # Autocommit: the one statement, without a BEGIN before it and a ROLLBACK after.
        with ctx.engine.connect() as connection:
            connection.execution_options(isolation_level="AUTOCOMMIT")
            connection.execute(text("SELECT 1"))
    except SQLAlchemyError:
        return JSONResponse({"status": "unavailable", "database": "unreachable"}, 503)
    return JSONResponse({"status": "ok", "database": "ok"})


@router.get("/metrics", response_class=Response)
def metrics(ctx: Ctx) -> Response:
    """Prometheus text format: syncs by platform and status, profiles, durations, retries."""
    return Response(generate_latest(ctx.registry), media_type=CONTENT_TYPE_LATEST)
