"""The RFC 6749 token endpoint Google and Snapchat share: a form POST with `grant_type`
`authorization_code` or `refresh_token`, client credentials in the form or as HTTP Basic, JSON
answers, and `{"error", "error_description"}` refusals (RFC 6749 §5.2)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from fastapi import Request
from starlette.responses import Response

from audience_sync.sandbox.dialect import json_response, sandbox_state
from audience_sync.sandbox.oauth import (
    AuthCode,
    CodeRefusedError,
    basic_client,
    find_app,
    redeem,
    secret_ok,
)
from audience_sync.sandbox.settings import SANDBOX_REFRESH_TOKEN, OAuthApp
from audience_sync.sandbox.state import IssuedToken, SandboxState


def oauth_error(error: str, description: str, status: int = 400) -> Response:
    """RFC 6749 §5.2 error body, as Google's and Snapchat's token endpoints send it."""
    return json_response({"error": error, "error_description": description}, status)


@dataclass(frozen=True)
class FormTokenEndpoint:
    """One platform's token endpoint: its wording of each refusal and what it hands out."""

    platform: str
    ttl: Callable[[SandboxState], float]
    default_scopes: tuple[str, ...]
    """Scopes of the fixed (unbound) refresh tokens' access tokens."""
    code_errors: dict[str, tuple[str, str]]
    """`CodeRefusedError.reason` → (error, description)."""
    unknown_client: str
    bad_secret: str
    bad_refresh: str
    refresh_in_refresh_answer: bool
    """Whether a refresh answer carries the refresh token again (Snapchat) or not (Google)."""
    gives_refresh: Callable[[SandboxState, AuthCode], bool] = lambda state, code: True

    async def __call__(self, request: Request) -> Response:
        state = sandbox_state(request)
        form = await request.form()
        fields = {k: v for k, v in form.items() if isinstance(v, str)}
        client_id, secret = basic_client(request) or (
            fields.get("client_id", ""),
            fields.get("client_secret", ""),
        )
        grant_type = fields.get("grant_type")
        if grant_type == "refresh_token":
            return self._refresh(state, fields, client_id, secret)
        if grant_type != "authorization_code":
            return oauth_error("unsupported_grant_type", f"Invalid grant_type: {grant_type or ''}")
        app, refused = self._client(state, client_id, secret)
        if refused is not None:
            return refused
        assert app is not None
        try:
            code = redeem(
                state,
                self.platform,
                fields.get("code"),
                app.client_id,
                fields.get("redirect_uri"),
                fields.get("code_verifier"),
            )
        except CodeRefusedError as problem:
            return oauth_error(*self.code_errors[problem.reason])
        return self._answer(state, app.client_id, code.scopes, self.gives_refresh(state, code))

    def _client(
        self, state: SandboxState, client_id: str, secret: str
    ) -> tuple[OAuthApp | None, Response | None]:
        if not client_id:
            return None, oauth_error("invalid_request", "Missing required parameter: client_id")
        app = find_app(state, self.platform, client_id)
        if app is None:
            return None, oauth_error("invalid_client", self.unknown_client, 401)
        if not secret_ok(app, secret):
            return None, oauth_error("invalid_client", self.bad_secret, 401)
        return app, None

    def _refresh(
        self, state: SandboxState, fields: dict[str, str], client_id: str, secret: str
    ) -> Response:
        for name, value in (("client_id", client_id), ("client_secret", secret)):
            if not value:
                return oauth_error("invalid_request", f"Missing required parameter: {name}")
        value = fields.get("refresh_token", "")
        if not value:
            return oauth_error("invalid_request", "Missing required parameter: refresh_token")
        grant = state.tokens.refresh_grant(self.platform, value)
        if grant is None:  # unknown or revoked, whoever asks [INFER: checked before the client]
            state.tokens.reused(self.platform, value)
            return oauth_error("invalid_grant", self.bad_refresh)
        # The fixed `sandbox-refresh-token` and `/_sandbox/tokens` ones belong to no app: any
        # client credentials refresh them, as before OAuth apps existed (scripts, the suite).
        if grant.client_id is None:
            return self._refreshed(state, grant, value, find_app(state, self.platform, client_id))
        app, refused = self._client(state, client_id, secret)
        if refused is not None:
            return refused
        if app is None or grant.client_id != app.client_id:
            return oauth_error("invalid_grant", self.bad_refresh)
        return self._refreshed(state, grant, value, app)

    def _refreshed(
        self, state: SandboxState, grant: IssuedToken, refresh: str, app: OAuthApp | None
    ) -> Response:
        scopes = grant.scopes or self.default_scopes
        ttl = self.ttl(state)
        rotates = self.platform in state.settings.rotate_refresh_tokens
        if rotates and refresh != SANDBOX_REFRESH_TOKEN:
            refresh = state.tokens.rotate(self.platform, refresh)
        token = state.tokens.issue(
            self.platform,
            ttl,
            state.now(),
            client_id=grant.client_id,
            scopes=scopes,
            refresh_token=refresh,
        )
        body: dict[str, Any] = {
            "access_token": token,
            "expires_in": int(ttl),
            "scope": " ".join(scopes),
            "token_type": "Bearer",
        }
        if self.refresh_in_refresh_answer or grant.client_id is None or rotates:
            body["refresh_token"] = refresh
        return json_response(body)

    def _answer(
        self, state: SandboxState, client_id: str, scopes: tuple[str, ...], refresh: bool
    ) -> Response:
        ttl = self.ttl(state)
        refresh_token = (
            state.tokens.issue_refresh(self.platform, client_id=client_id, scopes=scopes)
            if refresh
            else None
        )
        token = state.tokens.issue(
            self.platform,
            ttl,
            state.now(),
            client_id=client_id,
            scopes=scopes,
            refresh_token=refresh_token,
        )
        body: dict[str, Any] = {
            "access_token": token,
            "expires_in": int(ttl),
            "scope": " ".join(scopes),
            "token_type": "Bearer",
        }
        if refresh_token:
            body["refresh_token"] = refresh_token
        return json_response(body)
