"""The `audience-sync` command: thin wrappers that parse input, call a service, print results."""

from __future__ import annotations

from audience_sync.cli import cdp, serve, sync, workers  # noqa: F401 - importing registers the commands
from audience_sync.cli.common import app, context

__all__ = ["app", "context"]
