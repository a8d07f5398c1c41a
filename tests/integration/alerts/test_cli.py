"""`audience-sync alerts …` round trip: the same services as the API."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine
from typer.testing import CliRunner, Result

from audience_sync import cli

from .conftest import SECRET, Receiver
from .test_delivery import valid_signature

Invoke = Callable[..., Result]


@pytest.fixture
def invoke(engine: Engine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Invoke]:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("AUDIENCE_SYNC_DATABASE_URL", engine.url.render_as_string(False))
    monkeypatch.setenv("AUDIENCE_SYNC_VAR_DIR", str(tmp_path / "var"))
    monkeypatch.setenv("AUDIENCE_SYNC_ALERT_ALLOW_PRIVATE_WEBHOOKS", "true")
    cli.context.cache_clear()
    runner = CliRunner()
    yield lambda *args: runner.invoke(cli.app, list(args))
    if cli.context.cache_info().currsize:
        cli.context().engine.dispose()
    cli.context.cache_clear()


def test_rules_channels_test_and_events_round_trip(invoke: Invoke, receiver: Receiver) -> None:
    rules = invoke("alerts", "rules", "list", "--json")
    assert rules.exit_code == 0, rules.output
    assert len(json.loads(rules.stdout)) == 7
    changed = invoke("alerts", "rules", "set", "match_rate_drop", "--threshold", "25", "--json")
    assert changed.exit_code == 0, changed.output
    (match,) = [r for r in json.loads(changed.stdout) if r["rule"] == "match_rate_drop"]
    assert match["threshold"] == 25
    wrong = invoke("alerts", "rules", "set", "guard_rail", "--threshold", "3")
    assert wrong.exit_code == 2
    assert "has no threshold" in wrong.output
    added = invoke("alerts", "channels", "add-webhook", receiver.url, "--secret", SECRET, "--json")
    assert added.exit_code == 0, added.output
    channel = json.loads(added.stdout)
    assert SECRET not in added.stdout
    listed = invoke("alerts", "channels", "list", "--json")
    assert [c["id"] for c in json.loads(listed.stdout)] == [channel["id"]]
    tested = invoke("alerts", "test", str(channel["id"]))
    assert tested.exit_code == 0, tested.output
    assert "Test alert delivered" in tested.stdout
    (arrived,) = receiver.received
    valid_signature(arrived.headers["X-Audience-Sync-Signature"], arrived.body)
    receiver.up = False
    failed = invoke("alerts", "test", str(channel["id"]))
    assert failed.exit_code == 1
    assert "HTTP 503" in failed.stdout
    events = invoke("alerts", "events", "--json")
    assert json.loads(events.stdout) == []  # a test alert is no incident
    assert invoke("alerts", "channels", "delete", str(channel["id"])).exit_code == 0
    assert json.loads(invoke("alerts", "channels", "list", "--json").stdout) == []
