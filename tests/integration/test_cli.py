"""The `audience-sync` command end to end, on SQLite and PostgreSQL: no tracebacks, honest exits."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, select, text
from typer.testing import CliRunner, Result

from audience_sync import cli
from audience_sync.config import FeatureFlag
from audience_sync.domain.models import SyncPlatform
from audience_sync.store import db
from audience_sync.store.repositories import FeatureFlagRepository, TenantRepository
from audience_sync.store.tables import PlatformConnection
from audience_sync.testing.support import sandbox_server

DATA = Path(__file__).parents[1] / "data" / "import"
Invoke = Callable[..., Result]


@contextmanager
def cli_on(url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Invoke]:
    """Run the CLI in `tmp_path` against the database at `url`."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("AUDIENCE_SYNC_DATABASE_URL", url)
    monkeypatch.setenv("AUDIENCE_SYNC_VAR_DIR", str(tmp_path / "var"))
    cli.context.cache_clear()
    runner = CliRunner()

    def run(*args: str) -> Result:
        return runner.invoke(cli.app, list(args))

    try:
        yield run
    finally:
        if cli.context.cache_info().currsize:
            cli.context().engine.dispose()
        cli.context.cache_clear()


@pytest.fixture
def invoke(engine: Engine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Invoke]:
    with cli_on(engine.url.render_as_string(hide_password=False), tmp_path, monkeypatch) as run:
        yield run


def test_import_then_list_segments_as_json(invoke: Invoke) -> None:
    assert invoke("db", "upgrade").exit_code == 0
    result = invoke("import", "profiles", str(DATA / "good.csv"), "--segment", "VIP")
    assert result.exit_code == 0, result.output
    assert "4 rows imported into segment 'VIP' — 4 new" in result.stdout
    listed = invoke("segments", "list", "--json")
    assert listed.exit_code == 0
    (segment,) = json.loads(listed.stdout)
    assert set(segment) == {"id", "name", "member_count", "is_active"}
    assert (segment["name"], segment["member_count"], segment["is_active"]) == ("VIP", 4, True)


def test_a_segment_exports_with_the_specs_defaults_and_names_the_normalization(
    invoke: Invoke, tmp_path: Path
) -> None:
    assert invoke("db", "upgrade").exit_code == 0
    assert invoke("import", "profiles", str(DATA / "good.csv"), "--segment", "VIP").exit_code == 0
    result = invoke("segments", "export", "VIP", "--dir", str(tmp_path / "out"), "--json")
    assert result.exit_code == 0, result.output
    made = json.loads(result.stdout)
    assert (made["normalization"], made["profile_count"]) == ("neutral", 4)
    path = Path(made["path"])
    assert path.name == "vip.neutral.csv"
    assert path.stat().st_size == made["file_size_bytes"]
    assert "@" not in path.read_text()  # hashed: no raw email left
    google = invoke("segments", "export", "VIP", "--dir", str(tmp_path / "out"), "--platform",
                    "google", "--format", "json")  # fmt: skip
    assert google.exit_code == 0, google.output
    assert (tmp_path / "out" / "vip.google.json").is_file()


def test_a_broken_file_exits_non_zero_with_lines_and_summary(
    invoke: Invoke, tmp_path: Path
) -> None:
    invoke("db", "upgrade")
    rejects = tmp_path / "rejects.csv"
    result = invoke("import", "profiles", str(DATA / "broken.csv"), "--rejects", str(rejects))
    assert result.exit_code == 1
    assert "2 rows imported — 2 new, 0 updated, 0 unchanged; 4 rejected." in result.stdout
    assert "line 3: missing profile_id" in result.stderr
    assert "line 6: not valid UTF-8" in result.stderr
    assert "Traceback" not in result.output
    lines = rejects.read_text().splitlines()
    assert lines[:4] == [  # every field quoted (formula-safe CSV)
        '"line","end_line","reason"',
        '"3","3","missing profile_id"',
        '"4","4","expected 3 columns, found 4 — is a value with a \',\' missing its quotes?"',
        '"5","5","expected 3 columns, found 2"',
    ]
    assert lines[4].startswith('"6","6","not valid UTF-8; if the file is in another encoding')


