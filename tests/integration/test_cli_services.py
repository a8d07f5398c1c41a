"""The CLI offers what the API offers, through the same services: segments, exports, audience
schedule and deletion, jobs, a tenant's API keys, connections as JSON, short id prefixes."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import Engine, update
from typer.testing import CliRunner, Result

from audience_sync import cli
from audience_sync.api import create_app
from audience_sync.config import FeatureFlag
from audience_sync.domain.models import SyncPlatform
from audience_sync.services import audiences
from audience_sync.store import db
from audience_sync.store.repositories import (
    AudienceRepository,
    FeatureFlagRepository,
    SegmentRepository,
    TenantRepository,
)
from audience_sync.store.tables import PlatformAudience, PlatformConnection
from audience_sync.sync.service import build_service

DATA = Path(__file__).parents[1] / "data" / "import"
Invoke = Callable[..., Result]


@pytest.fixture
def invoke(engine: Engine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Invoke]:
    """The CLI in `tmp_path` on the test's database, migrated, with the VIP segment (P1-P4)
    and a Meta connection."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("AUDIENCE_SYNC_DATABASE_URL", engine.url.render_as_string(False))
    monkeypatch.setenv("AUDIENCE_SYNC_VAR_DIR", str(tmp_path / "var"))
    cli.context.cache_clear()
    runner = CliRunner()

    def run(*args: str) -> Result:
        result = runner.invoke(cli.app, list(args))
        assert "Traceback" not in result.output
        return result

    assert run("db", "upgrade").exit_code == 0
    assert run("import", "profiles", str(DATA / "good.csv"), "--segment", "VIP").exit_code == 0
    connect = ("connections", "set", "meta", "--ad-account", "1234567890", "--access-token", "t")
    assert run(*connect).exit_code == 0
    try:
        yield run
    finally:
        if cli.context.cache_info().currsize:
            cli.context().engine.dispose()
        cli.context.cache_clear()


def api_get(app: FastAPI, path: str, key: str | None = None) -> httpx.Response:
    headers = {"Authorization": f"Bearer {key}"} if key else {}

    async def get() -> httpx.Response:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://api") as client:
            return await client.get(path, headers=headers)

    return asyncio.run(get())


def as_json(result: Result) -> Any:
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def default_tenant(engine: Engine) -> int:
    with db.transaction(db.session_factory(engine)) as session:
        return TenantRepository(session).get("default").id


def an_audience(engine: Engine) -> uuid.UUID:
    """A Meta audience on VIP, made without its first sync (no platform here)."""
    ctx = cli.context()
    service = build_service(ctx.settings, ctx.engine)
    tenant_id = default_tenant(engine)
    with db.transaction(ctx.factory) as session:
        segment = SegmentRepository(session, tenant_id).by_name("VIP")
        assert segment is not None
    new = audiences.NewAudience(segment.id, SyncPlatform.META, "VIP", "1234567890")
    return audiences.create(service, tenant_id, new, connect_hint="connect").id


def test_audiences_create_checks_the_sync_flags_first(invoke: Invoke, engine: Engine) -> None:
    with db.transaction(db.session_factory(engine)) as session:
        tenant_id = TenantRepository(session).get("default").id
        FeatureFlagRepository(session, tenant_id).set(FeatureFlag.AUDIENCE_SYNC_META, False)
    refused = invoke("audiences", "create", "--segment", "VIP", "--platform", "meta",
                     "--name", "VIP", "--ad-account", "1234567890")  # fmt: skip
    assert refused.exit_code == 2
    assert "Feature flag 'audience_sync_meta' is turned off by this tenant's" in refused.stderr
    assert as_json(invoke("audiences", "list", "--include-deleted", "--json")) == []


