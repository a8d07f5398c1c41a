"""The `audience-sync` command: thin wrappers that parse input, call a service, print results."""

from __future__ import annotations

from audience_sync.cli import (  # noqa: F401 - importing registers the commands
    alerts,
    audiences,
    cdp,
    jobs,
    segments,
    serve,
    sync,
    tenants,
    workers,
)
from audience_sync.cli.common import app, context

__all__ = ["app", "context"]
