"""Every command and API path that a message or docstring in the product names exists."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import typer

from audience_sync.api.app import API_PREFIX
from audience_sync.api.routes import alerts, audiences, connections, exports, flags, segments
from audience_sync.cli import app
from audience_sync.domain.models import SyncPlatform
from audience_sync.exceptions import AuthExpiredError
from audience_sync.sync.messages import describe

SRC = Path(__file__).parents[3] / "src" / "audience_sync"
# `audience-sync` and the words after it, outside bytes literals (a key-derivation label).
COMMAND = re.compile(r"""(?<!b")(?<!b')\baudience-sync((?: [a-z][a-z0-9-]*)+)""")
API_PATH = re.compile(r"/api/v1(/[A-Za-z0-9_{}./-]*[A-Za-z0-9_}])")


def _named(pattern: re.Pattern[str]) -> set[str]:
    return {m.group(1) for path in SRC.rglob("*.py") for m in pattern.finditer(path.read_text())}


def _is_command(words: list[str], group: Any) -> bool:
    """Whether the words start with a real command (a group's words must reach a command).
    Typer's groups are its own vendored click's: they are told apart by their `commands`."""
    commands = getattr(group, "commands", None)
    found = commands.get(words[0]) if words and commands is not None else None
    if found is None:
        return False
    return _is_command(words[1:], found) if hasattr(found, "commands") else True


def _routes() -> list[list[str]]:
    modules = (segments, connections, audiences, flags, exports, alerts)
    paths = [API_PREFIX + route.path for m in modules for route in m.router.routes]
    return [path.split("/") for path in paths]


def _matches(path: str) -> bool:
    parts = (API_PREFIX + path).split("/")
    return any(
        len(route) == len(parts)
        and all(
            r == p or r.startswith("{") or p.startswith("{")
            for r, p in zip(route, parts, strict=True)
        )
        for route in _routes()
    )


def test_every_audience_sync_command_named_in_the_product_exists() -> None:
    root = typer.main.get_command(app)
    named = _named(COMMAND)
    assert "connections set" in " ".join(named)
    missing = [words for words in named if not _is_command(words.split(), root)]
    assert missing == []


def test_every_api_path_named_in_the_product_exists() -> None:
    named = _named(API_PATH)
    assert named
    assert [path for path in named if not _matches(path)] == []


def test_a_reconnect_message_names_the_real_command_and_endpoint() -> None:
    message = describe(AuthExpiredError("Meta error 190"), SyncPlatform.META)
    assert "audience-sync connections set meta" in message
    assert "PUT /api/v1/connections/meta" in message
    root = typer.main.get_command(app)
    assert _is_command(["connections", "set"], root)
    assert not _is_command(["connections", "reconnect"], root)
    assert _matches("/connections/meta")
    assert not _matches("/connections/meta/reconnect")
