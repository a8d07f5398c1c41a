"""Sign in with an API key, sign out."""

from __future__ import annotations

import hmac
import secrets
from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool

from audience_sync.dashboard import web
from audience_sync.services import sessions

router = APIRouter(include_in_schema=False)


@router.get("/login")
def login_page(request: Request, next: str = "/audiences") -> Response:
    if web.current_viewer(request) is not None:
        return web.redirect(_local(next))
    return _form(request, next)


@router.post("/login")
async def login(
    request: Request,
    api_key: Annotated[str, Form(max_length=200)] = "",
    csrf_token: Annotated[str, Form(max_length=200)] = "",
    next: Annotated[str, Form(max_length=2000)] = "/audiences",
) -> Response:
    expected = request.cookies.get(web.LOGIN_CSRF_COOKIE, "")
    if not expected or not hmac.compare_digest(csrf_token, expected):
        return _form(request, next, "This form expired. Paste your key again.", 403)
    if not api_key.strip():
        return _form(request, next, "Paste an API key.", 422)
    signed = await run_in_threadpool(sessions.sign_in, web.context(request).factory, api_key)
    if signed is None:
        return _form(request, next, "That key is not valid, or it was revoked.", 401)
    response = web.redirect(_local(next))
    response.set_cookie(
        web.SESSION_COOKIE,
        signed.token,
        max_age=int(sessions.LIFETIME.total_seconds()),
        httponly=True,
        samesite="lax",
        secure=web.secure_cookies(request),
    )
    response.delete_cookie(web.LOGIN_CSRF_COOKIE)
    return response


@router.post("/logout")
async def logout(request: Request, form: web.CheckedForm) -> Response:
    token = request.cookies.get(web.SESSION_COOKIE)
    if token:
        await run_in_threadpool(sessions.sign_out, web.context(request).factory, token)
    response = web.redirect("/login", request)
    response.delete_cookie(web.SESSION_COOKIE)
    return response


def _form(request: Request, next_url: str, error: str | None = None, status: int = 200) -> Response:
    token = secrets.token_urlsafe(32)
    response = web.render(
        request,
        "login.html",
        None,
        status_code=status,
        error=error,
        csrf=token,
        next_url=_local(next_url),
    )
    response.set_cookie(
        web.LOGIN_CSRF_COOKIE,
        token,
        max_age=3600,
        httponly=True,
        samesite="strict",
        secure=web.secure_cookies(request),
    )
    return response


def _local(url: str) -> str:
    """Only a path of this site: `next` must never send a signed-in user elsewhere."""
    if not url.startswith("/") or url.startswith("//") or "\\" in url:
        return "/audiences"
    return url