def test_segments_create_change_members_and_delete(invoke: Invoke) -> None:
    made = as_json(invoke("segments", "create", "Newsletter", "--description", "Weekly", "--json"))
    assert (made["name"], made["member_count"], made["description"]) == ("Newsletter", 0, "Weekly")
    again = invoke("segments", "create", "Newsletter")
    assert again.exit_code == 2
    assert "A segment named 'Newsletter' already exists." in again.stderr
    changed = as_json(invoke("segments", "members", "Newsletter", "--add", "P1", "--add", "P2",
                             "--add", "nobody", "--remove", "P2", "--json"))  # fmt: skip
    assert changed == {
        "added": 2,
        "removed": 1,
        "unknown_profile_ids": ["nobody"],
        "member_count": 1,
    }
    nothing = invoke("segments", "members", "Newsletter")
    assert nothing.exit_code == 2
    assert "--add PROFILE_ID" in nothing.stderr
    gone = as_json(invoke("segments", "delete", made["id"][:8], "--json"))
    assert (gone["name"], gone["deleted"]) == ("Newsletter", True)
    names = [s["name"] for s in as_json(invoke("segments", "list", "--json"))]
    assert names == ["VIP"]


def test_a_segment_an_audience_uses_is_not_deleted(invoke: Invoke, engine: Engine) -> None:
    an_audience(engine)
    refused = invoke("segments", "delete", "VIP")
    assert refused.exit_code == 2
    assert "Segment 'VIP' is used by 1 audience(s)" in refused.stderr
    assert [s["name"] for s in as_json(invoke("segments", "list", "--json"))] == ["VIP"]


def test_export_writes_a_file_or_a_link_the_api_serves(invoke: Invoke, tmp_path: Path) -> None:
    written = as_json(invoke("export", "VIP", "--dir", str(tmp_path / "out"), "--json"))
    assert (written["profile_count"], Path(written["path"]).name) == (4, "vip.neutral.csv")
    linked = as_json(invoke("export", "VIP", "--link", "--format", "json", "--json"))
    assert set(linked) == {
        "download_url",
        "expires_at",
        "profile_count",
        "file_size_bytes",
        "normalization",
    }
    ctx = cli.context()
    url = urlsplit(linked["download_url"])
    got = api_get(create_app(ctx.settings, ctx.engine), f"{url.path}?{url.query}")
    assert got.status_code == 200
    assert len(got.content) == linked["file_size_bytes"]
    assert len(json.loads(got.content)) == 4


def test_a_key_made_by_the_cli_reaches_the_clis_data_until_revoked(invoke: Invoke) -> None:
    made = as_json(invoke("tenants", "keys", "create", "default", "--name", "dashboard", "--json"))
    key = made["api_key"]
    ctx = cli.context()
    api = create_app(ctx.settings, ctx.engine)
    listed = api_get(api, "/api/v1/segments", key)
    assert [s["name"] for s in listed.json()] == ["VIP"]
    keys = as_json(invoke("tenants", "keys", "list", "default", "--json"))
    assert [(k["prefix"], k["name"], k["revoked_at"]) for k in keys] == [
        (key[:10], "dashboard", None)
    ]
    revoked = invoke("tenants", "keys", "revoke", "default", key[:10])
    assert revoked.exit_code == 0, revoked.output
    assert api_get(api, "/api/v1/segments", key).status_code == 401
    unknown = invoke("tenants", "keys", "revoke", "default", key[:10])
    assert unknown.exit_code == 2
    assert "No active API key" in unknown.stderr
    listed_tenants = as_json(invoke("tenants", "list", "--json"))
    assert [(t["slug"], t["default_region"]) for t in listed_tenants] == [("default", "US")]
    missing = invoke("tenants", "keys", "create", "nobody")
    assert missing.exit_code == 2
    assert "audience-sync tenants create nobody" in missing.stderr


def test_audiences_pause_resume_interval_by_id_prefix(invoke: Invoke, engine: Engine) -> None:
    short = str(an_audience(engine))[:8]
    paused = as_json(invoke("audiences", "pause", short, "--json"))
    assert (paused["auto_sync"], paused["next_sync_at"]) == (False, None)
    resumed = as_json(invoke("audiences", "resume", short, "--json"))
    assert resumed["auto_sync"] is True
    assert resumed["next_sync_at"] is not None
    weekly = as_json(invoke("audiences", "interval", short, "168", "--json"))
    assert weekly["sync_interval_hours"] == 168
    refused = invoke("audiences", "interval", short, "2")
    assert refused.exit_code == 2
    assert "sync_interval_hours must be one of 1, 6, 12, 24, 168 (got 2)" in refused.stderr
    told = invoke("audiences", "pause", short)
    assert "Audience 'VIP' paused; next sync: manual only." in told.stdout


