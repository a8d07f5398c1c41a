"""The demo story: the demo segments synced to all four platforms' sandboxes, in process.

create → churn → update → replace → export, with real jobs and real figures — nothing leaves the
machine: connectors talk to the sandbox app through httpx's ASGI transport. Every run starts a
fresh sandbox, so audiences left by an earlier run (whose platform ids died with it) are retired.
"""

from __future__ import annotations

import dataclasses
import random
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import httpx
from fastapi import FastAPI
from pydantic import SecretStr
from sqlalchemy.orm import Session

from audience_sync.config import Settings
from audience_sync.connectors import BaseAudienceConnector, RateLimiters, connector_for
from audience_sync.domain.models import IdentifierType, SyncOperation, SyncPlatform
from audience_sync.domain.schedule import next_sync_at
from audience_sync.export.writer import ExportSpec, Written, write_export
from audience_sync.sandbox import SandboxSettings, create_app
from audience_sync.sources.demo import generate_rows, write_profiles_csv
from audience_sync.sources.importer import import_profiles
from audience_sync.store.db import transaction
from audience_sync.store.repositories import (
    AudienceRepository,
    ConnectionRepository,
    SegmentRepository,
    SyncJobRepository,
    TenantRepository,
)
from audience_sync.store.tables import AudienceSyncJob, PlatformAudience
from audience_sync.sync.jobs import Trigger, active_job, trigger_job
from audience_sync.sync.runner import SyncService, Target, run_job
from audience_sync.sync.service import connector_options, open_credentials

SANDBOX = "http://sandbox"
PREFIX = {
    SyncPlatform.META: "/meta/v26.0",
    SyncPlatform.GOOGLE: "/google/v1",
    SyncPlatform.TIKTOK: "/tiktok/open_api/v1.3",
    SyncPlatform.SNAPCHAT: "/snapchat/v1",
}
# Which demo segment goes to which platform (TikTok's replace needs ≥ 1,000 members).
PLAN = {
    SyncPlatform.META: "High Value Customers",
    SyncPlatform.GOOGLE: "Newsletter Subscribers",
    SyncPlatform.TIKTOK: "Newsletter Subscribers",
    SyncPlatform.SNAPCHAT: "At Risk Churning",
}
# The demo's Google account is the sandbox's: its "Customer Match terms" are accepted here so
# the demo syncs; a real connection records the user's own acceptance (docs/connectors.md).
DEMO_SETTINGS = {SyncPlatform.GOOGLE: {"customer_match_terms_accepted": True}}
CREDENTIALS = {
    "access_token": "sandbox-token",
    "refresh_token": "sandbox-refresh-token",
    "client_id": "demo-client",
    "client_secret": "demo-client-secret",
    "developer_token": "demo-developer-token",
}


def sandbox_service(service: SyncService, app: FastAPI | None = None) -> SyncService:
    """The same engine, its connectors wired to an in-process sandbox (a fresh one by default)."""
    app = app or create_app(SandboxSettings(processing_seconds=0))
    return _wired(service, lambda: httpx.ASGITransport(app=app))


def served_sandbox_service(service: SyncService, url: str) -> SyncService:
    """The same engine, its connectors wired to a sandbox served at `url` (`serve --demo`
    mounts it at `/sandbox`; its sync worker, another process, reaches it over HTTP)."""
    return _wired(service, lambda: ToSandbox(url))


class ToSandbox(httpx.AsyncBaseTransport):
    """Sends a request for `http://sandbox/PATH` (the demo connections' base URLs) to
    `url/PATH`: the stored connections stay the same whichever process runs the sync."""

    def __init__(self, url: str) -> None:
        self.url = httpx.URL(url.rstrip("/"))
        self.inner = httpx.AsyncHTTPTransport()

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        request.url = request.url.copy_with(
            scheme=self.url.scheme,
            host=self.url.host,
            port=self.url.port,
            path=self.url.path + request.url.path,
        )
        request.headers["Host"] = request.url.netloc.decode("ascii")
        return await self.inner.handle_async_request(request)

    async def aclose(self) -> None:
        await self.inner.aclose()


def _wired(service: SyncService, transport: Callable[[], httpx.AsyncBaseTransport]) -> SyncService:
    limiters = RateLimiters()

    def connect(target: Target) -> BaseAudienceConnector:
        return connector_for(
            target.platform,
            service.settings,
            open_credentials(service.cipher, target),
            ad_account_id=target.ad_account_id,
            options=connector_options(target),
            base_url=target.base_url,
            transport=transport(),
            limiters=limiters,
            poll_interval=0.05,
        )

    return dataclasses.replace(service, connect=connect, http_transport=transport)


