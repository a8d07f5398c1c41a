"""The sync commands end to end: a real sandbox socket, a SQLite file, the CLI as a user runs it."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner, Result

from audience_sync import cli
from audience_sync.sources.members import member_batches
from audience_sync.store import db
from audience_sync.store.repositories import SegmentRepository, TenantRepository
from audience_sync.sync.members import users_of
from audience_sync.testing import PREFIXES, sandbox_server
from audience_sync.testing.support import expected_identifiers

DATA = Path(__file__).parents[1] / "data" / "import"


@pytest.fixture(scope="module")
def sandbox() -> Iterator[str]:
    with sandbox_server() as url:
        yield url


@pytest.fixture
def run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[object]:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("AUDIENCE_SYNC_DATABASE_URL", f"sqlite:///{tmp_path}/cli.db")
    monkeypatch.setenv("AUDIENCE_SYNC_VAR_DIR", str(tmp_path / "var"))
    monkeypatch.setenv("AUDIENCE_SYNC_ALLOW_CONNECTION_BASE_URL", "true")  # the sandbox
    cli.context.cache_clear()
    runner = CliRunner()

    def invoke(*args: str) -> Result:
        result = runner.invoke(cli.app, list(args))
        assert "Traceback" not in result.output
        return result

    yield invoke
    with contextlib.suppress(Exception):
        cli.context().engine.dispose()
    cli.context.cache_clear()


def test_connect_create_sync_and_list_jobs(run, sandbox: str, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    assert run("db", "upgrade").exit_code == 0
    assert run("import", "profiles", str(DATA / "good.csv"), "--segment", "VIP").exit_code == 0
    base = sandbox + PREFIXES["snapchat"]
    connected = run(
        "connections", "set", "snapchat", "--ad-account", "acc1",
        "--access-token", "sandbox-token", "--base-url", base,
    )  # fmt: skip
    assert connected.exit_code == 0, connected.output
    assert "sandbox-token" not in connected.output
    created = run(
        "audiences", "create", "--segment", "VIP", "--platform", "snapchat",
        "--name", "VIP buyers", "--ad-account", "acc1", "--interval", "6", "--json",
    )  # fmt: skip
    assert created.exit_code == 0, created.output
    payload = json.loads(created.stdout)
    assert payload["job"]["status"] == "completed"
    assert payload["job"]["profiles_added"] == 4
    audience_id = payload["audience_id"]

    (listed,) = json.loads(run("audiences", "list", "--json").stdout)
    assert listed["id"] == audience_id
    assert listed["platform_audience_name"] == "VIP buyers"
    assert listed["sync_interval_hours"] == 6
    platform_id = listed["platform_audience_id"]

    audiences = httpx.get(f"{sandbox}/_sandbox/audiences", params={"platform": "snapchat"}).json()
    (held,) = [a for a in audiences if a["audience_id"] == platform_id]
    engine = db.make_engine(f"sqlite:///{tmp_path}/cli.db")
    with db.transaction(db.session_factory(engine)) as session:
        tenant_id = TenantRepository(session).get("default").id
        segment = SegmentRepository(session, tenant_id).by_name("VIP")
        assert segment is not None
        segment_id = segment.id
    users = [u for p, i in member_batches(engine, tenant_id, segment_id) for u in users_of(p, i)]
    engine.dispose()
    assert held["identifiers"] == expected_identifiers("snapchat", users)

    synced = run("audiences", "sync", audience_id, "--dry-run", "--json")
    assert synced.exit_code == 0
    assert json.loads(synced.stdout)["details"]["plan"]["adds"] == 0
    jobs = json.loads(run("audiences", "jobs", audience_id, "--json").stdout)
    assert [j["operation"] for j in jobs] == ["update", "create"]

    left = run("segments", "members", "VIP", "--remove", "P1", "--remove", "P2", "--remove", "P3")
    assert left.exit_code == 0, left.output
    previewed = run("audiences", "sync", audience_id, "--dry-run")
    assert previewed.exit_code == 0, previewed.output  # a dry run completes, with a warning
    assert "Warning (mass_removal)" in previewed.output
    refused = run("audiences", "sync", audience_id)
    assert refused.exit_code == 1
    assert "guard rail" in refused.output


def test_creating_an_audience_before_connecting_says_what_to_run(run) -> None:  # type: ignore[no-untyped-def]
    run("db", "upgrade")
    run("import", "profiles", str(DATA / "good.csv"), "--segment", "VIP")
    result = run(
        "audiences", "create", "--segment", "VIP", "--platform", "meta",
        "--name", "x", "--ad-account", "act_1",
    )  # fmt: skip
    assert result.exit_code == 2
    assert "audience-sync connections set meta" in result.stderr


def test_an_interval_outside_the_schedule_is_refused(run) -> None:  # type: ignore[no-untyped-def]
    run("db", "upgrade")
    result = run(
        "audiences", "create", "--segment", "VIP", "--platform", "meta",
        "--name", "x", "--ad-account", "act_1", "--interval", "5",
    )  # fmt: skip
    assert result.exit_code == 2
    assert "one of 1, 6, 12, 24, 168" in result.stderr