def test_audiences_delete_queues_a_job_that_jobs_show_and_cancel(
    invoke: Invoke, engine: Engine
) -> None:
    audience = str(an_audience(engine))
    queued = as_json(invoke("audiences", "delete", audience, "--no-wait", "--json"))
    assert (queued["queued"], queued["status"]) == (True, "pending")
    job = queued["job_id"]
    shown = as_json(invoke("jobs", "show", job[:6], "--json"))
    assert (shown["id"], shown["operation"], shown["status"]) == (job, "delete", "pending")
    again = invoke("audiences", "delete", audience, "--no-wait")
    assert f"Delete job {job} already queued." in again.stdout
    cancelled = as_json(invoke("jobs", "cancel", job, "--json"))
    assert cancelled["status"] == "cancelled"
    text = invoke("jobs", "show", job)
    assert f"Job {job}: delete cancelled" in text.stdout


def test_id_prefixes_must_be_long_enough_and_unique(invoke: Invoke, engine: Engine) -> None:
    tenant_id = default_tenant(engine)
    with db.transaction(db.session_factory(engine)) as session:
        segment = SegmentRepository(session, tenant_id).by_name("VIP")
        assert segment is not None
        for last in ("1", "2"):
            AudienceRepository(session, tenant_id).add(
                PlatformAudience(
                    id=uuid.UUID(f"abcd0000-0000-4000-8000-00000000000{last}"),
                    segment_id=segment.id,
                    platform=SyncPlatform.META,
                    platform_audience_name=f"VIP {last}",
                    ad_account_id="1234567890",
                    sync_interval_hours=24,
                )
            )
    short = invoke("audiences", "pause", "abc")
    assert short.exit_code == 2
    assert "at least its first 4 characters" in short.stderr
    ambiguous = invoke("audiences", "pause", "abcd")
    assert ambiguous.exit_code == 2
    assert "2 audiences have an id starting with 'abcd'; give more characters." in ambiguous.stderr
    unique = as_json(invoke("audiences", "pause", "ABCD0000-0000-4000-8000-000000000002", "--json"))
    assert unique["platform_audience_name"] == "VIP 2"
    none = invoke("jobs", "show", "ffff")
    assert none.exit_code == 2
    assert "No job id starts with 'ffff'." in none.stderr


def test_connections_list_as_json_never_shows_a_secret(invoke: Invoke) -> None:
    (meta,) = as_json(invoke("connections", "list", "--json"))
    assert (meta["platform"], meta["ad_account_id"], meta["status"]) == (
        "meta",
        "1234567890",
        "connected",
    )
    assert set(meta["credentials"]) == {"access_token"}
    assert meta["credentials"]["access_token"] != "t"


def test_connections_list_shows_how_many_days_a_meta_token_has_left(
    invoke: Invoke, engine: Engine
) -> None:
    expires = datetime.now(UTC) + timedelta(days=12, hours=1)
    with engine.begin() as connection:
        connection.execute(update(PlatformConnection).values(token_expires_at=expires))
    (meta,) = as_json(invoke("connections", "list", "--json"))
    assert meta["expires_in_days"] == 12
    assert meta["token_expires_at"] == expires.isoformat()
    assert "expires in 12 days" in invoke("connections", "list").stdout
    gone = datetime.now(UTC) - timedelta(minutes=1)
    with engine.begin() as connection:
        connection.execute(update(PlatformConnection).values(token_expires_at=gone))
    (meta,) = as_json(invoke("connections", "list", "--json"))
    assert (meta["status"], meta["expires_in_days"]) == ("needs_reconnect", 0)
    assert meta["status_message"].startswith("Meta access token expired on ")
    table = invoke("connections", "list").stdout
    assert "needs_reconnect" in table
    assert "expired" in table