def use_sandbox_oauth(settings: Settings, public_url: str) -> None:
    """`serve --demo`: connecting by OAuth works out of the box. The sandbox's demo apps
    (unless the operator set an app), its consent pages where the browser reaches them
    (`public_url/sandbox/...`), its token endpoints and APIs at `http://sandbox` (the demo
    service's transport sends those to the sandbox, in this process or the worker's)."""
    for platform in PREFIX:
        name = platform.value
        if not getattr(settings, f"{name}_client_id"):
            setattr(settings, f"{name}_client_id", f"sandbox-{name}-app")
            setattr(settings, f"{name}_client_secret", SecretStr(f"sandbox-{name}-secret"))
    browser = f"{public_url.rstrip('/')}/sandbox"
    settings.meta_authorize_url = f"{browser}/meta/v26.0/dialog/oauth"
    settings.google_authorize_url = f"{browser}/google/o/oauth2/v2/auth"
    settings.tiktok_authorize_url = f"{browser}/tiktok/portal/auth"
    settings.snapchat_authorize_url = f"{browser}/snapchat/login/oauth2/authorize"
    settings.meta_token_url = f"{SANDBOX}/meta/v26.0/oauth/access_token"
    settings.google_token_url = f"{SANDBOX}/google/token"
    settings.google_revoke_url = f"{SANDBOX}/google/revoke"
    settings.tiktok_token_url = f"{SANDBOX}/tiktok/open_api/v1.3/oauth2/access_token/"
    settings.snapchat_token_url = f"{SANDBOX}/snapchat/login/oauth2/access_token"
    settings.meta_base_url = SANDBOX + PREFIX[SyncPlatform.META]
    settings.google_base_url = SANDBOX + PREFIX[SyncPlatform.GOOGLE]
    settings.google_ads_base_url = f"{SANDBOX}/googleads/v26"
    settings.tiktok_base_url = SANDBOX + PREFIX[SyncPlatform.TIKTOK]
    settings.snapchat_base_url = SANDBOX + PREFIX[SyncPlatform.SNAPCHAT]
    if settings.google_developer_token is None:
        settings.google_developer_token = SecretStr(CREDENTIALS["developer_token"])


def setup_audiences(service: SyncService, tenant_id: int) -> dict[SyncPlatform, uuid.UUID]:
    """Connect the four platforms to the sandbox and create one demo audience on each."""
    audiences: dict[SyncPlatform, uuid.UUID] = {}
    now = service.clock()
    with transaction(service.factory) as session:
        _retire_old(session, tenant_id)
        connections = ConnectionRepository(session, tenant_id, service.cipher)
        for platform, segment_name in PLAN.items():
            connections.put(
                platform,
                "1234567890",
                CREDENTIALS,
                base_url=SANDBOX + PREFIX[platform],
                settings=DEMO_SETTINGS.get(platform),
            )
            segment = SegmentRepository(session, tenant_id).by_name(segment_name)
            if segment is None:
                raise LookupError(f"the demo segment {segment_name!r} is missing")
            audience = AudienceRepository(session, tenant_id).add(
                PlatformAudience(
                    segment_id=segment.id,
                    platform=platform,
                    platform_audience_name=f"{segment_name} (demo)",
                    ad_account_id="1234567890",
                    sync_interval_hours=24,
                    next_sync_at=next_sync_at(now, 24),
                    config={"demo": True},
                )
            )
            audiences[platform] = audience.id
    return audiences


def _retire_old(session: Session, tenant_id: int) -> None:
    """The demo audiences of an earlier run: purged, jobs and all (the sandbox that held them
    is gone with its process, so they name nothing; kept, a second `make run` listed each as a
    deleted audience). One with a job still pending or running (a server stopped mid-sync) is
    only deleted, as the API would: purging would drop that job's row under its worker."""
    audiences = AudienceRepository(session, tenant_id)
    for audience in audiences.list(include_deleted=True):
        if not (audience.config or {}).get("demo"):
            continue
        audience.is_active = False
        audience.auto_sync = False
        audience.next_sync_at = None
        if active_job(session, tenant_id, audience.id) is None:
            session.flush()
            audiences.purge(audience.id)


async def sync(
    service: SyncService, tenant_id: int, audience_id: uuid.UUID, operation: SyncOperation
) -> AudienceSyncJob:
    job, _ = trigger_job(
        service.factory, tenant_id, audience_id, Trigger(operation=operation), service.clock()
    )
    await run_job(service, tenant_id, job.id)
    with transaction(service.factory) as session:
        return SyncJobRepository(session, tenant_id).get(job.id)


CHURN_SEED = 7
# The sandbox's match rate in each round of `history` (its default is 0.7).
DRIFT = (0.67, 0.63)


@dataclass
class Churn:
    """What the story changed, so the demo can put the data set back as it was."""

    left: dict[str, list[str]] = field(default_factory=dict)  # segment → profile ids
    joined: list[str] = field(default_factory=list)
    changed: list[dict[str, str]] = field(default_factory=list)  # the original rows

    def describe(self) -> str:
        gone = "; ".join(f"{len(ids)} left {name}" for name, ids in sorted(self.left.items()))
        return (
            f"{gone}; {len(self.changed)} changed their email; "
            f"{len(self.joined)} joined each segment"
        )


