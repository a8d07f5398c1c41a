"""Connecting an ad account by OAuth: start a flow (the platform's authorization URL), then take
the platform's redirect back (exchange the code, store the tokens encrypted, find the ad
accounts). Each platform's flow as it documents it: docs/connections.md.

The protocol pieces come from Authlib (`state` and PKCE values, the authorization URL and the
token request body, RFC 6749 / 7636). The calls themselves go through httpx with the service's
transport (`SyncService.http_transport`: the sandbox in tests and the demo): Authlib's httpx
client warns that it wants `httpx2` (the suite turns warnings into errors) and cannot carry
another transport per call, and TikTok's JSON token call is not RFC 6749 at all.

A `state` is random, used once, lives `oauth_state_ttl_seconds`, and is stored only as its
SHA-256 with its tenant, the dashboard session that started it (None for a flow started with
an API key) and the PKCE verifier (encrypted). The callback refuses a state it does not know,
one already used, expired, or started by another session or tenant — before any exchange.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any
from urllib.parse import urlencode

import httpx
from authlib.common.security import generate_token
from authlib.oauth2.rfc6749.parameters import prepare_grant_uri, prepare_token_request
from authlib.oauth2.rfc7636 import create_s256_code_challenge

from audience_sync.config import Settings
from audience_sync.connectors.access import AdAccount, NotSupportedError
from audience_sync.connectors.google.connector import ADS_SCOPE, DATA_MANAGER_SCOPE
from audience_sync.connectors.registry import platform_spec
from audience_sync.domain.models import SyncPlatform
from audience_sync.exceptions import AudienceSyncError, ValidationError
from audience_sync.services import connections
from audience_sync.store.db import transaction
from audience_sync.store.oauth_states import OAuthStateRepository, digest
from audience_sync.store.repositories import ConnectionRepository
from audience_sync.store.tables import OAuthState
from audience_sync.sync.context import SyncService

log = logging.getLogger(__name__)

TIMEOUT = 30.0


@dataclass(frozen=True, slots=True)
class Flow:
    """One platform's authorization request, as data."""

    scopes: tuple[str, ...]
    scope_separator: str = " "
    pkce: bool = False
    extra: dict[str, str] = field(default_factory=dict)


FLOWS: dict[SyncPlatform, Flow] = {
    # Facebook Login's manual flow: comma-separated permissions; PKCE only on the OIDC flow
    # Meta marks "in testing", so not here [SEEN: manual-flow guide, oidc-token guide].
    SyncPlatform.META: Flow(("ads_management", "business_management"), scope_separator=","),
    # Offline access for a refresh token, `prompt=consent` so one comes every time (Google
    # sends it only at the first consent otherwise), PKCE S256 [SEEN: web-server guide].
    SyncPlatform.GOOGLE: Flow(
        (DATA_MANAGER_SCOPE, ADS_SCOPE),
        pkce=True,
        extra={"access_type": "offline", "prompt": "consent", "include_granted_scopes": "true"},
    ),
    # TikTok: the scopes are chosen when the app is registered, not in the URL [SEEN:
    # docs/platforms/tiktok.md §3.2].
    SyncPlatform.TIKTOK: Flow(()),
    SyncPlatform.SNAPCHAT: Flow(("snapchat-marketing-api",)),
}


class OAuthRefusedError(ValidationError):
    """The flow cannot finish: a refused state, the user's or the platform's refusal. The
    message is for the person in the browser, in plain words (never a code or token)."""


@dataclass(frozen=True, slots=True)
class Tokens:
    """What a code exchange gave: never logged, never shown."""

    access_token: str
    refresh_token: str | None = None
    expires_in: int | None = None
    scopes: tuple[str, ...] = ()
    accounts: tuple[str, ...] = ()  # TikTok's `advertiser_ids`

    def __repr__(self) -> str:
        return "Tokens(<redacted>)"


@dataclass(frozen=True, slots=True)
class Connected:
    platform: SyncPlatform
    ad_account_id: str
    accounts: list[AdAccount]


def redirect_uri(settings: Settings, platform: SyncPlatform) -> str:
    """Where the platform sends the browser back: registered with the platform's app."""
    return f"{settings.effective_public_url}/oauth/{platform.value}/callback"


def configured(settings: Settings, platform: SyncPlatform) -> bool:
    return platform in FLOWS and settings.oauth_client(platform.value) is not None


