"""Faithful emulators of the Meta, Google, TikTok and Snapchat audience APIs, as one ASGI app.

Run it with `audience-sync sandbox` (or `serve()`), or mount `create_app()` in-process. Each
platform lives under its prefix (`/meta/v26.0`, `/google/v1`, `/googleads/v26`,
`/tiktok/open_api/v1.3`, `/snapchat/v1`) followed by the real paths; `/_sandbox` holds the test
controls. See docs/sandbox.md.
"""

from __future__ import annotations

from audience_sync.sandbox.app import create_app
from audience_sync.sandbox.settings import SANDBOX_TOKEN, SandboxSettings

__all__ = ["SANDBOX_TOKEN", "SandboxSettings", "create_app", "serve"]


def serve(host: str = "127.0.0.1", port: int = 8600) -> None:
    """Run the sandbox with uvicorn until interrupted."""
    import uvicorn

    uvicorn.run(create_app(), host=host, port=port, log_level="info")