def test_reimport_reports_every_row_unchanged(invoke: Invoke) -> None:
    invoke("db", "upgrade")
    invoke("import", "profiles", str(DATA / "good.jsonl"))
    again = invoke("import", "profiles", str(DATA / "good.jsonl"))
    assert "0 new, 0 updated, 2 unchanged; 0 rejected" in again.stdout


def test_commands_before_migration_say_what_to_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with cli_on(f"sqlite:///{tmp_path}/empty.db", tmp_path, monkeypatch) as invoke:
        result = invoke("segments", "list")
    assert result.exit_code == 2
    assert "audience-sync db upgrade" in result.stderr


def test_a_missing_file_is_a_clear_error(invoke: Invoke) -> None:
    invoke("db", "upgrade")
    result = invoke("import", "profiles", "nope.csv")
    assert result.exit_code == 2
    assert "'nope.csv' does not exist" in result.stderr
    assert "Traceback" not in result.output


def test_tenants_create_json_prints_only_the_id_and_key(invoke: Invoke) -> None:
    invoke("db", "upgrade")
    result = invoke("tenants", "create", "acme", "--json")
    assert result.exit_code == 0
    created = json.loads(result.stdout)
    assert set(created) == {"tenant_id", "api_key"}
    assert created["api_key"].startswith("as_")
    duplicate = invoke("tenants", "create", "acme")
    assert duplicate.exit_code == 2
    assert "already exists" in duplicate.stderr