def start(
    service: SyncService, tenant_id: int, platform: SyncPlatform, session_token: str | None
) -> str:
    """Begin a flow for the tenant (and the dashboard session whose cookie token is given, or
    None for the API): the authorization URL to open in a browser."""
    settings = service.settings
    client = settings.oauth_client(platform.value)
    flow = FLOWS.get(platform)
    name = platform_spec(platform).display_name
    if client is None or flow is None:
        raise ValidationError(
            f"Connecting {name} by OAuth is not set up: the operator sets "
            f"AUDIENCE_SYNC_{platform.value.upper()}_CLIENT_ID and _CLIENT_SECRET "
            "(docs/connections.md). Pasting a token works meanwhile."
        )
    state = generate_token(48)
    verifier = generate_token(64) if flow.pkce else None
    redirect = redirect_uri(settings, platform)
    now = service.clock()
    with transaction(service.factory) as session:
        states = OAuthStateRepository(session)
        states.purge(now)
        states.add(
            state,
            OAuthState(
                tenant_id=tenant_id,
                platform=platform,
                session_hash=digest(session_token) if session_token else None,
                verifier_encrypted=(
                    service.cipher.encrypt({"code_verifier": verifier}) if verifier else None
                ),
                redirect_uri=redirect,
                created_at=now,
                expires_at=now + timedelta(seconds=settings.oauth_state_ttl_seconds),
            ),
        )
    return _authorization_url(settings, platform, flow, client[0], redirect, state, verifier)


def _authorization_url(
    settings: Settings,
    platform: SyncPlatform,
    flow: Flow,
    client_id: str,
    redirect: str,
    state: str,
    verifier: str | None,
) -> str:
    base = str(getattr(settings, f"{platform.value}_authorize_url"))
    if platform is SyncPlatform.TIKTOK:
        # TikTok names the client `app_id` and takes no `response_type`/`scope`: not RFC 6749.
        query = urlencode({"app_id": client_id, "state": state, "redirect_uri": redirect})
        return f"{base}?{query}"
    extra = dict(flow.extra)
    if verifier:
        extra |= {"code_challenge": create_s256_code_challenge(verifier)}
        extra |= {"code_challenge_method": "S256"}
    scope = flow.scope_separator.join(flow.scopes) or None
    url: str = prepare_grant_uri(base, client_id, "code", redirect, scope, state, **extra)
    return url


async def callback(
    service: SyncService,
    platform: SyncPlatform,
    params: Mapping[str, str],
    *,
    session_token: str | None,
    viewer_tenant: int | None,
) -> Connected:
    """Take the platform's redirect: the state checked and spent, the code exchanged, the
    tokens stored encrypted with their expiry and scopes, the ad accounts found. The
    connection's ad account is the one it had if the token still reaches it, else the first
    reached. `OAuthRefusedError` in plain words for every refusal."""
    name = platform_spec(platform).display_name
    row = _take_state(service, platform, params.get("state") or "", session_token, viewer_tenant)
    if params.get("error") or params.get("error_reason"):
        raise OAuthRefusedError(_denied(name, params))
    code = params.get("auth_code") or params.get("code")  # TikTok: `auth_code`
    if not code:
        raise OAuthRefusedError(f"{name} sent no authorization code back; try connecting again.")
    verifier = None
    if row.verifier_encrypted:
        verifier = str(service.cipher.decrypt(row.verifier_encrypted)["code_verifier"])
    tokens = await _exchange(service, platform, code, row.redirect_uri, verifier)
    credentials = _credentials(service.settings, platform, tokens)
    tenant_id = row.tenant_id
    accounts, account = await _discover(service, tenant_id, platform, credentials, tokens)
    expires_at = (
        service.clock() + timedelta(seconds=tokens.expires_in) if tokens.expires_in else None
    )
    connections.put(
        service,
        tenant_id,
        platform,
        account,
        credentials,
        token_expires_at=expires_at,
        scopes=" ".join(tokens.scopes) or None,
    )
    log.info("connected by OAuth", extra={"platform": platform.value, "tenant_id": tenant_id})
    return Connected(platform, account, accounts)


def _take_state(
    service: SyncService,
    platform: SyncPlatform,
    state: str,
    session_token: str | None,
    viewer_tenant: int | None,
) -> OAuthState:
    """The flow's stored state, spent now; every mismatch refused before anything else."""
    restart = "Start again from the Connections page."
    now = service.clock()
    with transaction(service.factory) as session:
        states = OAuthStateRepository(session)
        row = states.find(state, platform) if state else None
        if row is None:
            raise OAuthRefusedError(f"This sign-in link is not one we started. {restart}")
        if row.used_at is not None:
            raise OAuthRefusedError(f"This sign-in link was used already. {restart}")
        if row.expires_at <= now:
            raise OAuthRefusedError(f"This sign-in link has expired. {restart}")
        mine = session_token is not None and digest(session_token) == row.session_hash
        if row.session_hash is not None and not mine:
            raise OAuthRefusedError(
                f"This sign-in was started in another browser session. {restart}"
            )
        if viewer_tenant is not None and viewer_tenant != row.tenant_id:
            raise OAuthRefusedError(f"This sign-in was started for another account. {restart}")
        if not states.take(row, now):
            raise OAuthRefusedError(f"This sign-in link was used already. {restart}")
        session.expunge(row)
        return row


