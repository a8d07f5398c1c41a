"""Every error the API answers, in one shape: `{"error": {"code", "message", "details"}}`.

Our error tree maps by what the caller can do: not found → 404, a refused request → 422, a
platform that refused or failed → 502/503. Pydantic's validation errors name the field and the
rule, never the rejected input (it may be a token or an email). Anything unexpected is a 500 whose
log line carries the exception's type and traceback frames, never its message (SQL errors quote
their parameters, which may be identifiers) — see `ContainUnexpected`.
"""

from __future__ import annotations

import logging
import traceback
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from audience_sync.exceptions import (
    AudienceSyncError,
    AuthExpiredError,
    ConfigurationError,
    ConflictError,
    FeatureDisabledError,
    FieldError,
    NotFoundError,
    PlatformRequestError,
    RetryableError,
    ValidationError,
)
from audience_sync.log import escape_control

log = logging.getLogger(__name__)

HTTP_CODES = {
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "payload_too_large",
    415: "unsupported_media_type",
}


class ApiError(Exception):
    """An answer decided by the API layer itself (auth, flags, conflicts, field rules)."""

    def __init__(
        self,
        status_code: int,
        code: str,
        message: str,
        details: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status_code = status_code
        self.code = code
        self.message = message
        self.details = details or {}
        self.headers = headers


def unauthorized(message: str) -> ApiError:
    return ApiError(401, "unauthorized", message, headers={"WWW-Authenticate": "Bearer"})


def conflict(code: str, message: str, **details: Any) -> ApiError:
    return ApiError(409, code, message, details)


def feature_disabled(flag: str, *, by_operator: bool = False) -> ApiError:
    """403 for a flag that is off: the tenant's own choice, or the operator's ceiling."""
    if by_operator:
        return ApiError(
            403,
            "feature_disabled",
            f"Feature flag {flag!r} is turned off by the operator of this service.",
            {"flag": flag, "source": "operator"},
        )
    return ApiError(
        403,
        "feature_disabled",
        f"Feature flag {flag!r} is off for this tenant.",
        {"flag": flag},
    )


def field_error(field: str, rule: str, message: str) -> ApiError:
    """A rule checked outside pydantic (it needs settings or the database), shaped like one."""
    return ApiError(
        422,
        "validation_error",
        f"Invalid request: {field}: {message}",
        {"errors": [{"field": field, "rule": rule, "message": message}]},
    )


def too_large(limit: int) -> ApiError:
    return ApiError(
        413,
        "payload_too_large",
        f"The request body is larger than {limit:,} bytes (AUDIENCE_SYNC_MAX_REQUEST_BYTES); "
        "send it in smaller batches.",
        {"max_bytes": limit},
    )


def body(code: str, message: str, details: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"error": {"code": code, "message": message, "details": details or {}}}


def respond(error: ApiError) -> JSONResponse:
    """The answer for an `ApiError` raised outside the routes (the request gate)."""
    return _respond(error.status_code, error.code, error.message, error.details, error.headers)


def _respond(
    status_code: int,
    code: str,
    message: str,
    details: dict[str, Any] | None = None,
    headers: dict[str, str] | None = None,
) -> JSONResponse:
    return JSONResponse(body(code, message, details), status_code=status_code, headers=headers)


def status_of(error: AudienceSyncError) -> tuple[int, str]:
    """HTTP status and error code for one of our errors."""
    if isinstance(error, NotFoundError):
        return 404, "not_found"
    if isinstance(error, AuthExpiredError):
        return 502, "platform_auth_expired"
    if isinstance(error, ValidationError):
        return 422, "invalid_request"
    if isinstance(error, PlatformRequestError):
        return 502, "platform_error"
    if isinstance(error, RetryableError):
        return 503, "platform_unavailable"
    if isinstance(error, ConfigurationError):
        return 500, "configuration_error"
    return 400, "error"


async def _api_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ApiError)
    return _respond(exc.status_code, exc.code, exc.message, exc.details, exc.headers)


def api_error_of(error: AudienceSyncError) -> ApiError | None:
    """The API's own answer for a service's refusal that has one (a flag off, a conflict, a
    field rule), else None."""
    if isinstance(error, FeatureDisabledError):
        return feature_disabled(error.flag, by_operator=error.by_operator)
    if isinstance(error, ConflictError):
        return conflict(error.code, error.message, **error.details)
    if isinstance(error, FieldError):
        return field_error(f"body.{error.field}", error.rule, error.message)
    return None


async def _our_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, AudienceSyncError)
    if (answer := api_error_of(exc)) is not None:
        return respond(answer)
    status_code, code = status_of(exc)
    headers = None
    if isinstance(exc, RetryableError) and exc.retry_after:
        headers = {"Retry-After": str(int(exc.retry_after))}
    details = {k: v for k, v in (("platform", exc.platform),) if v is not None}
    # `message`, not str(exc): the message is written for users; context travels in details.
    return _respond(status_code, code, exc.message, details, headers)


async def _validation_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    errors = [_field_problem(problem) for problem in exc.errors()]
    summary = "; ".join(f"{e['field']}: {e['message']}" for e in errors[:5])
    return _respond(422, "validation_error", f"Invalid request: {summary}", {"errors": errors})


def _field_problem(problem: Any) -> dict[str, Any]:
    """One pydantic problem as field, rule and message; the rejected input is never echoed."""
    found: dict[str, Any] = {
        "field": ".".join(str(part) for part in problem.get("loc", ())),
        "rule": str(problem.get("type", "invalid")),
        "message": str(problem.get("msg", "invalid value")),
    }
    context = problem.get("ctx") or {}
    plain = {
        k: v for k, v in context.items() if isinstance(v, str | int | float | bool) and k != "error"
    }
    if plain:
        found["constraint"] = plain
    return found


async def _http_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    code = HTTP_CODES.get(exc.status_code, "http_error")
    message = str(exc.detail) if exc.detail else code.replace("_", " ")
    return _respond(exc.status_code, code, message, None, dict(exc.headers or {}))


class ContainUnexpected:
    """Turns an unexpected exception into the 500 answer, logged without its message.

    Starlette's own catch-all answers but then re-raises, and the server logs the exception with
    its message; this middleware stops it first.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def tracked(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, receive, tracked)
        except Exception as exc:
            frames = "".join(traceback.format_tb(exc.__traceback__))
            log.error(
                "unhandled %s on %s %s\n%s",
                type(exc).__name__,
                escape_control(str(scope.get("method"))),
                escape_control(str(scope.get("path"))),
                frames,
            )
            if started:  # too late for an error answer; the client sees a cut response
                return
            response = _respond(
                500, "internal_error", "Internal error; the server log has the details."
            )
            await response(scope, receive, send)


def install(app: FastAPI) -> None:
    """Register the handlers on the app (the only place the API turns errors into responses)."""
    app.add_exception_handler(ApiError, _api_error)
    app.add_exception_handler(AudienceSyncError, _our_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_middleware(ContainUnexpected)