def churn(
    service: SyncService, tenant_id: int, tenant: str, folder: Path, seed: int = CHURN_SEED
) -> Churn:
    """2% of each demo segment leaves, some new profiles join, some members change email."""
    rng = random.Random(seed)
    done = Churn()
    with transaction(service.factory) as session:
        segments = SegmentRepository(session, tenant_id)
        for name in sorted(set(PLAN.values())):
            segment = segments.by_name(name)
            assert segment is not None
            members = segments.member_profile_ids(segment.id)
            done.left[name] = rng.sample(members, max(1, len(members) // 50))
            segments.remove_members(segment.id, done.left[name])
    done.changed = [row for row in generate_rows(200) if int(row["profile_id"][1:]) % 4 == 0]
    changed = [
        {**row, "email": f"changed.{row['profile_id'].lower()}@example.com"} for row in done.changed
    ]
    _import(service, tenant, folder / "churn_changed_emails.csv", changed)
    joiners = [
        {**row, "profile_id": f"N{row['profile_id'][1:]}"} for row in generate_rows(60, seed)
    ]
    done.joined = [row["profile_id"] for row in joiners]
    for name in sorted(set(PLAN.values())):
        _import(service, tenant, folder / "churn_joiners.csv", joiners, segment=name)
    return done


def restore(service: SyncService, tenant_id: int, tenant: str, folder: Path, done: Churn) -> None:
    """Undo `churn` in the CDP (the demo's platform audiences are retired on the next run)."""
    with transaction(service.factory) as session:
        segments = SegmentRepository(session, tenant_id)
        for name, ids in done.left.items():
            segment = segments.by_name(name)
            assert segment is not None
            segments.add_members(segment.id, ids)
            segments.remove_members(segment.id, done.joined)
    _import(service, tenant, folder / "churn_restore.csv", done.changed)


def _import(
    service: SyncService,
    tenant: str,
    path: Path,
    rows: list[dict[str, str]],
    segment: str | None = None,
) -> None:
    write_profiles_csv(path, rows)
    import_profiles(service.factory, path, tenant=tenant, segment=segment)


async def history(
    service: SyncService,
    tenant_id: int,
    tenant: str,
    folder: Path,
    audiences: dict[SyncPlatform, uuid.UUID],
    sandbox: FastAPI | None = None,
    rounds: int = 2,
) -> list[tuple[SyncPlatform, AudienceSyncJob]]:
    """`rounds` times: churn the segments, then sync each audience's changes (an update).

    `serve --demo` runs this after the creates so every audience has several syncs: its charts
    show a line. With the `sandbox` app, its match rate is lowered a little before each round
    (`PATCH /_sandbox/audiences/...`): the match rates show the falling trend a marketer watches
    for. The CDP data is put back as it was afterwards (the next sync of each audience sends that
    back: a dry run has something to show).
    """
    jobs: list[tuple[SyncPlatform, AudienceSyncJob]] = []
    done: list[Churn] = []
    for number in range(rounds):
        if sandbox is not None:
            await set_match_rates(sandbox, DRIFT[number % len(DRIFT)])
        done.append(churn(service, tenant_id, tenant, folder, seed=CHURN_SEED + number))
        for platform, audience_id in audiences.items():
            jobs.append(
                (platform, await sync(service, tenant_id, audience_id, SyncOperation.UPDATE))
            )
    for churned in reversed(done):
        restore(service, tenant_id, tenant, folder, churned)
    return jobs


async def set_match_rates(sandbox: FastAPI, rate: float) -> None:
    """Every sandbox audience matches `rate` of its members from now on."""
    transport = httpx.ASGITransport(app=sandbox)
    async with httpx.AsyncClient(transport=transport, base_url=SANDBOX) as client:
        held = await client.get("/_sandbox/audiences", params={"identifiers": "false"})
        for audience in held.raise_for_status().json():
            where = f"/_sandbox/audiences/{audience['platform']}/{audience['audience_id']}"
            patched = await client.patch(where, json={"match_rate": rate})
            patched.raise_for_status()


def export_segment(service: SyncService, tenant_id: int, folder: Path) -> tuple[Path, Written]:
    """The newsletter segment as CSV, hashed exactly as Google's upload would."""
    with transaction(service.factory) as session:
        segment = SegmentRepository(session, tenant_id).by_name("Newsletter Subscribers")
        assert segment is not None
        region = TenantRepository(session).region_of(tenant_id)
    spec = ExportSpec(
        format="csv",
        identifier_types=(IdentifierType.EMAIL, IdentifierType.PHONE),
        hash_identifiers=True,
        platform=SyncPlatform.GOOGLE,
        include_traits=False,
        include_events=False,
    )
    path = folder / "newsletter_subscribers.google.csv"
    return path, write_export(service.engine, tenant_id, segment.id, spec, path, region)