def _denied(name: str, params: Mapping[str, str]) -> str:
    """The platform's refusal (the user pressed Deny, or the platform refused the app)."""
    error = params.get("error") or params.get("error_reason") or ""
    said = params.get("error_description") or ""
    if error == "access_denied" or params.get("error_reason") == "user_denied":
        return (
            f"{name} was not connected: access was denied on {name}'s page. Connect again "
            "and choose Allow to let Audience Sync manage audiences."
        )
    detail = f" ({said})" if said else ""
    return f"{name} refused the connection: {error}{detail}."


async def _exchange(
    service: SyncService, platform: SyncPlatform, code: str, redirect: str, verifier: str | None
) -> Tokens:
    settings = service.settings
    client = settings.oauth_client(platform.value)
    assert client is not None  # checked at the start; a setting removed meanwhile fails here
    transport = service.http_transport() if service.http_transport else None
    name = platform_spec(platform).display_name
    async with httpx.AsyncClient(transport=transport, timeout=TIMEOUT) as http:
        try:
            if platform is SyncPlatform.META:
                return await _meta(http, settings, client, code, redirect)
            if platform is SyncPlatform.TIKTOK:
                return await _tiktok(http, settings, client, code)
            return await _form_exchange(http, settings, platform, client, code, redirect, verifier)
        except httpx.HTTPError as exc:
            raise OAuthRefusedError(
                f"{name} could not be reached to finish the connection; try again."
            ) from exc


async def _form_exchange(
    http: httpx.AsyncClient,
    settings: Settings,
    platform: SyncPlatform,
    client: tuple[str, str],
    code: str,
    redirect: str,
    verifier: str | None,
) -> Tokens:
    """Google and Snapchat: RFC 6749 §4.1.3, the app's credentials in the form (both accept
    them there [SEEN: Google web-server guide; Snap's authentication page])."""
    body = prepare_token_request(
        "authorization_code",
        code=code,
        redirect_uri=redirect,
        client_id=client[0],
        client_secret=client[1],
        code_verifier=verifier,
    )
    url = str(getattr(settings, f"{platform.value}_token_url"))
    headers = {"Content-Type": "application/x-www-form-urlencoded"}
    response = await http.post(url, content=body, headers=headers)
    answer = _json(response)
    if response.status_code >= 400 or "access_token" not in answer:
        raise OAuthRefusedError(_token_refusal(platform, answer))
    scope = str(answer.get("scope") or "")
    return Tokens(
        access_token=str(answer["access_token"]),
        refresh_token=answer.get("refresh_token"),
        expires_in=_seconds(answer.get("expires_in")),
        scopes=tuple(scope.split()),
    )


async def _meta(
    http: httpx.AsyncClient, settings: Settings, client: tuple[str, str], code: str, redirect: str
) -> Tokens:
    """The code for a short-lived token, that for a long-lived one (about 60 days, no refresh
    grant), then the granted permissions [SEEN: manual-flow and get-long-lived guides]."""
    client_id, secret = client
    params = {
        "client_id": client_id,
        "redirect_uri": redirect,
        "client_secret": secret,
        "code": code,
    }
    # POSTed, not the guide's GET: the secret, the code and the short-lived token stay out of
    # URLs (which proxies and client libraries log). Graph takes either.
    short = await http.post(settings.meta_token_url, data=params)
    answer = _json(short)
    if short.status_code >= 400 or "access_token" not in answer:
        raise OAuthRefusedError(_token_refusal(SyncPlatform.META, answer))
    exchange = {
        "grant_type": "fb_exchange_token",
        "client_id": client_id,
        "client_secret": secret,
        "fb_exchange_token": str(answer["access_token"]),
    }
    long = await http.post(settings.meta_token_url, data=exchange)
    lived = _json(long)
    if long.status_code >= 400 or "access_token" not in lived:
        raise OAuthRefusedError(_token_refusal(SyncPlatform.META, lived))
    token = str(lived["access_token"])
    granted = await http.get(
        f"{settings.meta_base_url.rstrip('/')}/me/permissions",
        headers={"Authorization": f"Bearer {token}"},
    )
    rows = _json(granted).get("data") or []
    scopes = tuple(
        str(r["permission"]) for r in rows if isinstance(r, dict) and r.get("status") == "granted"
    )
    return Tokens(token, expires_in=_seconds(lived.get("expires_in")), scopes=scopes)


