"""The platform sandbox in a process of its own, for the benchmarks that measure the engine,
the workers or the API apart from it (`sync-10m`, `workers`, `api-load`).

`python -m benchmarks.sandboxes PORT` serves it: no processing delay (Snapchat's, Google's),
rate limits as the platforms' until `lift_rate_limits`.
"""

from __future__ import annotations

import contextlib
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import psutil

from audience_sync.testing.support import PREFIXES


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def sandbox_command(port: int) -> list[str]:
    return [sys.executable, "-m", "benchmarks.sandboxes", str(port)]


def serve_sandbox(port: int) -> None:
    import uvicorn

    from audience_sync.sandbox import SandboxSettings, create_app

    settings = SandboxSettings(processing_seconds=0, google_processing_seconds=0)
    uvicorn.run(create_app(settings), host="127.0.0.1", port=port, log_level="warning")


def lift_rate_limits(url: str) -> None:
    for family in PREFIXES:
        body = {"family": family, "limit": None}
        httpx.put(f"{url}/_sandbox/rate_limits", json=body, timeout=10).raise_for_status()


@contextlib.contextmanager
def sandbox_process(logs: Path) -> Iterator[tuple[str, psutil.Process]]:
    """The sandbox served in a subprocess (its output in `logs`/sandbox.log), rate limits
    lifted; (its URL, its process). Stopped on the way out."""
    port = free_port()
    with (logs / "sandbox.log").open("wb") as log:
        process = subprocess.Popen(sandbox_command(port), stdout=log, stderr=log)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120  # imports alone take seconds on a busy machine
        while True:
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{url}/_sandbox/rate_limits").status_code == 200:
                    break
            if process.poll() is not None or time.monotonic() > deadline:
                log_text = (logs / "sandbox.log").read_text()
                raise RuntimeError(f"the sandbox did not start: {log_text}")
            time.sleep(0.2)
        lift_rate_limits(url)
        yield url, psutil.Process(process.pid)
    finally:
        process.terminate()
        process.wait(timeout=30)


if __name__ == "__main__":
    serve_sandbox(int(sys.argv[1]))