def test_the_demo_ends_with_the_specs_three_segments(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with cli_on(f"sqlite:///{tmp_path}/demo.db", tmp_path, monkeypatch) as invoke:
        result = invoke("demo")
        assert result.exit_code == 0, result.output
        listed = json.loads(invoke("segments", "list", "--json").stdout)
    assert {s["name"]: s["member_count"] for s in listed} == {
        "High Value Customers": 1234,
        "Newsletter Subscribers": 5678,
        "At Risk Churning": 890,
    }


@pytest.mark.parametrize("command", ["worker", "beat"])
def test_workers_without_a_broker_say_what_to_set(
    invoke: Invoke, monkeypatch: pytest.MonkeyPatch, command: str
) -> None:
    monkeypatch.delenv("AUDIENCE_SYNC_BROKER_URL", raising=False)
    assert invoke("db", "upgrade").exit_code == 0
    result = invoke(command)
    assert result.exit_code == 2
    assert "AUDIENCE_SYNC_BROKER_URL" in result.stderr


def test_connections_set_records_googles_login_account_and_terms(
    invoke: Invoke, engine: Engine
) -> None:
    assert invoke("db", "upgrade").exit_code == 0
    google = ("connections", "set", "google", "--ad-account", "42", "--access-token", "t")
    plain = invoke(*google)
    assert plain.exit_code == 0, plain.output
    assert "--accept-customer-match-terms" in plain.stderr
    assert settings_of(engine) is None
    done = invoke(*google, "--login-account", "123-456-7890", "--accept-customer-match-terms")
    assert done.exit_code == 0, done.output
    assert "--accept-customer-match-terms" not in done.stderr
    assert settings_of(engine) == {
        "login_account_id": "1234567890",
        "customer_match_terms_accepted": True,
    }
    assert invoke(*google).exit_code == 0  # a new token keeps the settings
    assert settings_of(engine) == {
        "login_account_id": "1234567890",
        "customer_match_terms_accepted": True,
    }
    assert invoke(*google, "--withdraw-customer-match-terms").exit_code == 0
    assert settings_of(engine) == {"login_account_id": "1234567890"}
    meta = invoke("connections", "set", "meta", "--ad-account", "1", "--access-token", "t",
                  "--accept-customer-match-terms")  # fmt: skip
    assert meta.exit_code != 0
    assert "Google settings" in meta.output


def settings_of(engine: Engine) -> Any:
    with engine.connect() as connection:
        return connection.execute(
            select(PlatformConnection.settings).where(
                PlatformConnection.platform == SyncPlatform.GOOGLE
            )
        ).scalar_one()


def test_connections_set_stores_data_use_defaults_and_refuses_other_words(
    invoke: Invoke, engine: Engine
) -> None:
    invoke("db", "upgrade")
    common = ["connections", "set", "meta", "--ad-account", "1", "--access-token", "t"]
    result = invoke(*common, "--limited-data-use", "California")
    assert result.exit_code == 0, result.output
    with engine.connect() as connection:
        stored = connection.execute(text("SELECT settings FROM platform_connections")).scalar()
    settings = json.loads(stored) if isinstance(stored, str) else stored
    assert settings == {"limited_data_use": "california"}
    refused = invoke(*common, "--limited-data-use", "texas")
    assert refused.exit_code != 0
    assert "limited_data_use must be one of off, geolocate, california" in refused.output
    assert "Traceback" not in refused.output


def reload_settings() -> None:
    """The next command reads the environment again."""
    cli.context().engine.dispose()
    cli.context.cache_clear()


def test_segments_export_obeys_the_operators_export_flag(
    invoke: Invoke, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, engine: Engine
) -> None:
    assert invoke("db", "upgrade").exit_code == 0
    assert invoke("import", "profiles", str(DATA / "good.csv"), "--segment", "VIP").exit_code == 0
    # A tenant's override from before the operator's switch.
    with db.transaction(db.session_factory(engine)) as session:
        tenant_id = TenantRepository(session).get("default").id
        FeatureFlagRepository(session, tenant_id).set(FeatureFlag.AUDIENCE_EXPORT, True)
    monkeypatch.setenv("AUDIENCE_SYNC_FEATURE_FLAGS__AUDIENCE_EXPORT", "false")
    reload_settings()
    refused = invoke("segments", "export", "VIP", "--dir", str(tmp_path / "out"))
    assert refused.exit_code != 0
    assert "turned off by the operator" in refused.output
    assert not (tmp_path / "out").exists()


def test_connections_set_base_url_needs_the_operators_permission(
    invoke: Invoke, engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert invoke("db", "upgrade").exit_code == 0
    pointed = ("connections", "set", "meta", "--ad-account", "1", "--access-token", "t",
               "--base-url", "http://127.0.0.1:8600/meta/v26.0")  # fmt: skip
    refused = invoke(*pointed)
    assert refused.exit_code != 0
    assert "AUDIENCE_SYNC_ALLOW_CONNECTION_BASE_URL" in refused.output
    with engine.connect() as connection:
        assert connection.execute(select(PlatformConnection)).first() is None
    monkeypatch.setenv("AUDIENCE_SYNC_ALLOW_CONNECTION_BASE_URL", "true")
    reload_settings()
    allowed = invoke(*pointed)
    assert allowed.exit_code == 0, allowed.output


def test_connections_set_tests_the_token_and_says_when_the_test_fails(
    invoke: Invoke, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AUDIENCE_SYNC_ALLOW_CONNECTION_BASE_URL", "true")
    assert invoke("db", "upgrade").exit_code == 0
    with sandbox_server() as url:
        common = ("connections", "set", "meta", "--ad-account", "1234567890",
                  "--base-url", f"{url}/meta/v26.0")  # fmt: skip
        wrong = invoke(*common, "--access-token", "WRONG-token")
        assert wrong.exit_code == 0, wrong.output  # saved anyway
        assert "Connected, but the test failed: Meta refused the token" in wrong.output
        assert "WRONG-token" not in wrong.output
        assert invoke("connections", "test", "meta").exit_code == 1
        right = invoke(*common, "--access-token", "sandbox-token")
        assert "Connected; the test passed" in right.output
        tested = invoke("connections", "test", "meta", "--json")
        assert tested.exit_code == 0, tested.output
        assert json.loads(tested.stdout)["reason"] == "ok"
        listed = invoke("connections", "accounts", "meta", "--json")
        assert listed.exit_code == 0, listed.output
        assert json.loads(listed.stdout)[0]["id"] == "1234567890"


def test_a_second_demo_replaces_the_first_ones_audiences(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The first run's demo audiences name nothing once its sandbox is gone: a second run
    purges them (they were listed as deleted, four more each run), and syncs four new ones."""
    with cli_on(f"sqlite:///{tmp_path}/demo.db", tmp_path, monkeypatch) as invoke:

        def listed() -> list[dict[str, Any]]:
            shown = invoke("audiences", "list", "--include-deleted", "--json")
            assert shown.exit_code == 0, shown.output
            found: list[dict[str, Any]] = json.loads(shown.stdout)
            return found

        assert invoke("demo").exit_code == 0
        first = listed()
        assert invoke("demo").exit_code == 0
        second = listed()
    assert len(first) == len(second) == 4
    assert {a["id"] for a in first}.isdisjoint(a["id"] for a in second)
    assert all(a["is_active"] for a in second)