async def _tiktok(
    http: httpx.AsyncClient, settings: Settings, client: tuple[str, str], code: str
) -> Tokens:
    """JSON `{app_id, secret, auth_code}`; the answer wrapped in `{code, message, data}`, a
    non-zero `code` a refusal even with HTTP 200. Advertiser tokens do not expire [SEEN:
    tiktok-business-api-sdk `Oauth2AccessTokenBody`; docs/platforms/tiktok.md]."""
    body = {"app_id": client[0], "secret": client[1], "auth_code": code}
    response = await http.post(settings.tiktok_token_url, json=body)
    answer = _json(response)
    raw = answer.get("data")
    data: dict[str, Any] = raw if isinstance(raw, dict) else {}
    if answer.get("code") != 0 or not data.get("access_token"):
        said = str(answer.get("message") or f"HTTP {response.status_code}")
        raise OAuthRefusedError(f"TikTok refused the connection: {said}")
    scope = data.get("scope") or []
    return Tokens(
        str(data["access_token"]),
        scopes=tuple(str(s) for s in scope) if isinstance(scope, list) else (),
        accounts=tuple(str(a) for a in data.get("advertiser_ids") or []),
    )


def _token_refusal(platform: SyncPlatform, answer: dict[str, Any]) -> str:
    """A token endpoint's refusal in its own words (RFC 6749 §5.2 or Graph's `error`)."""
    name = platform_spec(platform).display_name
    error = answer.get("error")
    if isinstance(error, dict):  # Graph
        said = str(error.get("message") or "no reason given")
    else:
        said = " — ".join(str(v) for v in (error, answer.get("error_description")) if v)
    return f"{name} refused to finish the connection: {said or 'no reason given'}."


def _json(response: httpx.Response) -> dict[str, Any]:
    try:
        found = response.json()
    except ValueError:
        return {}
    return found if isinstance(found, dict) else {}


def _seconds(value: Any) -> int | None:
    try:
        return int(value) if value is not None else None
    except (TypeError, ValueError):
        return None


def _credentials(settings: Settings, platform: SyncPlatform, tokens: Tokens) -> dict[str, Any]:
    """What the connection stores (encrypted): the tokens, and where the platform refreshes
    (Google, Snapchat) or lists and revokes (TikTok) with the app's id and secret."""
    client = settings.oauth_client(platform.value)
    assert client is not None
    stored: dict[str, Any] = {"access_token": tokens.access_token}
    if platform in (SyncPlatform.GOOGLE, SyncPlatform.SNAPCHAT):
        stored |= {
            "refresh_token": tokens.refresh_token,
            "client_id": client[0],
            "client_secret": client[1],
            "token_url": str(getattr(settings, f"{platform.value}_token_url")),
        }
    if platform is SyncPlatform.TIKTOK:
        stored |= {"client_id": client[0], "client_secret": client[1]}
    if platform is SyncPlatform.GOOGLE and settings.google_developer_token:
        stored["developer_token"] = settings.google_developer_token.get_secret_value()
    return {key: value for key, value in stored.items() if value}


async def _discover(
    service: SyncService,
    tenant_id: int,
    platform: SyncPlatform,
    credentials: dict[str, Any],
    tokens: Tokens,
) -> tuple[list[AdAccount], str]:
    """The ad accounts the new token reaches, and the one the connection points at."""
    name = platform_spec(platform).display_name
    with transaction(service.factory) as session:
        existing = ConnectionRepository(session, tenant_id, service.cipher).find(platform)
        previous = existing.ad_account_id if existing else None
    sealed = service.cipher.encrypt(credentials)
    first = previous or (tokens.accounts[0] if tokens.accounts else "0")
    target = connections.connector_target(service, tenant_id, platform, first, sealed)
    try:
        accounts = await connections.accounts_of(service, target)
    except NotSupportedError:
        accounts = [AdAccount(a) for a in tokens.accounts]
    except AudienceSyncError as exc:
        if previous:  # a reconnect keeps its account; the connection test will say more
            return [], previous
        raise OAuthRefusedError(
            f"{name} authorized the connection but refused to list its ad accounts: {exc.message}"
        ) from exc
    ids = [account.id for account in accounts]
    if previous and (previous in ids or not ids):
        return accounts, previous
    if not ids:
        raise OAuthRefusedError(
            f"{name} authorized the connection, but this login reaches no ad account we can "
            "list. Connect with a login that manages an ad account, or paste a token."
        )
    return accounts, ids[0]
